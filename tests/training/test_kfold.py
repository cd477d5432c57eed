"""Grouped k-fold: groups never straddle folds, seeded, stratified option, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fieldvision.errors import ConfigError, DataError
from fieldvision.training.kfold import fold_table, grouped_folds


def _groups(n_groups: int = 12, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 8, size=n_groups)
    return [f"2015-{g:02d}-01" for g, s in enumerate(sizes) for _ in range(s)]


def _straddles(groups, folds) -> bool:
    frame = pd.DataFrame({"g": groups, "f": folds})
    return bool((frame.groupby("g")["f"].nunique() > 1).any())


@pytest.mark.parametrize("n_folds", [2, 3, 5, 12])
def test_no_group_straddles_and_all_folds_used(n_folds):
    groups = _groups()
    folds = grouped_folds(groups, n_folds=n_folds, seed=3)
    assert folds.dtype == np.int64 and folds.shape == (len(groups),)
    assert set(folds.tolist()) == set(range(n_folds))
    assert not _straddles(groups, folds)


def test_deterministic_per_seed_and_seed_dependent():
    groups = _groups(20)
    a = grouped_folds(groups, 5, seed=7)
    assert np.array_equal(a, grouped_folds(groups, 5, seed=7))
    assert any(not np.array_equal(a, grouped_folds(groups, 5, seed=s)) for s in range(8, 12))


def test_fold_sizes_balanced():
    groups = [f"d{i}" for i in range(50) for _ in range(2)]  # 50 equal groups of 2
    counts = np.bincount(grouped_folds(groups, 5, seed=0))
    assert counts.tolist() == [20] * 5


def test_stratified_keeps_groups_and_spreads_labels():
    groups = [f"g{i}" for i in range(30) for _ in range(3)]
    state = [("NSW", "Vic", "Tas")[i % 3] for i in range(30) for _ in range(3)]
    folds = grouped_folds(groups, 3, seed=1, stratify=state)
    assert not _straddles(groups, folds)
    frame = pd.DataFrame({"f": folds, "s": state})
    assert (frame.groupby("f")["s"].nunique() == 3).all()
    assert np.array_equal(folds, grouped_folds(groups, 3, seed=1, stratify=state))


def test_accepts_non_string_groups():
    groups = [pd.Timestamp("2015-01-01") + pd.Timedelta(days=i % 6) for i in range(24)]
    assert not _straddles(groups, grouped_folds(groups, 3))


@pytest.mark.parametrize(
    ("n_groups", "n_folds", "stratify_len", "error", "match"),
    [
        (6, 1, None, ConfigError, "at least 2"),
        (3, 5, None, ConfigError, "only 3 group"),
        (6, 3, 5, DataError, "stratify has 5"),
    ],
)
def test_bad_input(n_groups, n_folds, stratify_len, error, match):
    groups = [f"g{i}" for i in range(n_groups)]
    stratify = None if stratify_len is None else ["a"] * stratify_len
    with pytest.raises(error, match=match):
        grouped_folds(groups, n_folds, stratify=stratify)


def test_fold_table():
    table = fold_table(["a", "b", "c"], ["d1", "d1", "d2"], np.array([0, 0, 1]))
    assert list(table.columns) == ["image_id", "group", "fold"]
    assert table["fold"].tolist() == [0, 0, 1]
    with pytest.raises(DataError, match="same length"):
        fold_table(["a"], ["d1", "d2"], [0, 1])
