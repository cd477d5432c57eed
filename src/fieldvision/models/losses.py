"""Metric-learning losses: margin softmax heads (ArcFace, CosFace, softmax) and batch-hard
triplet loss.

Margin heads own the class-centre weights, so they are modules; they take
``embeddings: Tensor[B, E]`` (not necessarily normalised) and ``labels: Tensor[B]`` int64,
and return the cross-entropy (with optional label smoothing) under ``reduction``
(``"mean" | "sum" | "none"``). ``head.logits(embeddings, labels=None)`` gives the scaled
logits (with the margin applied to the target class when labels are given), for accuracy.

The heads are written here rather than taken from pytorch-metric-learning because we need
label smoothing, per-sample losses (for mixup) and logits; the tests check ArcFace and
CosFace against pytorch-metric-learning's ``ArcFaceLoss`` / ``CosFaceLoss``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from fieldvision.config import StrictModel
from fieldvision.errors import ConfigError
from fieldvision.registry import Registry

__all__ = [
    "HEADS",
    "ArcFaceHead",
    "CosFaceHead",
    "MarginHead",
    "MarginLossConfig",
    "SoftmaxHead",
    "batch_hard_triplet_loss",
    "create_head",
]

HEADS: Registry[Callable[..., MarginHead]] = Registry("loss")

_REDUCTIONS = ("mean", "sum", "none")


class MarginLossConfig(StrictModel):
    """The identity loss of a re-ID model: a margin head, optionally plus triplet loss."""

    loss: Literal["arcface", "cosface", "softmax"] = "arcface"
    margin: float | None = None  # None: head default (arcface 0.5 rad, cosface 0.35)
    scale: float = Field(30.0, gt=0)  # logit scale s of the margin head
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    triplet_weight: float = Field(0.0, ge=0)  # > 0 adds batch-hard triplet loss on features
    triplet_margin: float = Field(0.3, ge=0)


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean() if loss.numel() else loss.sum()  # empty batch -> 0, not NaN
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


class MarginHead(nn.Module):
    """Base class: normalised class centres ``weight: Tensor[C, E]`` and a scale.

    Args:
        embedding_dim: ``E``.
        num_classes: ``C``.
        scale: Logit scale ``s`` (the inverse temperature of the softmax).
        margin: Additive margin (meaning depends on the subclass).
        label_smoothing: Cross-entropy label smoothing.
        eps: Numerical guard for clamping cosines.
    """

    default_margin = 0.0
    default_scale = 30.0

    def __init__(
        self,
        embedding_dim: int,
        num_classes: int,
        scale: float | None = None,
        margin: float | None = None,
        label_smoothing: float = 0.0,
        eps: float = 1e-7,
    ) -> None:
        super().__init__()
        if num_classes < 1 or embedding_dim < 1:
            raise ConfigError(
                f"loss head needs num_classes >= 1 and embedding_dim >= 1, got "
                f"{num_classes} and {embedding_dim}"
            )
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_dim))
        nn.init.xavier_uniform_(self.weight)
        self.scale = float(self.default_scale if scale is None else scale)
        self.margin = float(self.default_margin if margin is None else margin)
        self.label_smoothing = float(label_smoothing)
        self.eps = float(eps)

    def cosine(self, embeddings: Tensor) -> Tensor:
        """Cosine similarity of each embedding to each class centre, Tensor[B, C]."""
        w = F.normalize(self.weight, dim=1).to(embeddings.dtype)
        return F.linear(F.normalize(embeddings, dim=1), w)

    def target_logit(self, cos_target: Tensor) -> Tensor:
        """Margin-modified cosine of the target class (subclasses override)."""
        return cos_target

    def logits(self, embeddings: Tensor, labels: Tensor | None = None) -> Tensor:
        """Scaled logits Tensor[B, C]; the margin is applied to the target class if labels."""
        cos = self.cosine(embeddings).clamp(-1 + self.eps, 1 - self.eps)  # (B, C)
        if labels is not None:
            idx = labels.view(-1, 1)
            cos = cos.scatter(1, idx, self.target_logit(cos.gather(1, idx)))
        return cos * self.scale

    def forward(self, embeddings: Tensor, labels: Tensor, reduction: str = "mean") -> Tensor:
        """Cross-entropy of the margin logits.

        Args:
            embeddings: Tensor[B, E].
            labels: Tensor[B] int64 in ``[0, C)``.
            reduction: ``"mean"``, ``"sum"`` or ``"none"`` (Tensor[B]).
        """
        logits = self.logits(embeddings, labels)
        if logits.dtype in (torch.float16, torch.bfloat16):  # softmax in fp32 under AMP
            logits = logits.float()
        loss = F.cross_entropy(
            logits, labels, reduction="none", label_smoothing=self.label_smoothing
        )
        return _reduce(loss, reduction)

    def extra_repr(self) -> str:
        c, e = self.weight.shape
        return f"embedding_dim={e}, num_classes={c}, scale={self.scale}, margin={self.margin}"


@HEADS.register("arcface")
class ArcFaceHead(MarginHead):
    """ArcFace (additive angular margin): target logit ``s·cos(θ + m)``.

    Past ``θ > π - m`` the curve ``cos(θ + m)`` would rise again, so there the logit
    continues as ``cos θ - m·sin m`` (monotonic in θ), as in the reference implementations.
    Default ``m = 0.5`` rad (28.6°), ``s = 30``.
    """

    default_margin = 0.5

    def target_logit(self, cos_target: Tensor) -> Tensor:
        m = self.margin
        sin_target = torch.sqrt((1.0 - cos_target * cos_target).clamp_min(self.eps))
        cos_plus = cos_target * math.cos(m) - sin_target * math.sin(m)  # cos(θ + m)
        fallback = cos_target - m * math.sin(m)
        return torch.where(cos_target >= -math.cos(m), cos_plus, fallback)


@HEADS.register("cosface")
class CosFaceHead(MarginHead):
    """CosFace (additive cosine margin): target logit ``s·(cos θ - m)``; default ``m = 0.35``."""

    default_margin = 0.35

    def target_logit(self, cos_target: Tensor) -> Tensor:
        return cos_target - self.margin


@HEADS.register("softmax")
class SoftmaxHead(MarginHead):
    """Plain softmax classifier (linear layer with bias, no normalisation, no margin).

    `scale` and `margin` are ignored; `cosine` is still the normalised similarity.
    """

    def __init__(
        self,
        embedding_dim: int,
        num_classes: int,
        scale: float | None = None,
        margin: float | None = None,
        label_smoothing: float = 0.0,
        eps: float = 1e-7,
    ) -> None:
        super().__init__(embedding_dim, num_classes, 1.0, 0.0, label_smoothing, eps)
        self.bias = nn.Parameter(torch.zeros(num_classes))

    def logits(self, embeddings: Tensor, labels: Tensor | None = None) -> Tensor:
        return F.linear(
            embeddings, self.weight.to(embeddings.dtype), self.bias.to(embeddings.dtype)
        )


def create_head(
    name: str,
    embedding_dim: int,
    num_classes: int,
    margin: float | None = None,
    scale: float | None = None,
    label_smoothing: float = 0.0,
) -> MarginHead:
    """Create a loss head by registry name (``arcface``, ``cosface``, ``softmax``).

    ``margin`` / ``scale`` of None use the head's default.
    """
    return HEADS.get(name)(
        embedding_dim, num_classes, scale=scale, margin=margin, label_smoothing=label_smoothing
    )


def batch_hard_triplet_loss(
    embeddings: Tensor,
    labels: Tensor,
    margin: float = 0.3,
    normalize: bool = True,
    reduction: str = "mean",
    eps: float = 1e-12,
) -> Tensor:
    """Batch-hard triplet loss (Hermans et al. 2017) with Euclidean distances.

    For each anchor: the farthest positive and the nearest negative in the batch,
    ``max(0, d(a, p) - d(a, n) + margin)``. Anchors without a positive or without a negative
    in the batch are left out (with ``reduction="none"`` their entry is 0).

    Args:
        embeddings: Tensor[B, E].
        labels: Tensor[B] (any integer labels).
        margin: Triplet margin.
        normalize: L2-normalise first (distances then lie in [0, 2], cosine geometry).
        reduction: ``"mean"`` over valid anchors, ``"sum"`` or ``"none"`` (Tensor[B]).
        eps: Added under the square root so the gradient at zero distance is finite.

    Returns:
        The loss (a scalar, or Tensor[B] with ``reduction="none"``).
    """
    if embeddings.shape[0] == 0:
        return embeddings.sum() * 0.0 if reduction != "none" else embeddings.new_zeros(0)
    x = F.normalize(embeddings, dim=1) if normalize else embeddings
    sq = (x * x).sum(dim=1)  # (B,)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * x @ x.t()).clamp_min(0.0)  # (B, B)
    dist = torch.sqrt(d2 + eps)
    same = labels[:, None] == labels[None, :]  # (B, B)
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    pos_mask = same & ~eye
    neg_mask = ~same
    hardest_pos = torch.where(pos_mask, dist, torch.zeros_like(dist)).amax(dim=1)  # (B,)
    big = torch.finfo(dist.dtype).max
    hardest_neg = torch.where(neg_mask, dist, torch.full_like(dist, big)).amin(dim=1)  # (B,)
    valid = pos_mask.any(dim=1) & neg_mask.any(dim=1)
    loss = torch.where(
        valid, F.relu(hardest_pos - hardest_neg + margin), torch.zeros_like(hardest_pos)
    )
    if reduction == "none":
        return loss
    if reduction == "mean":
        n = valid.sum()
        return loss.sum() / n.clamp_min(1)
    return _reduce(loss, reduction)
