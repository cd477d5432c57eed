"""Thresholded linear assignment (Hungarian matching) of tracks to detections."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["linear_assignment", "solve_assignment"]

_EMPTY = np.zeros(0, dtype=np.int64)
_EMPTY_PAIRS = np.zeros((0, 2), dtype=np.int64)


def linear_assignment(cost: Any, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Match rows to columns, minimising cost, with pairs costing more than `threshold` barred.

    The objective is the one a tracker needs: among matchings that use only pairs with
    ``cost <= threshold``, find the one minimising ``sum(cost - threshold)`` over matched
    pairs, i.e. leaving a row and a column unmatched costs `threshold` (the cost-limit
    formulation of LAPJV). Solving the plain assignment and dropping expensive pairs
    afterwards is *not* the same: a barred pair can pull the solver away from a better set
    of allowed pairs. Clipping ``cost - threshold`` at 0 gives a matrix whose full
    rectangular assignment (SciPy's ``linear_sum_assignment``) has exactly that optimum:
    barred pairs then cost 0, as leaving both unmatched does, and are dropped from the
    result.

    Args:
        cost: ``(N, M)`` costs; ``inf`` bars a pair.
        threshold: Largest cost a matched pair may have.

    Returns:
        ``(matches, unmatched_rows, unmatched_cols)``: ``(K, 2)`` int64 ``[row, col]``
        pairs sorted by row, and the sorted int64 indices left unmatched on each side.

    Raises:
        ValueError: `cost` is not 2-D or contains NaN.
    """
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError(f"cost must be a 2-D (N, M) matrix, got shape {c.shape}")
    n, m = c.shape
    if n == 0 or m == 0:
        return _EMPTY_PAIRS, np.arange(n, dtype=np.int64), np.arange(m, dtype=np.int64)
    if np.isnan(c).any():
        raise ValueError("cost contains NaN")
    if np.isnan(threshold):
        raise ValueError("threshold is NaN")
    allowed = (c <= threshold) & np.isfinite(c)
    if np.isinf(threshold) and allowed.any():
        # no limit: a plain Hungarian match of the finite pairs; a barred pair gets a
        # cost above any sum of finite ones, so it is used only when nothing else is
        finite = c[allowed]
        threshold = float(np.abs(finite).sum() + np.abs(finite).max() + 1.0) * 2
    rows, cols, free_rows, free_cols = solve_assignment(c, float(threshold), allowed)
    matches = np.stack([rows, cols], axis=1) if rows.size else _EMPTY_PAIRS
    return matches, free_rows, free_cols


def solve_assignment(
    cost: np.ndarray, threshold: float, allowed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`linear_assignment` without the checks, for trusted callers (the tracker, per frame).

    Args:
        cost: ``(N, M)`` float64 costs, no NaN or ``-inf`` (``inf`` bars a pair).
        threshold: A finite limit.
        allowed: ``cost <= threshold`` (and finite) when the caller has it already.

    Returns:
        ``(rows, cols, unmatched_rows, unmatched_cols)``, int64: the matched pairs sorted
        by row, then the sorted indices left unmatched on each side.

    A problem with one row or one column is solved without SciPy: the full assignment of
    the clipped matrix then picks the single smallest entry, the first one on a tie,
    which is what `scipy.optimize.linear_sum_assignment` returns as well (its shortest
    augmenting path scans the columns of a row and keeps the lowest index among equal
    reduced costs, all columns being free; a single column is solved transposed).
    """
    n, m = cost.shape
    if n == 0 or m == 0:
        return _EMPTY, _EMPTY, np.arange(n, dtype=np.int64), np.arange(m, dtype=np.int64)
    if allowed is None:
        allowed = cost <= threshold
    if not np.count_nonzero(allowed):  # common when every track is far from every detection
        return _EMPTY, _EMPTY, np.arange(n, dtype=np.int64), np.arange(m, dtype=np.int64)
    # clipping cost - threshold at 0 (see `linear_assignment`)
    clipped = np.where(allowed, cost - threshold, 0.0)
    if n == 1 or m == 1:
        k = int(clipped.argmin())
        if not allowed.flat[k]:
            return _EMPTY, _EMPTY, np.arange(n, dtype=np.int64), np.arange(m, dtype=np.int64)
        r, c = divmod(k, m)
        rows, cols = np.array([r], dtype=np.int64), np.array([c], dtype=np.int64)
    else:
        rows, cols = linear_sum_assignment(clipped)
        keep = allowed[rows, cols]
        rows, cols = rows[keep].astype(np.int64), cols[keep].astype(np.int64)
    free_rows = np.ones(n, dtype=bool)
    free_rows[rows] = False
    free_cols = np.ones(m, dtype=bool)
    free_cols[cols] = False
    return rows, cols, free_rows.nonzero()[0], free_cols.nonzero()[0]
