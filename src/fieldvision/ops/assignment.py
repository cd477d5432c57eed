"""Thresholded linear assignment (Hungarian matching) of tracks to detections."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["linear_assignment"]


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
        return (
            np.zeros((0, 2), dtype=np.int64),
            np.arange(n, dtype=np.int64),
            np.arange(m, dtype=np.int64),
        )
    if np.isnan(c).any():
        raise ValueError("cost contains NaN")
    if np.isnan(threshold):
        raise ValueError("threshold is NaN")
    allowed = (c <= threshold) & np.isfinite(c)
    if not allowed.any():  # common when every track is far from every detection
        rows, cols = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    else:
        if np.isinf(threshold):
            # no limit: a plain Hungarian match of the finite pairs; a barred pair gets a
            # cost above any sum of finite ones, so it is used only when nothing else is
            finite = c[allowed]
            threshold = float(np.abs(finite).sum() + np.abs(finite).max() + 1.0) * 2
        clipped = np.where(allowed, c - threshold, 0.0)
        rows, cols = linear_sum_assignment(clipped)
        keep = allowed[rows, cols]
        rows, cols = rows[keep].astype(np.int64), cols[keep].astype(np.int64)
    matches = np.stack([rows, cols], axis=1) if rows.size else np.zeros((0, 2), dtype=np.int64)
    free_rows = np.ones(n, dtype=bool)
    free_rows[rows] = False
    free_cols = np.ones(m, dtype=bool)
    free_cols[cols] = False
    unmatched_rows, unmatched_cols = np.flatnonzero(free_rows), np.flatnonzero(free_cols)
    return matches, unmatched_rows, unmatched_cols
