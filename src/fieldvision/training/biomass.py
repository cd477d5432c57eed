"""Lightning systems for the biomass pipeline, plus the shared optimiser recipe.

The models (`Phase1Model`, `Phase2Model`) are plain ``nn.Module`` s; the systems here own
the training logic only: loss, metrics, optimiser and schedule.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn

from fieldvision.errors import RunError
from fieldvision.metrics.regression import weighted_r2
from fieldvision.models.biomass import (
    BIOMASS_WEIGHTS,
    Phase1Config,
    Phase1Model,
    Phase2Config,
    Phase2Model,
    phase1_loss,
    weighted_biomass_loss,
)

__all__ = [
    "OptimConfig",
    "Phase1System",
    "Phase2System",
    "build_optimizer",
    "load_biomass_model",
    "phase1_metrics",
    "warmup_cosine",
]


@dataclass
class OptimConfig:
    """AdamW with linear warmup then cosine decay, stepped per optimiser step."""

    lr: float = 3e-3  # peak learning rate
    weight_decay: float = 1e-4  # AdamW decay (not applied to biases and norm parameters)
    warmup_epochs: float = 1.0  # linear warmup length, in epochs
    min_lr_ratio: float = 0.05  # final lr = lr * min_lr_ratio


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


def build_optimizer(
    params: Iterable[nn.Parameter],
    cfg: OptimConfig,
    total_steps: int,
    warmup_steps: int,
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW (no decay on 1-D parameters: biases, norms, FiLM/GeM scalars) + warmup-cosine.

    Args:
        params: Parameters to optimise (those without ``requires_grad`` are skipped).
        cfg: `OptimConfig`.
        total_steps: Optimiser steps in the whole run.
        warmup_steps: Steps of linear warmup.

    Returns:
        ``(optimizer, scheduler)``; call ``scheduler.step()`` after each optimiser step.
    """
    decay, no_decay = [], []
    for p in params:
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.lr)
    total, warmup, floor = int(total_steps), max(0, int(warmup_steps)), cfg.min_lr_ratio

    # A closure, not an object: LambdaLR does not checkpoint plain functions, so a resumed
    # run with a different epoch budget uses the new schedule length.
    def factor(step: int) -> float:
        return warmup_cosine(step, total, warmup, floor)

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _optim_config(optim: OptimConfig | Mapping[str, float] | None) -> OptimConfig:
    # A mapping is what `load_from_checkpoint` hands back from the saved hyperparameters.
    if optim is None:
        return OptimConfig()
    return optim if isinstance(optim, OptimConfig) else OptimConfig(**optim)


class _BiomassSystemBase(L.LightningModule):
    """Common optimiser wiring; subclasses set ``self.model`` and ``self.optim``."""

    model: nn.Module
    optim: OptimConfig

    def _save_plain_hparams(self, **hparams: Any) -> None:
        """Save hyperparameters as plain values (dicts, not dataclasses), plus the model's
        class and config: checkpoints then load with ``torch.load(weights_only=True)`` and
        carry what `load_biomass_model` needs to rebuild the model. The model itself is
        never saved as a hyperparameter (its weights are in the state dict)."""
        cfg = getattr(self.model, "cfg", None)
        self.save_hyperparameters(
            {
                **hparams,
                "optim": asdict(self.optim),
                "model_class": type(self.model).__name__,
                "model_config": asdict(cfg) if cfg is not None else None,
            }
        )

    def configure_optimizers(self) -> dict[str, Any]:
        total = max(1, int(self.trainer.estimated_stepping_batches))
        epochs = self.trainer.max_epochs if (self.trainer.max_epochs or 0) > 0 else 1
        warmup = round(self.optim.warmup_epochs * total / epochs)
        optimizer, scheduler = build_optimizer(self.model.parameters(), self.optim, total, warmup)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
        }


class Phase1System(_BiomassSystemBase):
    """Train a `Phase1Model` on (month, NDVI, height[, species, state]).

    Batches are dicts: ``image`` Tensor[B, 3, H, W] in [0, 1]; ``month_sin``, ``month_cos``,
    ``ndvi_z``, ``height_z`` Tensor[B] float; ``species``, ``state`` Tensor[B] int64 (read
    only when the model predicts them).

    Logs ``train_loss``, ``val_loss`` and, per validation epoch, ``val_month_err`` (mean
    absolute circular error in months), ``val_ndvi_rmse``, ``val_height_rmse`` (z units) and
    ``val_species_acc`` / ``val_state_acc`` when predicted.

    Args:
        model: The model.
        optim: Optimiser settings (an `OptimConfig` or its fields as a mapping).
        task_weights: Loss weight per task (missing tasks weigh 1).
    """

    def __init__(
        self,
        model: Phase1Model,
        optim: OptimConfig | Mapping[str, float] | None = None,
        task_weights: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.optim = _optim_config(optim)
        self.task_weights = dict(task_weights or {})
        self._save_plain_hparams(task_weights=self.task_weights)
        self._val_outputs: list[dict[str, Tensor]] = []

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        return self.model(image)

    def _shared_step(
        self, batch: Mapping[str, Tensor], stage: str
    ) -> tuple[Tensor, dict[str, Tensor]]:
        out = self.model(batch["image"])
        loss, parts = phase1_loss(out, batch, self.task_weights)
        b = batch["image"].shape[0]
        self.log(f"{stage}_loss", loss, prog_bar=True, batch_size=b, on_epoch=True)
        for name, value in parts.items():
            self.log(f"{stage}_{name}_loss", value, batch_size=b, on_epoch=True)
        return loss, out

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        loss, _ = self._shared_step(batch, "train")
        return loss

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        _, out = self._shared_step(batch, "val")
        record = {k: v.detach().float().cpu() for k, v in out.items()}
        for key in ("month_sin", "month_cos", "ndvi_z", "height_z", "species", "state"):
            if key in batch:
                record[f"true_{key}"] = batch[key].detach().cpu()
        self._val_outputs.append(record)

    def on_validation_epoch_end(self) -> None:
        if not self._val_outputs:
            return
        rec = {k: torch.cat([r[k] for r in self._val_outputs]) for k in self._val_outputs[0]}
        self._val_outputs.clear()
        for name, value in phase1_metrics(rec).items():
            self.log(f"val_{name}", value, prog_bar=name == "month_err")

    def predict_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        return self.model(batch["image"])


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


class Phase2System(_BiomassSystemBase):
    """Train a `Phase2Model` with the metric-weighted loss; validate with weighted R².

    Batches are dicts: ``image`` Tensor[B, 3, H, W] in [0, 1]; ``targets`` Tensor[B, 5]
    grams in `BIOMASS_TARGETS` order; ``meta`` Tensor[B, M] (needed when the model uses
    FiLM; ignored otherwise).

    Logs ``train_loss``, ``val_loss`` and ``val_r2`` (competition weighted R² over the
    whole validation epoch, in grams: the early-stopping monitor).

    Args:
        model: The model.
        optim: Optimiser settings (an `OptimConfig` or its fields as a mapping).
        loss_kind: ``"mse"`` or ``"huber"`` (on scaled targets).
    """

    def __init__(
        self,
        model: Phase2Model,
        optim: OptimConfig | Mapping[str, float] | None = None,
        loss_kind: str = "mse",
    ) -> None:
        super().__init__()
        self.model = model
        self.optim = _optim_config(optim)
        self.loss_kind = loss_kind
        self._save_plain_hparams(loss_kind=loss_kind)
        self._val_preds: list[Tensor] = []
        self._val_targets: list[Tensor] = []

    def _meta(self, batch: Mapping[str, Tensor]) -> Tensor | None:
        return batch.get("meta") if self.model.cfg.use_film else None

    def forward(self, image: Tensor, meta: Tensor | None = None) -> dict[str, Tensor | None]:
        return self.model(image, meta)

    def _shared_step(self, batch: Mapping[str, Tensor], stage: str) -> tuple[Tensor, Tensor]:
        out = self.model(batch["image"], self._meta(batch))
        pred = out["targets"].float()  # (B, 5) grams; loss in fp32 even under AMP
        loss = weighted_biomass_loss(
            pred,
            batch["targets"].float(),
            weights=BIOMASS_WEIGHTS,
            scale=self.model.target_scale,
            kind=self.loss_kind,
        )
        self.log(f"{stage}_loss", loss, prog_bar=True, batch_size=pred.shape[0], on_epoch=True)
        return loss, pred

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        loss, _ = self._shared_step(batch, "train")
        return loss

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        _, pred = self._shared_step(batch, "val")
        self._val_preds.append(pred.detach().cpu())
        self._val_targets.append(batch["targets"].detach().float().cpu())

    def on_validation_epoch_end(self) -> None:
        if not self._val_preds:
            return
        pred = torch.cat(self._val_preds).double().numpy()
        true = torch.cat(self._val_targets).double().numpy()
        self._val_preds.clear()
        self._val_targets.clear()
        # Diverged (non-finite) predictions log NaN: EarlyStopping (check_finite) then stops
        # the run and best.ckpt keeps the last good epoch.
        r2 = weighted_r2(true, pred, BIOMASS_WEIGHTS) if np.isfinite(pred).all() else math.nan
        self.log("val_r2", r2, prog_bar=True)

    def predict_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> dict[str, Tensor | None]:
        out = self.model(batch["image"], self._meta(batch))
        return {"targets": out["targets"], "tile_weights": out["tile_weights"]}


_MODELS: dict[str, tuple[type[nn.Module], type]] = {
    "Phase1Model": (Phase1Model, Phase1Config),
    "Phase2Model": (Phase2Model, Phase2Config),
}


def load_biomass_model(
    ckpt_path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> Phase1Model | Phase2Model:
    """Rebuild a Phase-1/Phase-2 model from a system checkpoint (no Lightning needed).

    The checkpoint is read with ``weights_only=True`` (no code execution); the model is
    rebuilt from the saved class name and config and its weights loaded strictly. Returned
    in eval mode.

    Raises:
        RunError: Missing/unreadable file, or not a biomass system checkpoint.
    """
    path = Path(ckpt_path)
    if not path.is_file():
        raise RunError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise RunError(
            f"{path}: cannot read checkpoint ({exc.__class__.__name__}: {exc})"
        ) from None
    hparams = ckpt.get("hyper_parameters", {}) if isinstance(ckpt, dict) else {}
    name, cfg_dict = hparams.get("model_class"), hparams.get("model_config")
    if name not in _MODELS or not isinstance(cfg_dict, dict):
        raise RunError(f"{path}: not a biomass system checkpoint (model class {name!r})")
    model_cls, cfg_cls = _MODELS[name]
    # Weights come from the checkpoint, so never re-read the original pretrained file.
    try:
        cfg = cfg_cls(**{**cfg_dict, "pretrained": False})
    except TypeError as exc:
        raise RunError(f"{path}: model config does not match {cfg_cls.__name__}: {exc}") from None
    model = model_cls(cfg)
    prefix = "model."
    state = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    model.load_state_dict(state, strict=True)
    return model.eval()
