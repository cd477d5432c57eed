"""The base Lightning system every task system extends (Lightning's model/system split).

A *model* is a plain ``nn.Module`` (registered, exportable); a *system* owns how it is
trained. `TaskSystem` gives every task the same optimiser wiring (`configure_optimizers`
from `OptimConfig`), the same epoch hook (``set_epoch`` on the training dataset and
sampler, so seeded augmentation and P×K batches follow the epoch and a resumed run
continues the same random stream), the same frozen-then-unfrozen backbone schedule
(``OptimConfig.freeze_backbone_epochs``, `fieldvision.training.freeze`), the same logging
and the same validation bookkeeping.
A task system defines only:

* ``_shared_step(batch, stage) -> StepOutput``: the loss (None where a stage has none),
  scalars to log, and per-sample tensors to collect over the validation epoch;
* ``epoch_metrics(collected) -> {name: value}``: validation metrics over the whole epoch
  (logged as ``val_<name>``);
* the class attributes ``monitor`` / ``mode``: the logged metric that selects the best
  checkpoint and drives early stopping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import lightning as L
import torch
from pydantic import BaseModel
from torch import Tensor, nn

from fieldvision.training.freeze import BackboneFreeze
from fieldvision.training.optim import OptimConfig, build_optimizer

__all__ = ["StepOutput", "TaskSystem"]


@dataclass
class StepOutput:
    """What one `_shared_step` produced.

    Attributes:
        loss: Scalar loss to optimise / log as ``<stage>_loss`` (None: nothing to log).
        logs: Extra scalars logged as ``<stage>_<name>`` (epoch means).
        collect: Per-sample tensors ``Tensor[B, ...]`` gathered over the validation epoch
            and handed to `TaskSystem.epoch_metrics`.
    """

    loss: Tensor | None
    logs: dict[str, Tensor] = field(default_factory=dict)
    collect: dict[str, Tensor] = field(default_factory=dict)


def _plain(value: Any) -> Any:
    """Hyperparameters as plain values, so checkpoints load with ``weights_only=True``."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


class TaskSystem(L.LightningModule):
    """Base training system.

    Args:
        model: The model being trained (kept apart from the system's loss modules).
        optim: The optimiser recipe (an `OptimConfig`, a config section extending it, or
            its fields as a mapping, which is what a checkpoint hands back).
        **hparams: Task settings recorded in checkpoints (plain values or configs).
    """

    monitor: ClassVar[str] = "val_loss"
    mode: ClassVar[str] = "min"
    #: Metrics shown in the progress bar (besides the losses).
    progress_metrics: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        model: nn.Module,
        optim: OptimConfig | BaseModel | Mapping[str, Any] | None = None,
        **hparams: Any,
    ) -> None:
        super().__init__()
        self.model = model
        if optim is None:
            self.optim = OptimConfig()
        elif isinstance(optim, BaseModel):
            self.optim = OptimConfig.narrow(optim)
        else:
            self.optim = OptimConfig(**optim)
        record = None
        if getattr(model, "registry_name", None):
            from fieldvision.models.registry import model_record

            record = model_record(model)
        # Recorded straight into `hparams` (which checkpoints carry) rather than through
        # save_hyperparameters(), whose frame inspection compares every __init__ argument
        # with the values (ambiguous for NumPy arrays such as a query mask).
        self.hparams.update(
            {**_plain(hparams), "optim": self.optim.model_dump(), "model_record": record}
        )
        self._collected: list[dict[str, Tensor]] = []
        # Set up by configure_optimizers, which knows the step count; a no-op until then.
        self._freeze = BackboneFreeze(self, 0)

    @property
    def frozen_modules(self) -> tuple[nn.Module, ...]:
        """The backbone modules frozen at the current step (empty when none are)."""
        return self._freeze.frozen_modules

    def _update_freeze(self) -> None:
        if self._freeze.steps:
            self._freeze.update(int(self.trainer.global_step), self.training)

    # ------------------------------------------------------------------ task contract
    def _shared_step(self, batch: Mapping[str, Any], stage: str) -> StepOutput:
        raise NotImplementedError

    def epoch_metrics(self, collected: Mapping[str, Tensor]) -> dict[str, float]:
        """Validation metrics of one epoch from the concatenated `StepOutput.collect`."""
        return {}

    # ------------------------------------------------------------------ Lightning hooks
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)

    def _log_step(self, out: StepOutput, stage: str, batch_size: int) -> None:
        on_step = stage == "train"
        if out.loss is not None:
            self.log(
                f"{stage}_loss",
                out.loss,
                prog_bar=True,
                on_step=on_step,
                on_epoch=True,
                batch_size=batch_size,
            )
        for name, value in out.logs.items():
            self.log(f"{stage}_{name}", value, on_step=False, on_epoch=True, batch_size=batch_size)

    @staticmethod
    def _batch_size(batch: Mapping[str, Any]) -> int:
        image = batch.get("image")
        return int(image.shape[0]) if torch.is_tensor(image) else 1

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        out = self._shared_step(batch, "train")
        if out.loss is None:
            raise RuntimeError(f"{type(self).__name__}._shared_step gave no training loss")
        self._log_step(out, "train", self._batch_size(batch))
        return out.loss

    def on_validation_epoch_start(self) -> None:
        self._collected = []

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        out = self._shared_step(batch, "val")
        self._log_step(out, "val", self._batch_size(batch))
        if out.collect:
            self._collected.append({k: v.detach().cpu() for k, v in out.collect.items()})

    def on_validation_epoch_end(self) -> None:
        if not self._collected:
            return
        keys = self._collected[0]
        collected = {k: torch.cat([c[k] for c in self._collected]) for k in keys}
        self._collected = []
        for name, value in self.epoch_metrics(collected).items():
            self.log(f"val_{name}", value, prog_bar=name in self.progress_metrics)

    def on_train_epoch_start(self) -> None:
        # Seeded datasets and samplers draw from (seed, epoch): tell them the epoch.
        loader = self.trainer.train_dataloader
        for obj in (
            getattr(loader, "dataset", None),
            getattr(loader, "sampler", None),
            getattr(loader, "batch_sampler", None),
        ):
            set_epoch = getattr(obj, "set_epoch", None)
            if callable(set_epoch):
                set_epoch(self.current_epoch)
        self._update_freeze()

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Per batch too: a fractional freeze ends mid-epoch (counted in optimiser steps).
        self._update_freeze()

    def configure_optimizers(self) -> dict[str, Any]:
        total = max(1, int(self.trainer.estimated_stepping_batches))
        epochs = max(1, int(self.trainer.max_epochs or 1))
        warmup = round(self.optim.warmup_epochs * total / epochs)
        freeze = round(self.optim.freeze_backbone_epochs * total / epochs)
        # The optimiser is built while every parameter still requires grad (param_groups
        # skips those that do not), so the backbone is in it, at lr 0 until it unfreezes.
        self._freeze = BackboneFreeze(self, freeze)
        optimizer, scheduler = build_optimizer(self, self.optim, total, warmup, freeze)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
        }
