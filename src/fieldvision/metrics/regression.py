"""Regression metrics, including the CSIRO Image2Biomass weighted R².

The competition metric is ONE R² over all (image, target) rows together, each row weighted
by its target's weight (0.1 green, 0.1 dead, 0.1 clover, 0.2 GDM, 0.5 total)::

    R²_w = 1 - Σ w (y - ŷ)² / Σ w (y - ȳ_w)²,   ȳ_w = Σ w y / Σ w

where ȳ_w is the single weighted mean over *all* rows and targets (not one mean per
target). Because the targets differ in magnitude, this is not the weighted average of
per-target R² values; `per_target_r2` gives those for diagnosis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from fieldvision.errors import DataError
from fieldvision.schemas.biomass import TARGET_WEIGHTS, TARGETS, WEIGHTS

__all__ = ["per_target_r2", "weighted_r2", "weighted_r2_long"]


def _as_2d(name: str, values: object) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DataError(f"{name}: expected an array [N, K], got shape {arr.shape}")
    return arr


def _weighted_r2_rows(y: np.ndarray, y_hat: np.ndarray, w: np.ndarray) -> float:
    """R² over flat rows with per-row weights; NaN when there is no variance to explain."""
    if y.size == 0:
        return float("nan")
    mean = float(np.sum(w * y) / np.sum(w))
    ss_res = float(np.sum(w * (y - y_hat) ** 2))
    ss_tot = float(np.sum(w * (y - mean) ** 2))
    if ss_tot == 0.0:
        return float("nan")
    return 1.0 - ss_res / ss_tot


def weighted_r2(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    weights: Sequence[float] = WEIGHTS,
) -> float:
    """Competition weighted R² over all (image, target) cells together.

    Args:
        y_true: Array[N, K] labels (K = 5 targets in `TARGETS` order by default).
        y_pred: Array[N, K] predictions.
        weights: K per-target weights.

    Returns:
        ``1 - Σ w (y - ŷ)² / Σ w (y - ȳ_w)²`` with one global weighted mean ȳ_w; NaN for
        empty input or constant labels.

    Raises:
        DataError: Shape mismatch, wrong number of weights, or non-finite values.
    """
    y = _as_2d("y_true", y_true)
    y_hat = _as_2d("y_pred", y_pred)
    w = np.asarray(weights, dtype=np.float64)
    if y.shape != y_hat.shape:
        raise DataError(f"y_true {y.shape} and y_pred {y_hat.shape} have different shapes")
    if w.shape != (y.shape[1],):
        raise DataError(f"{w.size} weights given for {y.shape[1]} target columns")
    if np.any(w < 0) or not np.any(w > 0):
        raise DataError(f"weights must be non-negative and not all zero, got {w.tolist()}")
    for name, arr in (("y_true", y), ("y_pred", y_hat)):
        if not np.all(np.isfinite(arr)):
            bad = np.argwhere(~np.isfinite(arr))[:3].tolist()
            raise DataError(f"{name} has non-finite values at (row, column) {bad}")
    w_full = np.broadcast_to(w, y.shape)  # (N, K)
    return _weighted_r2_rows(y.ravel(), y_hat.ravel(), w_full.ravel())


def _require_columns(frame: pd.DataFrame, name: str, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{name}: missing column(s) {missing}; has {list(frame.columns)}",
        )


def _few(values: Sequence[object], n: int = 5) -> str:
    head = ", ".join(str(v) for v in list(values)[:n])
    return head + (f", … ({len(values)} in all)" if len(values) > n else "")


def weighted_r2_long(
    truth: pd.DataFrame,
    pred: pd.DataFrame,
    weights: Mapping[str, float] | None = None,
) -> float:
    """Weighted R² on Kaggle long-format tables, joined on ``sample_id``.

    Args:
        truth: Columns ``sample_id``, ``target_name``, ``target`` (one row per image×target).
        pred: Columns ``sample_id``, ``target`` (a submission).
        weights: Weight per target name; default: the competition weights.

    Returns:
        The weighted R² (see `weighted_r2`).

    Raises:
        DataError: Missing columns, duplicated ids, ids missing from / extra in `pred`,
            unknown target names, or non-finite values.
    """
    weight_map = dict(TARGET_WEIGHTS if weights is None else weights)
    _require_columns(truth, "truth", ("sample_id", "target_name", "target"))
    _require_columns(pred, "pred", ("sample_id", "target"))
    for name, frame in (("truth", truth), ("pred", pred)):
        dup = frame["sample_id"][frame["sample_id"].duplicated()].unique().tolist()
        if dup:
            raise DataError(f"{name}: duplicated sample_id(s): {_few(dup)}")
    truth_ids = set(truth["sample_id"])
    pred_ids = set(pred["sample_id"])
    missing = sorted(truth_ids - pred_ids)
    if missing:
        raise DataError(f"pred: {len(missing)} sample_id(s) missing, e.g. {_few(missing)}")
    extra = sorted(pred_ids - truth_ids)
    if extra:
        raise DataError(f"pred: {len(extra)} unexpected sample_id(s), e.g. {_few(extra)}")
    unknown = sorted(set(truth["target_name"]) - set(weight_map))
    if unknown:
        raise DataError(
            f"truth: unknown target_name(s) {unknown}; expected one of {sorted(weight_map)}"
        )
    joined = truth[["sample_id", "target_name", "target"]].merge(
        pred[["sample_id", "target"]].rename(columns={"target": "pred"}),
        on="sample_id",
        how="left",
        validate="one_to_one",
    )
    y = joined["target"].to_numpy(dtype=np.float64)
    y_hat = joined["pred"].to_numpy(dtype=np.float64)
    for name, arr, frame in (("truth", y, joined), ("pred", y_hat, joined)):
        bad = ~np.isfinite(arr)
        if bad.any():
            ids = frame["sample_id"].to_numpy()[bad].tolist()
            raise DataError(f"{name}: non-finite target for sample_id(s) {_few(ids)}")
    w = joined["target_name"].map(weight_map).to_numpy(dtype=np.float64)
    return _weighted_r2_rows(y, y_hat, w)


def per_target_r2(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    names: Sequence[str] = TARGETS,
) -> dict[str, float]:
    """Ordinary (unweighted) R² of each target column, for diagnosis.

    Args:
        y_true: Array[N, K].
        y_pred: Array[N, K].
        names: K column names (default: the 5 biomass targets).

    Returns:
        ``{name: r2}``; NaN for a column with fewer than 2 rows.
    """
    from sklearn.metrics import r2_score

    y = _as_2d("y_true", y_true)
    y_hat = _as_2d("y_pred", y_pred)
    if y.shape != y_hat.shape:
        raise DataError(f"y_true {y.shape} and y_pred {y_hat.shape} have different shapes")
    if len(names) != y.shape[1]:
        raise DataError(f"{len(names)} names given for {y.shape[1]} target columns")
    if y.shape[0] < 2:
        return {str(n): float("nan") for n in names}
    return {str(n): float(r2_score(y[:, j], y_hat[:, j])) for j, n in enumerate(names)}
