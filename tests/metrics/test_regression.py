"""Competition weighted R² (wide and long format) and per-target R²."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import r2_score

from fieldvision.errors import DataError
from fieldvision.metrics.regression import per_target_r2, weighted_r2, weighted_r2_long
from fieldvision.schemas.biomass import TARGETS

# The published competition weights, written out (not imported) so the default is checked.
WEIGHTS = (0.1, 0.1, 0.1, 0.2, 0.5)


def _reference(y_true, y_pred, weights=WEIGHTS) -> float:
    """Plain loops over (image, target) rows, exactly as the competition describes."""
    rows = [
        (float(w), float(y), float(p))
        for yt, yp in zip(y_true, y_pred, strict=True)
        for w, y, p in zip(weights, yt, yp, strict=True)
    ]
    sw = sum(w for w, _, _ in rows)
    mean = sum(w * y for w, y, _ in rows) / sw
    ss_res = sum(w * (y - p) ** 2 for w, y, p in rows)
    ss_tot = sum(w * (y - mean) ** 2 for w, y, _ in rows)
    return 1 - ss_res / ss_tot


def test_hand_worked_single_image():
    # y = (10, 0, 0, 10, 20), ŷ = (8, 2, 0, 10, 20), Σw = 1
    # ȳ_w = 0.1·10 + 0.2·10 + 0.5·20 = 13
    # SS_res = 0.1·4 + 0.1·4 = 0.8
    # SS_tot = 0.1·9 + 0.1·169 + 0.1·169 + 0.2·9 + 0.5·49 = 61
    y = np.array([[10.0, 0.0, 0.0, 10.0, 20.0]])
    p = np.array([[8.0, 2.0, 0.0, 10.0, 20.0]])
    assert weighted_r2(y, p) == pytest.approx(1 - 0.8 / 61, abs=1e-12)


def test_matches_reference_on_random_data():
    rng = np.random.default_rng(0)
    y = rng.gamma(2.0, 10.0, size=(40, 5))
    p = y + rng.normal(0, 5, size=y.shape)
    assert weighted_r2(y, p) == pytest.approx(_reference(y, p), rel=1e-12)
    # It is ONE R² with a global mean, not the weighted mean of per-target R² values.
    per = per_target_r2(y, p)
    averaged = sum(w * per[t] for w, t in zip(WEIGHTS, TARGETS, strict=True))
    assert abs(weighted_r2(y, p) - averaged) > 1e-3


def test_perfect_and_weighted_mean_predictions():
    rng = np.random.default_rng(1)
    y = rng.uniform(0, 50, size=(10, 5))
    assert weighted_r2(y, y) == 1.0
    w = np.broadcast_to(np.array(WEIGHTS), y.shape)
    mean = (w * y).sum() / w.sum()
    assert weighted_r2(y, np.full_like(y, mean)) == pytest.approx(0.0, abs=1e-12)
    assert weighted_r2(y, np.full_like(y, mean + 5)) < 0


def test_weights_matter():
    y = np.array([[1.0, 2.0, 3.0, 4.0, 6.0], [2.0, 1.0, 0.0, 2.0, 3.0], [5.0, 0.0, 1.0, 6.0, 6.0]])
    off_total, off_dead = y.copy(), y.copy()
    off_total[0, 4] += 1.0
    off_dead[0, 1] += 1.0
    assert weighted_r2(y, off_total) < weighted_r2(y, off_dead)
    uniform = (1.0,) * 5
    assert weighted_r2(y, off_total, uniform) == pytest.approx(weighted_r2(y, off_dead, uniform))


def test_constant_or_empty_labels_give_nan():
    assert np.isnan(weighted_r2(np.ones((3, 5)), np.ones((3, 5))))
    assert np.isnan(weighted_r2(np.zeros((0, 5)), np.zeros((0, 5))))


@pytest.mark.parametrize(
    ("y_shape", "p_shape", "weights", "bad", "match"),
    [
        ((3, 5), (3, 4), WEIGHTS, None, "different shapes"),
        ((3, 5), (3, 5), (1.0, 1.0), None, "weights"),
        ((3, 5), (3, 5), (0.0,) * 5, None, "not all zero"),
        ((3, 5), (3, 5), WEIGHTS, "pred", "y_pred has non-finite"),
        ((3, 5), (3, 5), WEIGHTS, "true", "y_true has non-finite"),
        ((2, 3, 5), (2, 3, 5), WEIGHTS, None, "expected an array"),
    ],
)
def test_bad_input(y_shape, p_shape, weights, bad, match):
    y, p = np.ones(y_shape), np.ones(p_shape)
    if bad == "pred":
        p[1, 2] = np.nan
    if bad == "true":
        y[0, 0] = np.inf
    with pytest.raises(DataError, match=match):
        weighted_r2(y, p, weights)


def _long(y: np.ndarray, column: str = "target") -> pd.DataFrame:
    rows = [
        {"sample_id": f"ID{i}__{t}", "target_name": t, column: float(y[i, j])}
        for i in range(len(y))
        for j, t in enumerate(TARGETS)
    ]
    return pd.DataFrame(rows)


def test_long_format_matches_wide_in_any_row_order():
    rng = np.random.default_rng(2)
    y = rng.uniform(0, 30, size=(6, 5))
    p = y + rng.normal(0, 3, size=y.shape)
    truth = _long(y)
    pred = _long(p)[["sample_id", "target"]].sample(frac=1.0, random_state=0)
    assert weighted_r2_long(truth, pred) == pytest.approx(weighted_r2(y, p), rel=1e-12)


def _mutate(kind: str, truth: pd.DataFrame, pred: pd.DataFrame):
    if kind == "missing":
        pred = pred.iloc[2:]
    elif kind == "extra":
        pred = pd.concat([pred, pd.DataFrame({"sample_id": ["ghost__GDM_g"], "target": [1.0]})])
    elif kind == "dup":
        pred = pd.concat([pred, pred.iloc[:1]])
    elif kind == "nan":
        pred = pred.assign(target=pred["target"].where(pred.index != 3))
    elif kind == "column":
        pred = pred.rename(columns={"target": "prediction"})
    elif kind == "name":
        truth = truth.assign(target_name=truth["target_name"].replace("GDM_g", "GDM"))
    return truth, pred


@pytest.mark.parametrize(
    ("kind", "match"),
    [
        ("missing", r"2 sample_id\(s\) missing, e.g. ID0__Dry_Dead_g"),
        ("extra", "unexpected sample_id.*ghost__GDM_g"),
        ("dup", "duplicated sample_id.*ID0__Dry_Green_g"),
        ("nan", "pred: non-finite target for sample_id.*ID0__GDM_g"),
        ("column", "pred: missing column"),
        ("name", "unknown target_name.*GDM"),
    ],
)
def test_long_format_bad_input(kind, match):
    y = np.arange(15, dtype=float).reshape(3, 5)
    truth, pred = _mutate(kind, _long(y), _long(y)[["sample_id", "target"]])
    with pytest.raises(DataError, match=match):
        weighted_r2_long(truth, pred)


def test_per_target_r2_is_sklearn_per_column():
    rng = np.random.default_rng(3)
    y = rng.uniform(0, 10, size=(20, 5))
    p = y + rng.normal(0, 1, size=y.shape)
    out = per_target_r2(y, p)
    assert list(out) == list(TARGETS)
    for j, t in enumerate(TARGETS):
        assert out[t] == pytest.approx(r2_score(y[:, j], p[:, j]))
    assert all(np.isnan(v) for v in per_target_r2(y[:1], p[:1]).values())
