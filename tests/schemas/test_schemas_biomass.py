"""The biomass schema: mass balance (torch and NumPy), weights, and the long/wide formats."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from fieldvision.schemas.biomass import (
    TARGET_WEIGHTS,
    TARGETS,
    WEIGHTS,
    derive_targets,
    long_to_wide,
    sample_id,
    to_long,
    to_submission,
)


def _reference(components: np.ndarray) -> np.ndarray:
    """(green, dead, clover) -> the five targets, one row at a time in plain Python."""
    rows = []
    for green, dead, clover in components.reshape(-1, 3).tolist():
        rows.append([green, dead, clover, green + clover, green + clover + dead])
    return np.array(rows, dtype=components.dtype).reshape(*components.shape[:-1], 5)


# --------------------------------------------------------------------------- derive_targets


@pytest.mark.parametrize("shape", [(7, 3), (2, 4, 3), (3,), (0, 3)])
def test_derive_targets_torch_and_numpy_agree_with_the_reference(shape):
    comps = np.random.default_rng(0).gamma(2.0, 10.0, size=shape)
    expected = _reference(comps)
    out_np = derive_targets(comps)
    out_t = derive_targets(torch.from_numpy(comps))
    assert isinstance(out_np, np.ndarray) and isinstance(out_t, torch.Tensor)
    assert out_np.shape == out_t.shape == (*shape[:-1], 5)
    assert out_np.dtype == np.float64 and out_t.dtype == torch.float64
    np.testing.assert_array_equal(out_np, expected)
    np.testing.assert_array_equal(out_t.numpy(), out_np)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_mass_balance_is_exact_in_every_dtype(dtype):
    comps = (torch.rand(64, 3, generator=torch.Generator().manual_seed(1)) * 300).to(dtype)
    out = derive_targets(comps)
    green, dead, clover, gdm, total = out.unbind(-1)
    assert out.dtype == dtype
    assert torch.equal(out[:, :3], comps)
    assert torch.equal(gdm, green + clover)
    assert torch.equal(total, gdm + dead)  # the labels' order of addition


def test_derive_targets_gradcheck():
    comps = torch.rand(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(derive_targets, (comps,))


# Too few components fail (today an IndexError from the indexing; a ValueError would do).
@pytest.mark.parametrize(
    ("components", "error"),
    [
        (np.zeros((4, 2)), (IndexError, ValueError)),
        (torch.zeros(4, 2), (IndexError, ValueError)),
        (np.zeros(0), (IndexError, ValueError)),
    ],
)
def test_derive_targets_needs_three_components(components, error):
    with pytest.raises(error):
        derive_targets(components)


def test_weights_are_a_distribution_over_the_targets():
    # A property, not a copy of the constants: the weighted R² is a weighted mean.
    assert set(TARGET_WEIGHTS) == set(TARGETS) and len(WEIGHTS) == len(TARGETS)
    assert all(w > 0 for w in WEIGHTS)
    assert sum(WEIGHTS) == pytest.approx(1.0)


# --------------------------------------------------------------------------- long / wide


def _wide_values(n: int, seed: int = 0) -> np.ndarray:
    return derive_targets(np.random.default_rng(seed).uniform(0, 50, size=(n, 3)))


def test_to_long_rows_are_image_major_in_target_order():
    values = _wide_values(2)
    long = to_long(["b", "a"], values)
    assert list(long.columns) == ["sample_id", "target_name", "target"]
    assert long["sample_id"].tolist() == [sample_id(i, t) for i in ("b", "a") for t in TARGETS]
    assert long["sample_id"].iloc[6] == "a__Dry_Dead_g"
    assert long["target_name"].tolist() == list(TARGETS) * 2
    np.testing.assert_array_equal(long["target"].to_numpy(), values.reshape(-1))


def test_submission_has_only_the_kaggle_columns():
    values = _wide_values(3)
    sub = to_submission(["x", "y", "z"], values)
    assert list(sub.columns) == ["sample_id", "target"]
    pd.testing.assert_frame_equal(sub, to_long(["x", "y", "z"], values)[["sample_id", "target"]])


@pytest.mark.parametrize("n", [0, 1, 5])
def test_long_to_wide_round_trip_keeps_order_and_values(n):
    ids = [f"ID{900 - k}" for k in range(n)]  # not sorted: first-appearance order must hold
    values = _wide_values(n, seed=n)
    wide = long_to_wide(to_submission(ids, values))
    assert wide.index.tolist() == ids
    assert list(wide.columns) == list(TARGETS)
    np.testing.assert_array_equal(wide.to_numpy(), values.reshape(n, 5))


def test_long_to_wide_any_row_order_other_column_and_ids_with_separators():
    ids = ["ID__1", "ID2"]  # the image id may itself contain "__": split at the last one
    values = _wide_values(2)
    long = to_long(ids, values).rename(columns={"target": "pred"})
    shuffled = long.iloc[[7, 0, 3, 9, 1, 2, 4, 5, 6, 8]]
    wide = long_to_wide(shuffled, value="pred")
    assert wide.index.tolist() == ["ID2", "ID__1"]  # first appearance in the shuffled rows
    np.testing.assert_array_equal(wide.loc[ids].to_numpy(), values)


def test_long_to_wide_marks_absent_pairs_nan():
    long = to_submission(["a", "b"], _wide_values(2)).drop(index=[1, 9])
    wide = long_to_wide(long)
    assert wide.isna().sum().sum() == 2
    assert np.isnan(wide.loc["a", TARGETS[1]]) and np.isnan(wide.loc["b", TARGETS[4]])


@pytest.mark.parametrize(
    ("ids", "shape", "error", "match"),
    [
        (["a", "b"], (2, 4), ValueError, r"\(2, 5\)"),
        (["a", "b"], (3, 5), ValueError, r"\(2, 5\)"),
        (["a"], (5,), ValueError, r"\(1, 5\)"),
        ([], (1, 5), ValueError, r"\(0, 5\)"),
        (["a", "b"], (2, 5, 1), ValueError, "values must be"),
    ],
)
def test_to_long_bad_shape(ids, shape, error, match):
    with pytest.raises(error, match=match):
        to_long(ids, np.zeros(shape))
    with pytest.raises(error, match=match):
        to_submission(ids, np.zeros(shape))
