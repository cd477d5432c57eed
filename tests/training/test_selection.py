"""Tests for per-split model selection (the fitting loop's use of it: test_fit)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from fieldvision.errors import RunError
from fieldvision.training.selection import (
    EPOCHS_FILE,
    average_states,
    best_epoch,
    best_record,
    epoch_path,
    select_epochs,
)


def test_best_epoch_respects_mode_ties_and_nan():
    assert best_epoch({"mode": "max", "scores": {"1": 0.2, "2": 0.5, "3": 0.5}}) == 2
    assert best_epoch({"mode": "min", "scores": {"1": 0.2, "2": float("nan"), "3": 0.1}}) == 3
    assert best_epoch({"scores": {}}) is None and best_epoch(None) is None


def test_average_states_is_the_elementwise_mean_and_keeps_counters():
    a = {"w": torch.tensor([1.0, 3.0]), "n": torch.tensor(1)}
    b = {"w": torch.tensor([3.0, 5.0]), "n": torch.tensor(2)}
    out = average_states([a, b])
    assert out["w"].tolist() == [2.0, 4.0] and int(out["n"]) == 2
    with pytest.raises(RunError):
        average_states([])


def _split(tmp_path, saved, scores):
    (tmp_path / "epochs").mkdir()
    for e in saved:
        epoch_path(tmp_path, e).write_bytes(b"")
    (tmp_path / EPOCHS_FILE).write_text(json.dumps({"mode": "max", "scores": scores}))
    return tmp_path


def test_fixed_epochs_takes_the_nearest_saved_epoch_to_the_others_median(tmp_path):
    split = _split(tmp_path, [2, 4, 6], {"2": 0.1, "4": 0.3, "6": 0.2})
    schedule = SimpleNamespace(selection="fixed_epochs", selection_epochs=None, selection_k=2)
    record = select_epochs(split, schedule, other_best=[5, 5, 3])
    assert record["target_epochs"] == 5 and record["epochs"] == [4]  # tie 4/6: the earlier
    assert record["fold_best_epoch"] == 4
    last_k = SimpleNamespace(selection="last_k_average", selection_epochs=None, selection_k=2)
    assert select_epochs(split, last_k, [])["epochs"] == [4, 6]
    assert best_record(split) == {"mode": "best", "epochs": [4], "fold_best_epoch": 4}


def test_no_saved_epochs_is_a_clear_error(tmp_path):
    schedule = SimpleNamespace(selection="fixed_epochs", selection_epochs=3, selection_k=1)
    with pytest.raises(RunError, match="no per-epoch weights"):
        select_epochs(tmp_path, schedule, [])
