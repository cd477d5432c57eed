"""Re-ID evaluation: variants, metrics.json, report, protocols, background diagnostic."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fieldvision.data.synthetic.coats import generate_coat_dataset
from fieldvision.errors import RunError
from fieldvision.pipelines.reid import fit
from fieldvision.pipelines.reid_config import InferenceSection
from fieldvision.pipelines.reid_eval import VARIANTS, evaluate, variant_distances


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
    with pytest.raises(RunError, match="closed protocol"):
        evaluate(run, data, protocol="open", progress=False)


def test_evaluate_needs_the_training_data(run, tmp_path):
    other = tmp_path / "other"
    generate_coat_dataset(other, n_identities=3, per_id=4, seed=9, size=(32, 32))
    (other / "train.csv").write_text("filename,ground_truth\n" + "".join(
        f"{p.name},x\n" for p in sorted((other / "train").glob("*.png"))[:2]))  # fmt: skip
    with pytest.raises(RunError, match="not in the data"):
        evaluate(run, other, progress=False)


def test_open_protocol_run(reid_cfg, data, tmp_path):
    out = tmp_path / "open"
    summary = fit(
        data, out, reid_cfg(train={"protocol": "open", "holdout_fraction": 0.4}), progress=False
    )
    assert summary["protocol"] == "open"
    assert summary["n_train_identities"] < summary["n_identities"]
    results = evaluate(out, data, progress=False, report=False)
    assert results["protocol"] == "open" and not (out / "report.md").exists()
