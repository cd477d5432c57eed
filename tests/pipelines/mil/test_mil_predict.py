"""Using a finished MIL run: preds.csv, tiles.csv, heatmaps, evaluation and bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from fieldvision.errors import ConfigError, DataError, RunError
from fieldvision.pipelines.mil import evaluate, load_run, predict


def test_predict_writes_predictions_tiles_and_heatmaps(mil_run, spots, tmp_path):
    out = tmp_path / "preds.csv"
    table = predict(mil_run, spots, out, mode="glance", budget=0.25, heatmaps=tmp_path / "hm",
                    progress=False)  # fmt: skip
    assert list(table.columns) == ["image", "label", "prob_healthy", "prob_spot", "tiles", "ms"]
    np.testing.assert_allclose(table[["prob_healthy", "prob_spot"]].sum(axis=1), 1.0, rtol=1e-5)
    assert (table["tiles"] <= 4).all() and (table["tiles"] >= 1).all()
    tiles = pd.read_csv(tmp_path / "tiles.csv")
    assert list(tiles.columns) == ["image", "row", "col", "x1", "y1", "x2", "y2", "scouter",
                                   "selected", "expert_healthy", "expert_spot"]  # fmt: skip
    assert len(tiles) == 16 * len(table)
    unselected = tiles[~tiles["selected"]]
    assert unselected["expert_spot"].isna().all()  # the expert never ran those tiles
    assert tiles.loc[tiles["selected"], "expert_spot"].notna().all()
    assert len(list((tmp_path / "hm").glob("*.png"))) == len(table)
    full = predict(mil_run, spots, tmp_path / "full.csv", mode="full", progress=False)
    assert (full["tiles"] == 16).all()


def test_evaluate_prints_full_vs_glance_and_writes_the_report(mil_run, spots):
    result = evaluate(mil_run, spots, budget=0.3, progress=False)
    keys = [kv.split("=")[0] for kv in result["line"].split()]
    assert keys == ["full_macro_f1", "full_auc", "full_ms", "glance_macro_f1", "glance_auc",
                    "glance_ms", "glance_tiles"]  # fmt: skip
    assert result["glance"]["tile_fraction"] < result["full"]["tile_fraction"] == 1.0
    assert result["glance"]["gflops_per_image"] < result["full"]["gflops_per_image"]
    loc = result["full"]["localisation"]  # masks in the CSV: localisation is measured
    assert loc["n_diseased"] == 12 and 0 <= loc["pointing_game"] <= 1
    assert 0 < result["glance"]["localisation"]["lesion_recall"] <= 1
    assert [r["budget"] for r in result["curve"]][-1] == 1.0
    assert result["curve"][-1]["macro_f1"] == pytest.approx(result["full"]["macro_f1"])
    stored = json.loads((mil_run / "metrics.json").read_text())
    assert {"fit", "evaluate"} <= set(stored)
    report = (mil_run / "report.md").read_text()
    assert "glance" in report and (mil_run / "budget_curve.png").is_file()


def test_bad_inputs_write_nothing(mil_run, spots, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(spots, other)
    table = other / "labels.csv"
    table.write_text(table.read_text().replace(",spot,", ",rust,"))
    before = (mil_run / "metrics.json").read_text()
    with pytest.raises(DataError, match="'rust'.*not classes of the run"):
        evaluate(mil_run, other, progress=False)
    assert (mil_run / "metrics.json").read_text() == before
    with pytest.raises(ConfigError, match="expert.lr.*runtime"):
        predict(mil_run, spots, tmp_path / "p.csv", overrides=["expert.lr=1"], progress=False)
    (other / "images" / "002.png").write_bytes(b"broken")
    with pytest.raises(DataError, match="row 3"):
        predict(mil_run, other, tmp_path / "p.csv", progress=False)
    assert not (tmp_path / "p.csv").exists() and not (tmp_path / "tiles.csv").exists()
    with pytest.raises(RunError, match="not a run directory"):
        load_run(tmp_path)


def test_a_run_from_before_calibration_is_flagged_and_upgraded_by_train(
    mil_run, spots, tmp_path, mil_cfg, capsys
):
    import yaml

    from fieldvision.config import fingerprint_of
    from fieldvision.pipelines.mil import MILConfig, train

    old = tmp_path / "old"
    shutil.copytree(mil_run, old)
    (old / "scouter" / "train" / "calibration.json").unlink()
    # As recorded before the field existed: no `calibrate` line, fingerprinted without it.
    config = old / "config.yaml"
    recorded = yaml.safe_load(config.read_text())
    del recorded["scouter"]["calibrate"]
    config.write_text(yaml.safe_dump(recorded, sort_keys=False))
    info = json.loads((old / "run.json").read_text())
    info["fingerprint"] = fingerprint_of(recorded, MILConfig)
    (old / "run.json").write_text(json.dumps(info))
    capsys.readouterr()
    load_run(old)
    assert "is not calibrated" in capsys.readouterr().err
    expert = old / "expert" / "train" / "model.safetensors"
    before = expert.stat().st_mtime_ns
    train(spots, old, mil_cfg())
    assert (old / "scouter" / "train" / "calibration.json").is_file()
    assert expert.stat().st_mtime_ns == before  # nothing retrained
    load_run(old)
    assert "is not calibrated" not in capsys.readouterr().err
