"""Thresholded linear assignment against brute force over every partial matching."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from fieldvision.ops.assignment import linear_assignment, solve_assignment


def _brute_force_best(cost: np.ndarray, threshold: float) -> float:
    """Best ``sum(cost - threshold)`` over matchings that use only pairs with cost <= threshold.

    Every partial matching is an injective map from rows to columns-or-nothing: the
    permutations of the column list padded with one "nothing" per row.
    """
    n, m = cost.shape
    slots = list(range(m)) + [None] * n
    best = 0.0  # the empty matching
    for choice in set(itertools.permutations(slots, n)):
        total = 0.0
        for r, c in enumerate(choice):
            if c is None:
                continue
            if not cost[r, c] <= threshold:
                break
            total += cost[r, c] - threshold
        else:
            best = min(best, total)
    return best


def _check_result(cost, threshold, matches, ur, uc):
    n, m = cost.shape
    assert matches.dtype == np.int64 and matches.shape[1] == 2
    rows, cols = matches[:, 0], matches[:, 1]
    assert len(set(rows)) == len(rows) and len(set(cols)) == len(cols)
    assert np.all(cost[rows, cols] <= threshold)
    assert np.all(np.diff(rows) > 0)  # sorted by row
    np.testing.assert_array_equal(np.sort(np.r_[rows, ur]), np.arange(n))
    np.testing.assert_array_equal(np.sort(np.r_[cols, uc]), np.arange(m))
    return float(np.sum(cost[rows, cols] - threshold))


@pytest.mark.parametrize("seed", range(40))
def test_matches_brute_force_on_random_cases(seed):
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(1, 5)), int(rng.integers(1, 5))  # square and rectangular
    cost = rng.uniform(0, 1, (n, m))
    if seed % 3 == 0:
        cost[rng.uniform(size=(n, m)) < 0.3] = np.inf  # barred pairs
    threshold = float(rng.choice([0.3, 0.5, 0.8]))
    matches, ur, uc = linear_assignment(cost, threshold)
    total = _check_result(cost, threshold, matches, ur, uc)
    assert total == pytest.approx(_brute_force_best(cost, threshold), abs=1e-12)


def test_better_than_solving_first_and_dropping_after():
    # The plain optimum pairs (0, 1) and (1, 0) (total 4 < 101), both above the threshold;
    # dropping them afterwards leaves nothing, while (0, 0) alone is allowed.
    cost = np.array([[1.0, 2.0], [2.0, 100.0]])
    matches, ur, uc = linear_assignment(cost, 1.5)
    np.testing.assert_array_equal(matches, [[0, 0]])
    np.testing.assert_array_equal(ur, [1])
    np.testing.assert_array_equal(uc, [1])


def test_prefers_two_good_matches_over_one_excellent():
    # leaving a row and a column unmatched costs the threshold: two pairs at 0.35 save
    # 2 * (0.8 - 0.35) = 0.9, more than the one perfect pair (0, 0) saves (0.8)
    cost = np.array([[0.0, 0.35], [0.35, 0.9]])
    matches, _, _ = linear_assignment(cost, 0.8)
    np.testing.assert_array_equal(matches, [[0, 1], [1, 0]])


@pytest.mark.parametrize("shape", [(0, 0), (0, 3), (4, 0)])
def test_empty_shapes(shape):
    matches, ur, uc = linear_assignment(np.zeros(shape), 0.5)
    assert matches.shape == (0, 2) and matches.dtype == np.int64
    np.testing.assert_array_equal(ur, np.arange(shape[0]))
    np.testing.assert_array_equal(uc, np.arange(shape[1]))


def test_nothing_allowed_and_infinite_threshold():
    matches, ur, uc = linear_assignment(np.full((2, 3), 0.9), 0.5)
    assert matches.shape == (0, 2)
    np.testing.assert_array_equal(ur, [0, 1])
    np.testing.assert_array_equal(uc, [0, 1, 2])
    # no threshold: the plain Hungarian optimum over the finite pairs
    cost = np.array([[4.0, 1.0, 3.0], [2.0, 0.0, 5.0], [3.0, 2.0, np.inf]])
    matches, _, _ = linear_assignment(cost, np.inf)
    np.testing.assert_array_equal(matches, [[0, 2], [1, 1], [2, 0]])  # 3 + 0 + 3 = 6


def test_bad_input():
    with pytest.raises(ValueError, match="2-D"):
        linear_assignment(np.zeros(3), 0.5)
    with pytest.raises(ValueError, match="NaN"):
        linear_assignment(np.array([[np.nan]]), 0.5)


def _scipy_on_clipped(cost: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The reference: SciPy's full assignment of the clipped matrix, barred pairs dropped."""
    allowed = cost <= threshold
    if not allowed.any():
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    rows, cols = linear_sum_assignment(np.where(allowed, cost - threshold, 0.0))
    keep = allowed[rows, cols]
    return rows[keep], cols[keep]


@pytest.mark.parametrize("kind", ["ties", "uniform", "constant", "near-threshold", "barred"])
def test_single_row_or_column_shortcut_equals_scipy(kind):
    # solve_assignment answers 1 x M and N x 1 problems without SciPy; ties (equal costs,
    # costs equal to the threshold) must resolve exactly as SciPy resolves them
    rng = np.random.default_rng(len(kind))
    values = {
        "ties": lambda s: rng.integers(0, 4, s) / 4.0,
        "uniform": lambda s: rng.uniform(0, 1, s),
        "constant": lambda s: np.full(s, 0.5),
        "near-threshold": lambda s: rng.choice([0.5, 0.5 - 2**-53, 0.5 + 2**-52, 0.3], s),
        "barred": lambda s: np.where(rng.uniform(size=s) < 0.4, np.inf, rng.uniform(0, 1, s)),
    }[kind]
    for trial in range(400):
        k = int(rng.integers(1, 8))
        shape = (1, k) if trial % 2 else (k, 1)
        cost = values(shape).astype(float)
        threshold = float(rng.choice([0.25, 0.5, 0.75]))
        rows, cols, free_rows, free_cols = solve_assignment(cost, threshold)
        ref_rows, ref_cols = _scipy_on_clipped(cost, threshold)
        np.testing.assert_array_equal(rows, ref_rows)
        np.testing.assert_array_equal(cols, ref_cols)
        np.testing.assert_array_equal(np.sort(np.r_[rows, free_rows]), np.arange(shape[0]))
        np.testing.assert_array_equal(np.sort(np.r_[cols, free_cols]), np.arange(shape[1]))


@pytest.mark.parametrize("seed", range(10))
def test_solve_assignment_equals_linear_assignment(seed):
    rng = np.random.default_rng(100 + seed)
    cost = rng.uniform(0, 1, (int(rng.integers(1, 9)), int(rng.integers(1, 9))))
    cost[rng.uniform(size=cost.shape) < 0.2] = np.inf
    matches, ur, uc = linear_assignment(cost, 0.6)
    rows, cols, free_rows, free_cols = solve_assignment(cost, 0.6)
    np.testing.assert_array_equal(matches, np.stack([rows, cols], axis=1).reshape(-1, 2))
    np.testing.assert_array_equal(ur, free_rows)
    np.testing.assert_array_equal(uc, free_cols)
    assert all(a.dtype == np.int64 for a in (rows, cols, free_rows, free_cols))
