"""Tests for the MIL prediction files shared by both runtimes."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from fieldvision.schemas.mil import prediction_tables, write_predictions


def test_tables_by_hand(tmp_path):
    logits = np.log(np.array([[[0.9, 0.1], [0.2, 0.8]]], np.float32))  # (E=1, T=2, C=2)
    r = SimpleNamespace(prob=np.array([0.3, 0.7]), selected=np.array([False, True]), ms=1.23456,
                        boxes=np.array([[0, 0, 8, 8], [8, 0, 16, 8]]),
                        scouter=np.array([np.nan, 0.6]), tile_logits=logits)  # fmt: skip
    rows, tiles = prediction_tables(["a.png"], [r], ["ok", "bad"], grid_cols=2)
    assert rows == [{"image": "a.png", "label": "bad", "prob_ok": 0.3, "prob_bad": 0.7,
                     "tiles": 1, "ms": 1.235}]  # fmt: skip
    assert [(t["row"], t["col"], t["x1"], t["scouter"]) for t in tiles] == [
        (0, 0, 0, None), (0, 1, 8, 0.6),
    ]  # fmt: skip
    assert tiles[0]["expert_bad"] is None  # not run in glance mode
    assert np.isclose(tiles[1]["expert_bad"], 0.8)
    table = write_predictions(tmp_path / "preds.csv", rows, tiles)
    assert list(table.columns) == ["image", "label", "prob_ok", "prob_bad", "tiles", "ms"]
    assert len(pd.read_csv(tmp_path / "tiles.csv")) == 2
