"""Scouter calibration: make the scouter's tile scores probabilities the stop rule can trust.

The scouter regresses the expert's tile evidence with MSE (the seed's distillation). On
sparse evidence (a few lesion tiles among 64) a regression shrinks towards the mean: a
lesion tile the scouter ranks first may still score 0.1, which the glance entropy rule
reads as *confidently healthy* and stops on (DeepPCB: 71 of 100 defect boards seen
through one tile). Ranking was never the problem, the scale was.

Platt scaling fixes the scale without touching the ranking: one affine map of the
scouter's logit, ``z' = a·z + b``, fitted so that ``sigmoid(z')`` matches the expert's
evidence (soft-target binary cross-entropy) on the split's **validation images**, which
neither network trained on. The fit reads the expert's outputs, never the labels, so it
does not leak the labels of the images it is reported on. Because the scouter's map is an
average pool of a 1×1 convolution, the affine map folds into that convolution's weight
and bias: the calibrated scouter is an ordinary `Scouter` (its saved weights, the ONNX
export and the deployed bundle all carry the calibration).

An anti-correlated fit (``a ≤ 0``: the scouter ranks held-out tiles no better than
chance) gives ``a = 1e-3`` and ``b`` the logit of the mean evidence: every tile then
scores about the base rate, so the stop rule acts on the base rate, not on a ranking
the scouter does not have.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

__all__ = ["fit_platt", "fold_platt"]

_MIN_SCALE = 1e-3


def _bce_bits(logits: np.ndarray, target: np.ndarray) -> float:
    """Mean soft-target binary cross-entropy of ``sigmoid(logits)`` in bits."""
    z = torch.from_numpy(logits.astype(np.float64))
    t = torch.from_numpy(target.astype(np.float64))
    bce = torch.nn.functional.binary_cross_entropy_with_logits(z, t)
    return float(bce) / math.log(2.0)


def fit_platt(logits: np.ndarray, evidence: np.ndarray) -> dict[str, float]:
    """Fit ``a, b`` so that ``sigmoid(a·logits + b)`` matches `evidence` (soft targets).

    The soft-target likelihood is the hard-label one with every tile entered twice, as a
    positive weighted by its evidence and as a negative weighted by one minus it
    (scikit-learn's weighted logistic regression, almost unregularised).

    Args:
        logits: float[N] scouter logits of held-out tiles.
        evidence: float[N] the expert's evidence on the same tiles, in [0, 1].

    Returns:
        ``scale`` (a), ``shift`` (b), ``tiles`` (N), ``evidence_mean``, and the soft-target
        cross-entropy in bits per tile of the scores before (``bce_before``) and after
        (``bce_after``) the map.

    Raises:
        ValueError: Empty or mismatched inputs, non-finite logits, evidence outside [0, 1].
    """
    z = np.asarray(logits, np.float64).reshape(-1)
    t = np.asarray(evidence, np.float64).reshape(-1)
    if z.size == 0 or z.shape != t.shape:
        raise ValueError(f"need equal non-empty logits and evidence, got {z.shape}, {t.shape}")
    if not np.isfinite(z).all():
        raise ValueError("scouter logits must be finite")
    if not ((t >= 0) & (t <= 1)).all():
        raise ValueError("expert evidence must lie in [0, 1]")
    mean = float(np.clip(t.mean(), 1e-6, 1 - 1e-6))
    scale, shift = _MIN_SCALE, math.log(mean / (1 - mean))
    if z.std() > 0 and 0 < t.sum() < t.size:
        x = np.concatenate([z, z])[:, None]
        y = np.concatenate([np.ones_like(z), np.zeros_like(z)])
        w = np.concatenate([t, 1 - t])
        model = LogisticRegression(C=1e6, tol=1e-8, max_iter=1000).fit(x, y, sample_weight=w)
        if float(model.coef_[0, 0]) > _MIN_SCALE:
            scale, shift = float(model.coef_[0, 0]), float(model.intercept_[0])
    return dict(
        scale=scale,
        shift=shift,
        tiles=int(z.size),
        evidence_mean=float(t.mean()),
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
    conv = scouter.score
    conv.weight.mul_(scale)
    if conv.bias is None:  # our Scouter always has one; a custom subclass may not
        conv.bias = nn.Parameter(torch.zeros(conv.out_channels, device=conv.weight.device))
    conv.bias.mul_(scale).add_(shift)
    return scouter
