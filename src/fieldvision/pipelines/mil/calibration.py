"""Scouter calibration: make the scouter's tile scores probabilities the stop rule can trust.

The scouter regresses the expert's tile evidence with MSE (the seed's distillation). On
sparse evidence (a few lesion tiles among 64) a regression shrinks towards the mean, and
its scores carry the expert's noise floor (every tile a few per cent): neither is the
probability that a tile matters, which the glance stop rule
(`fieldvision.ops.glance.select_tiles`) needs. Read raw, the shrunk scores looked
confidently healthy on DeepPCB (71 of 100 defect boards were seen through one tile), and a
noise floor summed over 63 unseen tiles never lets a clean leaf stop.

Platt scaling fixes the scale without touching the ranking: one affine map of the
scouter's logit, ``z' = a·z + b``, fitted so that ``sigmoid(z')`` is the probability that
the expert calls the tile evidence (tile evidence ≥ 0.5, the tiles that decide a bag), on
the split's **validation images**, which neither network trained on. The fit reads the
expert's outputs, never the labels, so it does not leak the labels of the images it is
reported on. Because the scouter's map is an average pool of a 1×1 convolution, the
affine map folds into that convolution's weight and bias: the calibrated scouter is an
ordinary `Scouter` (its saved weights, the ONNX export and the deployed bundle all carry
the calibration).

Two degenerate cases keep the scouter's ranking as it is (``a = 1``), because squashing
the scores into a sliver (``a ≈ 0``) would leave the tile order to float rounding, which
then differs between PyTorch and ONNX Runtime:

* a fit with ``a ≤ 0`` (the scouter ranks held-out tiles no better than chance) fits the
  level only: ``b`` such that the mean calibrated score is the target rate;
* targets that are all 0 or all 1 (no held-out tile the expert calls evidence, as with
  a barely trained expert), or constant logits, carry no information: the identity map,
  recorded with ``fitted: false``.

"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import brentq
from scipy.special import expit
from sklearn.linear_model import LogisticRegression
from torch import nn

__all__ = ["fit_platt", "fold_platt"]


def _bce_bits(logits: np.ndarray, target: np.ndarray) -> float:
    """Mean soft-target binary cross-entropy of ``sigmoid(logits)`` in bits."""
    z = torch.from_numpy(logits.astype(np.float64))
    t = torch.from_numpy(target.astype(np.float64))
    bce = torch.nn.functional.binary_cross_entropy_with_logits(z, t)
    return float(bce) / math.log(2.0)


def fit_platt(logits: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Fit ``a, b`` so that ``sigmoid(a·logits + b)`` matches `target` (0/1 or soft).

    A soft target's likelihood is the hard-label one with every tile entered twice, as a
    positive weighted by its target and as a negative weighted by one minus it
    (scikit-learn's weighted logistic regression, almost unregularised).

    Args:
        logits: float[N] scouter logits of held-out tiles.
        target: float[N] in [0, 1] on the same tiles (1: the expert calls it evidence).

    Returns:
        ``scale`` (a), ``shift`` (b), ``fitted`` (False: the identity, see the module
        docstring), ``tiles`` (N), ``target_mean``, and the
        cross-entropy in bits per tile of the scores before (``bce_before``) and after
        (``bce_after``) the map.

    Raises:
        ValueError: Empty or mismatched inputs, non-finite logits, targets outside [0, 1].
    """
    z = np.asarray(logits, np.float64).reshape(-1)
    t = np.asarray(target, np.float64).reshape(-1)
    if z.size == 0 or z.shape != t.shape:
        raise ValueError(f"need equal non-empty logits and targets, got {z.shape}, {t.shape}")
    if not np.isfinite(z).all():
        raise ValueError("scouter logits must be finite")
    if not ((t >= 0) & (t <= 1)).all():
        raise ValueError("calibration targets must lie in [0, 1]")
    scale, shift, fitted = 1.0, 0.0, False
    if np.ptp(z) > 0 and 0 < t.sum() < t.size:
        fitted = True
        x = np.concatenate([z, z])[:, None]
        y = np.concatenate([np.ones_like(z), np.zeros_like(z)])
        w = np.concatenate([t, 1 - t])
        model = LogisticRegression(C=1e6, tol=1e-8, max_iter=1000).fit(x, y, sample_weight=w)
        scale, shift = float(model.coef_[0, 0]), float(model.intercept_[0])
        if scale <= 0:  # no usable ranking: keep it, fit the level (the MLE with offset z)
            scale = 1.0
            shift = float(brentq(lambda b: np.mean(expit(z + b)) - t.mean(), -60.0, 60.0))
    return dict(
        scale=scale,
        shift=shift,
        fitted=fitted,
        tiles=int(z.size),
        target_mean=float(t.mean()),
        bce_before=_bce_bits(z, t),
        bce_after=_bce_bits(scale * z + shift, t),
    )


@torch.no_grad()
def fold_platt(scouter: nn.Module, scale: float, shift: float) -> nn.Module:
    """Fold ``z' = scale·z + shift`` into the scouter's final 1×1 convolution, in place.

    Exact because the map is ``avg_pool(conv(features))`` and an average of an affine
    function is the affine function of the average.

    Args:
        scouter: A `fieldvision.models.mil.Scouter` (its ``score`` is the 1×1 convolution).
        scale: ``a`` (> 0 keeps the ranking).
        shift: ``b``.

    Returns:
        `scouter`, changed.
    """
    scouter.score.weight.mul_(scale)
    scouter.score.bias.mul_(scale).add_(shift)
    return scouter
