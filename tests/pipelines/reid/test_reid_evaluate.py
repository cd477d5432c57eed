"""Re-ID evaluation: variants, metrics.json, report, protocols, background diagnostic."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fieldvision.data.synthetic.coats import generate_coat_dataset
from fieldvision.errors import DataError
from fieldvision.pipelines.reid import fit
from fieldvision.pipelines.reid.config import InferenceSection
from fieldvision.pipelines.reid.evaluate import VARIANTS, evaluate, evaluate_set, variant_distances


def test_variant_distances():
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(6, 5)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    q = np.array([0, 3])
    inf = InferenceSection(qe_k=2, rerank_k1=3, rerank_k2=2)
    np.testing.assert_allclose(variant_distances(emb, q, inf, "raw"), 1 - emb[q] @ emb.T, rtol=1e-6)
    for variant in VARIANTS:
        d = variant_distances(emb, q, inf, variant)
        assert d.shape == (2, 6) and np.isfinite(d).all()


def test_evaluate_writes_metrics_and_report(data, run):
    results = evaluate(run, data, progress=False)
    assert results["protocol"] == "closed"
    assert set(results["sets"]) == {"validation", "test"}
    for block in results["sets"].values():
        assert set(block["variants"]) == set(VARIANTS)
        m = block["variants"]["raw"]
        for key in (
            "mAP",
            "rank1",
            "rank5",
            "rank10",
            "mINP",
            "identity_balanced_mAP",
            "pair_roc_auc",
        ):
            assert 0.0 <= m[key] <= 1.0, key
        assert len(m["cmc"]) == 10
    assert 0 <= results["sets"]["test"]["pair_auc_submission"] <= 1
    bg = results["background"]
    assert bg is not None and {"foreground_mAP", "background_mAP", "chance_mAP"} <= set(bg)
    stored = json.loads((run / "metrics.json").read_text())
    assert {"fit", "evaluate"} <= set(stored)
    report = (run / "report.md").read_text()
    for heading in (
        "Retrieval: validation",
        "Background reliance",
        "AP per identity",
        "Ranked retrieval",
    ):
        assert heading in report
    for png in ("cmc_validation.png", "per_identity_ap.png", "retrieval_grid.png"):
        assert (run / png).stat().st_size > 1000
    # A closed-split run has no unseen identities in its own data.
    with pytest.raises(DataError, match="no open set"):
        evaluate(run, data, protocol="open", progress=False, report=False)


def test_other_protocols_on_the_runs_own_data(data, run):
    loo = evaluate(run, data, protocol="all", progress=False, report=False)
    assert loo["protocol"] == "all" and set(loo["sets"]) == {"evaluation", "test"}
    closed = evaluate(run, data, progress=False, report=False)
    n_all = loo["sets"]["evaluation"]["n_queries"]
    assert n_all > closed["sets"]["validation"]["n_queries"]  # every image queries


def test_evaluate_on_new_individuals(run, tmp_path):
    """A run evaluated on animals it never saw: leave-one-out by default, or the open
    protocol (identities not trained on)."""
    other = tmp_path / "other"
    generate_coat_dataset(other, n_identities=4, per_id=5, seed=9, size=(32, 32))
    table = pd.read_csv(other / "train.csv")
    table["ground_truth"] = "new_" + table["ground_truth"].astype(str)
    table.to_csv(other / "train.csv", index=False)
    results = evaluate(run, other, progress=False, report=False)
    assert results["own_data"] is False and results["protocol"] == "all"
    assert results["sets"]["evaluation"]["n_queries"] == len(table)
    opened = evaluate(run, other, protocol="open", progress=False, report=False)
    assert opened["sets"]["evaluation"]["n_queries"] == len(table)
    with pytest.raises(DataError, match="no closed-set query"):
        evaluate(run, other, protocol="closed", progress=False, report=False)


def test_camera_ids_exclude_same_camera_matches(run, data, tmp_path):
    """With a camera column, a gallery image of the query's identity from the query's camera
    is not a match to find (Market-1501 rule): giving every image of an identity the same
    camera leaves no valid query for that identity."""
    other = tmp_path / "cams"
    import shutil

    shutil.copytree(data, other)
    table = pd.read_csv(other / "train.csv")
    ids = sorted(table["ground_truth"].astype(str).unique())
    solo = ids[0]  # this animal is only ever seen by camera "c0"
    table["camera"] = [
        "c0" if g == solo else f"c{i % 2}" for i, g in enumerate(table["ground_truth"].astype(str))
    ]
    table.to_csv(other / "train.csv", index=False)
    results = evaluate(run, other, protocol="all", progress=False, report=False)
    block = results["sets"]["evaluation"]
    n_solo = int((table["ground_truth"].astype(str) == solo).sum())
    assert block["cameras"] is True
    assert block["n_queries"] <= len(table) - n_solo
    assert "another camera" in block["warning"]


def test_evaluate_set_same_camera_rule_by_hand():
    emb = np.eye(4, dtype=np.float32)
    emb[1] = emb[0]  # image 1 is a perfect duplicate of image 0 (same animal)
    emb[3] = np.array([1.0, 0.0, 0.0, 0.5]) / np.sqrt(1.25)  # another animal, close to 0
    ids = ["a", "a", "a", "b"]
    inf = InferenceSection(qe_k=0, rerank_k1=2, rerank_k2=1)
    q = np.array([True, False, False, False])
    no_cams = evaluate_set(emb, ids, q, inf)["raw"]
    assert no_cams["rank1"] == 1.0  # the duplicate is found first
    cams = np.array(["x", "x", "y", "y"])  # the duplicate was taken by the query's camera
    with_cams = evaluate_set(emb, ids, q, inf, cams)["raw"]
    assert with_cams["rank1"] == 0.0  # only image 2 (camera y) counts; animal b ranks first


def test_open_protocol_run(reid_cfg, data, tmp_path):
    out = tmp_path / "open"
    summary = fit(
        data, out, reid_cfg(train={"protocol": "open", "holdout_fraction": 0.4}), progress=False
    )
    assert summary["protocol"] == "open"
    assert summary["n_train_identities"] < summary["n_identities"]
    results = evaluate(out, data, progress=False, report=False)
    assert results["protocol"] == "open" and not (out / "report.md").exists()
