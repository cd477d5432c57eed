"""Lightning systems of the biomass pipeline: the Phase-1 and Phase-2 losses and metrics.

The models (`Phase1Model`, `Phase2Model`) are plain ``nn.Module`` s; the optimiser, epoch
hook and validation bookkeeping come from `TaskSystem`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel
from torch import Tensor

from fieldvision.metrics.regression import weighted_r2
from fieldvision.models.biomass import (
    Phase1Model,
    Phase2Model,
    phase1_loss,
    weighted_biomass_loss,
)
from fieldvision.models.biomass_heads import bin_cross_entropy
from fieldvision.schemas.biomass import WEIGHTS
from fieldvision.training.optim import OptimConfig
from fieldvision.training.system import StepOutput, TaskSystem

__all__ = ["Phase1System", "Phase2System", "phase1_metrics"]

_PHASE1_LABELS = ("month_sin", "month_cos", "ndvi_z", "height_z", "species", "state")


class Phase1System(TaskSystem):
    """Train a `Phase1Model` on (month, NDVI, height[, species, state]).

    Batches are dicts: ``image`` Tensor[B, 3, H, W] in [0, 1]; ``month_sin``, ``month_cos``,
    ``ndvi_z``, ``height_z`` Tensor[B] float; ``species``, ``state`` Tensor[B] int64 (read
    only when the model predicts them).

    Logs ``train_loss``, ``val_loss``, per-task losses and, per validation epoch,
    ``val_month_err`` (mean absolute circular error in months), ``val_ndvi_rmse``,
    ``val_height_rmse`` (z units) and ``val_species_acc`` / ``val_state_acc`` when predicted.
    Best checkpoint: lowest ``val_loss``.

    Args:
        model: The model.
        optim: Optimiser recipe.
        task_weights: Loss weight per task (missing tasks weigh 1).
    """

    monitor = "val_loss"
    mode = "min"
    progress_metrics = ("month_err",)

    def __init__(
        self,
        model: Phase1Model,
        optim: OptimConfig | BaseModel | Mapping[str, Any] | None = None,
        task_weights: Mapping[str, float] | None = None,
    ) -> None:
        weights = dict(task_weights or {})
        super().__init__(model, optim, task_weights=weights)
        self.task_weights = weights

    def _shared_step(self, batch: Mapping[str, Tensor], stage: str) -> StepOutput:
        out = self.model(batch["image"])
        loss, parts = phase1_loss(out, batch, self.task_weights)
        collect: dict[str, Tensor] = {}
        if stage == "val":
            collect = {k: v.float() for k, v in out.items()}
            collect.update({f"true_{k}": batch[k] for k in _PHASE1_LABELS if k in batch})
        return StepOutput(loss, {f"{k}_loss": v for k, v in parts.items()}, collect)

    def epoch_metrics(self, collected: Mapping[str, Tensor]) -> dict[str, float]:
        return phase1_metrics(collected)


def phase1_metrics(rec: Mapping[str, Tensor]) -> dict[str, float]:
    """Phase-1 validation metrics from concatenated outputs and ``true_*`` labels.

    Returns:
        ``month_err`` (mean absolute circular error, months), ``ndvi_rmse``,
        ``height_rmse`` (z units), and ``species_acc`` / ``state_acc`` when predicted.
    """
    metrics: dict[str, float] = {}
    month = rec["month"]  # (N, 2) sin, cos
    angle_pred = torch.atan2(month[:, 0], month[:, 1])
    angle_true = torch.atan2(rec["true_month_sin"].float(), rec["true_month_cos"].float())
    diff = torch.remainder(angle_pred - angle_true + math.pi, 2 * math.pi) - math.pi
    metrics["month_err"] = float(diff.abs().mean() * 12.0 / (2 * math.pi))
    for task in ("ndvi", "height"):
        err = rec[task] - rec[f"true_{task}_z"].float()
        metrics[f"{task}_rmse"] = float(err.square().mean().sqrt())
    for task in ("species", "state"):
        if task in rec and f"true_{task}" in rec:
            hit = rec[task].argmax(dim=-1) == rec[f"true_{task}"].long()
            metrics[f"{task}_acc"] = float(hit.float().mean())
    return metrics


class Phase2System(TaskSystem):
    """Train a `Phase2Model` with the metric-weighted loss; validate with weighted R².

    Batches are dicts: ``image`` Tensor[B, 3, H, W] in [0, 1]; ``targets`` Tensor[B, 5]
    grams in `TARGETS` order; ``meta`` Tensor[B, M] (needed when the model uses FiLM;
    ignored otherwise).

    Logs ``train_loss``, ``val_loss`` and ``val_r2`` (competition weighted R² over the
    whole validation epoch, in grams: the best-checkpoint and early-stopping monitor);
    with bin heads also ``<stage>_bin_ce``.

    Args:
        model: The model.
        optim: Optimiser recipe.
        loss_kind: ``"mse"`` or ``"huber"`` (on scaled targets).
        bin_loss_weight: Weight of the bin cross-entropy added to the regression loss when
            the model has bin heads (``phase2.bins > 0``); 0 = regression loss only.
    """

    monitor = "val_r2"
    mode = "max"
    progress_metrics = ("r2",)

    def __init__(
        self,
        model: Phase2Model,
        optim: OptimConfig | BaseModel | Mapping[str, Any] | None = None,
        loss_kind: str = "mse",
        bin_loss_weight: float = 0.0,
    ) -> None:
        super().__init__(model, optim, loss_kind=loss_kind, bin_loss_weight=bin_loss_weight)
        self.loss_kind = loss_kind
        self.bin_loss_weight = float(bin_loss_weight)

    def _shared_step(self, batch: Mapping[str, Tensor], stage: str) -> StepOutput:
        meta = batch.get("meta") if self.model.cfg.use_film else None
        out = self.model(batch["image"], meta)
        pred = out["targets"].float()  # (B, 5) grams, fp32 loss
        true = batch["targets"].float()
        loss = weighted_biomass_loss(
            pred, true, weights=WEIGHTS, scale=self.model.target_scale, kind=self.loss_kind
        )
        logs: dict[str, Tensor] = {}
        logits = out.get("bin_logits")
        if logits is not None:
            ce = bin_cross_entropy(logits, true[:, :3], self.model.bin_edges)
            logs["bin_ce"] = ce.detach()
            if self.bin_loss_weight > 0:  # weight 0 leaves the loss bit-identical
                loss = loss + self.bin_loss_weight * ce
        collect = {"pred": pred, "true": true} if stage == "val" else {}
        return StepOutput(loss, logs, collect)

    def epoch_metrics(self, collected: Mapping[str, Tensor]) -> dict[str, float]:
        pred = collected["pred"].double().numpy()
        true = collected["true"].double().numpy()
        # Diverged (non-finite) predictions log NaN: EarlyStopping (check_finite) then stops
        # the run and best.ckpt keeps the last good epoch.
        r2 = weighted_r2(true, pred, WEIGHTS) if np.isfinite(pred).all() else math.nan
        return {"r2": r2}
