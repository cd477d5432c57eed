"""The optimiser recipe every pipeline trains with: AdamW, warmup + cosine, per-group LR.

Parameter groups: the model's ``backbone`` submodule (when it has one) and everything else
(heads, necks, pooling), each split into decayed weights (matrices, kernels) and undecayed
1-D parameters (biases, norm scales, FiLM/GeM scalars). The backbone's learning rate is
``lr * backbone_lr_ratio``, so a pretrained backbone can be fine-tuned gently while freshly
initialised heads learn at full speed (the usual transfer recipe); 1.0 trains all alike.

``freeze_backbone_epochs`` goes one step further (linear probing, then fine-tuning): the
backbone groups get learning rate 0 for that many epochs while `TaskSystem` also switches
their gradients off (`fieldvision.training.freeze`); afterwards the backbone follows the
shared schedule again, entered through a warmup of its own (see `build_optimizer`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from pydantic import Field
from torch import nn

from fieldvision.config import StrictModel

__all__ = [
    "OptimConfig",
    "backbone_modules",
    "build_optimizer",
    "param_groups",
    "warmup_cosine",
]


class OptimConfig(StrictModel):
    """AdamW with linear warmup then cosine decay, stepped per optimiser step."""

    lr: float = Field(3e-3, gt=0)  # peak learning rate of heads (and backbone, see below)
    weight_decay: float = Field(1e-4, ge=0)  # AdamW decay (not on biases / norm parameters)
    warmup_epochs: float = Field(1.0, ge=0)  # linear warmup length, in epochs
    min_lr_ratio: float = Field(0.05, ge=0, le=1)  # final lr = lr * min_lr_ratio
    # Backbone lr = lr * backbone_lr_ratio (e.g. 0.1 for a pretrained backbone).
    backbone_lr_ratio: float = Field(1.0, gt=0)
    # Train only the heads for this many epochs (backbone lr 0, no backbone gradients,
    # backbone in eval mode so its BatchNorm statistics stay put), then unfreeze. 0 = off.
    freeze_backbone_epochs: float = Field(0.0, ge=0, allow_inf_nan=False)


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, min_lr_ratio: float) -> float:
    """Learning-rate multiplier at optimiser step `step` (0-based).

    Linear warmup ``(step + 1) / warmup_steps`` for the first `warmup_steps` steps (so step 0
    already learns), reaching 1 at ``step = warmup_steps - 1``; then cosine from 1 at
    ``step = warmup_steps`` down to `min_lr_ratio` at ``step = total_steps``, flat after.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def backbone_modules(modules: nn.Module | Iterable[nn.Module]) -> list[nn.Module]:
    """Every submodule named ``backbone`` (at any depth) of `modules`.

    This is what "the backbone" means for the per-group learning rate (`param_groups`) and
    for freezing (`fieldvision.training.freeze`), so both always act on the same parameters.
    """
    modules = [modules] if isinstance(modules, nn.Module) else list(modules)
    return [
        sub
        for module in modules
        for name, sub in module.named_modules()
        if name.split(".")[-1] == "backbone"
    ]


def param_groups(modules: nn.Module | Iterable[nn.Module], cfg: OptimConfig) -> list[dict]:
    """AdamW parameter groups: (backbone | rest) × (decay | no decay), empty ones dropped.

    Args:
        modules: The module(s) to optimise; a submodule named ``backbone`` anywhere inside
            gets the backbone learning rate. Parameters without ``requires_grad`` and
            parameters shared between modules are skipped / counted once.
        cfg: The recipe.

    Returns:
        Groups with ``params``, ``lr``, ``weight_decay``, a ``name`` for logging and
        ``backbone`` (bool: the group follows the backbone's schedule).
    """
    modules = [modules] if isinstance(modules, nn.Module) else list(modules)
    backbone_ids = {id(p) for sub in backbone_modules(modules) for p in sub.parameters()}
    buckets: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    seen: set[int] = set()
    for module in modules:
        for p in module.parameters():
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            key = (id(p) in backbone_ids, p.ndim > 1)
            buckets.setdefault(key, []).append(p)
    groups = []
    for (is_backbone, decays), params in sorted(buckets.items()):
        lr = cfg.lr * (cfg.backbone_lr_ratio if is_backbone else 1.0)
        name = f"{'backbone' if is_backbone else 'head'}{'' if decays else '_no_decay'}"
        groups.append(
            {
                "params": params,
                "lr": lr,
                "weight_decay": cfg.weight_decay if decays else 0.0,
                "name": name,
                "backbone": is_backbone,
            }
        )
    return groups


def build_optimizer(
    modules: nn.Module | Iterable[nn.Module],
    cfg: OptimConfig,
    total_steps: int,
    warmup_steps: int,
    freeze_steps: int = 0,
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over `param_groups` + the warmup-cosine schedule.

    Every group follows ``warmup_cosine``; with `freeze_steps`, the backbone groups are
    instead at 0 for the first `freeze_steps` steps and then follow it multiplied by a
    linear re-warmup of `warmup_steps` steps. Why re-warm: AdamW has no moments for the
    backbone yet when it unfreezes (no gradients so far), and its first bias-corrected steps
    move every weight by about the full learning rate whatever the gradient, while the
    heads were just fitted to the frozen features; a short ramp keeps those first updates
    from distorting the pretrained features.

    Args:
        modules: Module(s) to optimise.
        cfg: `OptimConfig`.
        total_steps: Optimiser steps in the whole run.
        warmup_steps: Steps of linear warmup (also the backbone's re-warmup).
        freeze_steps: Optimiser steps during which the backbone groups have lr 0.

    Returns:
        ``(optimizer, scheduler)``; call ``scheduler.step()`` after each optimiser step.
    """
    groups = param_groups(modules, cfg)
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
    total, warmup, floor = int(total_steps), max(0, int(warmup_steps)), cfg.min_lr_ratio
    freeze = max(0, int(freeze_steps))

    # Closures, not objects: LambdaLR does not checkpoint plain functions, so a resumed
    # run with a different epoch budget uses the new schedule length.
    def factor(step: int) -> float:
        return warmup_cosine(step, total, warmup, floor)

    def backbone_factor(step: int) -> float:
        if step < freeze:
            return 0.0
        if freeze == 0 or warmup == 0:
            return factor(step)
        return factor(step) * min(1.0, (step - freeze + 1) / warmup)

    lambdas = [backbone_factor if g["backbone"] else factor for g in groups]
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)
