"""Losses of the MIL tile expert and of the scouter, and the sparsity weight schedule.

The expert is trained from image labels only. `mil_loss` combines three terms:

* **bag cross-entropy** on the pooled bag logits (optionally class-weighted);
* **sparsity**: an L1 penalty on every tile's *disease probability*
  ``1 − softmax(tile_logits)[negative_class]`` (in diseased and healthy bags alike), so a
  diseased image is explained by a few tiles rather than by all of them;
* **healthy-tile cross-entropy** toward the negative class, for the tiles of bags labelled
  with the negative class: a healthy image has healthy tiles only, so those are the only
  tile labels we know.

Design rule: a diseased bag's label is *never* copied onto its tiles. Disease is usually
visible on a few tiles only; teaching every tile of a diseased image that it is diseased
teaches the expert that healthy leaves of a sick plant look sick.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from fieldvision.errors import ConfigError

__all__ = ["mil_loss", "scouter_loss", "sparsity_ramp"]

_REDUCTIONS = ("mean", "sum", "none")


def _work(x: Tensor) -> Tensor:
    """`x` in float32 if it is a half type (AMP), unchanged otherwise (float64 stays)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; choose 'mean', 'sum' or 'none'")


def _tile_weights(mask: Tensor | None, b: int, t: int, like: Tensor) -> Tensor:
    """Float Tensor[B, T]: 1 on the selected tiles (all for None), 0 elsewhere."""
    if mask is None:
        return like.new_ones(b, t)
    if mask.shape != (b, t) or mask.dtype != torch.bool:
        raise ValueError(
            f"mask must be a bool Tensor[{b}, {t}], got {mask.dtype} {tuple(mask.shape)}"
        )
    if b and bool((~mask.any(dim=1)).any()):
        raise ValueError("mil_loss: a bag has no selected tile")
    return mask.to(like.dtype)


def mil_loss(
    bag_logits: Tensor,
    tile_logits: Tensor,
    labels: Tensor,
    negative_class: int | None,
    sparsity_weight: float = 0.0,
    healthy_tile_weight: float = 1.0,
    class_weights: Tensor | None = None,
    mask: Tensor | None = None,
    reduction: str = "mean",
) -> tuple[Tensor, dict[str, Tensor]]:
    """MIL training loss: bag CE + sparsity of tile disease + healthy-tile CE.

    Per bag ``b`` with label ``y_b`` (``n = negative_class``, means over its selected
    tiles ``t``)::

        bag_ce_b   = w_{y_b} · CE(bag_logits_b, y_b)
        sparsity_b = mean_t (1 − softmax(tile_logits_{b,t})[n])          (every bag)
        healthy_b  = mean_t CE(tile_logits_{b,t}, n)   if y_b == n, else 0
        loss_b     = bag_ce_b + sparsity_weight · sparsity_b + healthy_tile_weight · healthy_b

    With ``negative_class=None`` (no healthy class) only the bag CE is used.

    ``reduction="mean"`` averages each term over the bags it applies to: the bag CE is the
    class-weighted mean ``Σ_b w_{y_b} CE_b / Σ_b w_{y_b}`` (as ``F.cross_entropy(weight=)``),
    the sparsity the mean over all bags, the healthy-tile CE the mean over the healthy bags
    (0 for a batch without one), so no term shrinks with the batch's class mix.
    ``"none"`` returns ``loss_b`` (Tensor[B]) and ``"sum"`` its sum.

    Half-precision logits (AMP) are computed in float32; float64 stays float64.

    Args:
        bag_logits: Tensor[B, C].
        tile_logits: Tensor[B, T, C].
        labels: Tensor[B] int64 class indices.
        negative_class: Index of the healthy / background class, or None.
        sparsity_weight: Weight of the sparsity term (≥ 0; see `sparsity_ramp`).
        healthy_tile_weight: Weight of the healthy-tile CE term (≥ 0).
        class_weights: Tensor[C] weights of the bag CE; None = 1.
        mask: Tensor[B, T] bool of the tiles that count; None = all.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
        ``(loss, parts)``: the loss and, detached and mean-reduced (unweighted by the term
        weights), ``bag_ce`` and, with a negative class, ``sparsity`` and
        ``healthy_tile_ce``.

    Raises:
        ConfigError: `negative_class` out of range, or a negative term weight.
        ValueError: Bad shapes, a bag with no selected tile, or an unknown reduction.
    """
    _check_reduction(reduction)
    if bag_logits.ndim != 2 or tile_logits.ndim != 3:
        raise ValueError(
            f"bag_logits must be Tensor[B, C] and tile_logits Tensor[B, T, C], got "
            f"{tuple(bag_logits.shape)} and {tuple(tile_logits.shape)}"
        )
    b, c = bag_logits.shape
    if tile_logits.shape[0] != b or tile_logits.shape[2] != c:
        raise ValueError(f"tile_logits {tuple(tile_logits.shape)} do not match bag_logits {(b, c)}")
    if labels.shape != (b,):
        raise ValueError(f"labels must be Tensor[{b}], got {tuple(labels.shape)}")
    if negative_class is not None and not 0 <= int(negative_class) < c:
        raise ConfigError(f"negative_class={negative_class} is not a class index in [0, {c})")
    if sparsity_weight < 0 or healthy_tile_weight < 0:
        raise ConfigError(
            f"MIL loss weights must be >= 0, got sparsity_weight={sparsity_weight}, "
            f"healthy_tile_weight={healthy_tile_weight}"
        )
    labels = labels.long()
    bag = _work(bag_logits)
    ce = F.cross_entropy(bag, labels, reduction="none")  # (B,)
    if class_weights is None:
        w = torch.ones_like(ce)  # (B,)
    else:
        if class_weights.shape != (c,):
            raise ValueError(f"class_weights must be Tensor[{c}], got {tuple(class_weights.shape)}")
        w = class_weights.to(device=bag.device, dtype=bag.dtype)[labels]  # (B,)
    bag_ce = w * ce  # (B,)
    bag_ce_mean = bag_ce.sum() / w.sum().clamp_min(torch.finfo(bag.dtype).tiny)
    parts: dict[str, Tensor] = {"bag_ce": bag_ce_mean}
    per_bag = bag_ce  # (B,)
    mean = bag_ce_mean
    if negative_class is not None:
        n = int(negative_class)
        t = tile_logits.shape[1]
        m = _tile_weights(mask, b, t, bag)  # (B, T)
        count = m.sum(dim=1).clamp_min(1.0)  # (B,)
        z = _work(tile_logits).to(bag.dtype)  # (B, T, C)
        log_p = F.log_softmax(z, dim=-1)[..., n]  # (B, T) log p(healthy tile)
        disease = 1.0 - log_p.exp()  # (B, T), ≥ 0: its L1 norm is its sum
        sparsity = (disease * m).sum(dim=1) / count  # (B,)
        healthy = labels == n  # (B,)
        tile_ce = (-log_p * m).sum(dim=1) / count  # (B,)
        # torch.where, not a product: diseased bags get exactly no tile-level gradient.
        healthy_ce = torch.where(healthy, tile_ce, torch.zeros_like(tile_ce))  # (B,)
        sparsity_mean = sparsity.sum() / max(b, 1)
        healthy_mean = healthy_ce.sum() / healthy.sum().clamp_min(1)
        per_bag = per_bag + sparsity_weight * sparsity + healthy_tile_weight * healthy_ce
        mean = mean + sparsity_weight * sparsity_mean + healthy_tile_weight * healthy_mean
        parts["sparsity"] = sparsity_mean
        parts["healthy_tile_ce"] = healthy_mean
    parts = {k: v.detach() for k, v in parts.items()}
    if reduction == "none":
        return per_bag, parts
    if reduction == "sum":
        return per_bag.sum(), parts
    return mean, parts


def scouter_loss(importance_logits: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Mean squared error between the scouter's importance and a soft target map.

    Args:
        importance_logits: Tensor[B, R, C] scouter logits (``Scouter`` ``"logits"``).
        target: Tensor[B, R, C] in [0, 1] (e.g. the expert's per-tile disease probability,
            or a 0/1 map of the tiles that decided the bag).
        reduction: ``"mean"`` over everything, ``"none"`` for the per-image mean
            (Tensor[B]), ``"sum"`` for the sum of the per-image means.

    Returns:
        Scalar tensor (or Tensor[B] with ``reduction="none"``), float32 for half inputs.

    Raises:
        ValueError: Shape mismatch or unknown reduction.
    """
    _check_reduction(reduction)
    if importance_logits.shape != target.shape or importance_logits.ndim != 3:
        raise ValueError(
            f"importance_logits and target must both be Tensor[B, R, C], got "
            f"{tuple(importance_logits.shape)} and {tuple(target.shape)}"
        )
    p = torch.sigmoid(_work(importance_logits))  # (B, R, C)
    per_image = (p - target.to(p.dtype)).square().flatten(1).mean(dim=1)  # (B,)
    if reduction == "none":
        return per_image
    if reduction == "sum":
        return per_image.sum()
    return per_image.mean() if per_image.numel() else per_image.sum()


def sparsity_ramp(epoch: float, warmup_epochs: float, weight: float) -> float:
    """Sparsity weight schedule: off, then a linear ramp, then constant.

    ``0`` for ``epoch < W``, ``weight · (epoch − W) / W`` for ``W ≤ epoch < 2W``, ``weight``
    from ``2W`` on (``W = warmup_epochs``; ``W = 0`` is ``weight`` throughout). The expert
    first learns to classify bags, then is pushed to explain them with few tiles: a sparsity
    penalty from the first step would make every tile healthy before any disease is learnt.

    Args:
        epoch: Current (fractional) epoch, counted from 0.
        warmup_epochs: ``W`` ≥ 0.
        weight: Final weight ≥ 0.

    Raises:
        ConfigError: Negative `warmup_epochs` or `weight`.
    """
    if warmup_epochs < 0 or weight < 0:
        raise ConfigError(
            f"sparsity ramp: warmup_epochs and weight must be >= 0, got "
            f"{warmup_epochs} and {weight}"
        )
    if warmup_epochs == 0:
        return float(weight)
    frac = (float(epoch) - warmup_epochs) / warmup_epochs
    return float(weight) * min(max(frac, 0.0), 1.0)
