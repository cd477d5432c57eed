"""Model selection per split: per-epoch scores and weights, and which epochs a model uses.

`fit_splits` (``training/fit.py``) trains; this module records what it needs to choose
honestly afterwards and makes the choice:

- `EpochRecorder` writes every validated epoch's monitored score (``epochs.json``) and, for
  the honest modes, that epoch's weights (``epochs/epoch{e}.safetensors``);
- `PreciseBN` / `recompute_bn` recompute batch-norm statistics for the current weights;
- `select_epochs` picks a split's epochs: ``fixed_epochs`` (the median best epoch of the
  *other* folds, or a given count) or ``last_k_average``; `best_record` is the biased
  fold-picks-its-own-best record; `average_states` averages the chosen epochs' weights.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from fieldvision.errors import RunError
from fieldvision.io import write_json
from fieldvision.models.registry import save_model

if TYPE_CHECKING:
    from fieldvision.training.fit import ScheduleConfig
    from fieldvision.training.system import TaskSystem

__all__ = [
    "EPOCHS_FILE",
    "EpochRecorder",
    "PreciseBN",
    "average_states",
    "best_epoch",
    "best_record",
    "epoch_files",
    "epoch_path",
    "read_epochs",
    "recompute_bn",
    "select_epochs",
]

EPOCHS_FILE = "epochs.json"


class EpochRecorder(Callback):
    """Records the monitored score of every validated epoch (``epochs.json``) and, when
    `save_weights`, that epoch's model weights (``epochs/epoch{e}.safetensors``; e is the
    1-based epoch count). Weights are taken at the start of validation, after weight
    averaging (EMA) swapped its weights in, so they are exactly what was validated.
    Only the newest `keep` weight files are kept (None: all)."""

    def __init__(
        self, split_dir: Path, monitor: str, mode: str, save_weights: bool, keep: int | None
    ) -> None:
        self.split_dir, self.monitor, self.mode = split_dir, monitor, mode
        self.save_weights, self.keep = save_weights, keep
        self.record = read_epochs(split_dir) or {"monitor": monitor, "mode": mode, "scores": {}}

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not self.save_weights:
            return
        folder = self.split_dir / "epochs"
        folder.mkdir(parents=True, exist_ok=True)
        save_model(pl_module.model, folder / f"epoch{trainer.current_epoch + 1}.safetensors")
        if self.keep is not None:
            for old in epoch_files(self.split_dir)[: -self.keep]:
                old.unlink(missing_ok=True)

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        self.record["scores"][str(trainer.current_epoch + 1)] = float(value)
        write_json(self.split_dir / EPOCHS_FILE, self.record)


class PreciseBN(Callback):
    """Recomputes batch-norm running statistics before each validation: a forward pass
    (no gradients, dropout off) over up to `batches` training batches with cumulative
    averaging, so the statistics validation and checkpoints use belong to the current
    (or EMA-averaged) weights instead of an exponential average over past steps."""

    def __init__(self, batches: int) -> None:
        self.batches = batches

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        recompute_bn(pl_module, trainer.train_dataloader, self.batches)


def recompute_bn(system: TaskSystem, loader, batches: int) -> int:
    """Reset and recompute the BN statistics of ``system.model`` over `loader`.

    Returns:
        The number of batches used (0 when the model has no batch norm).
    """
    # A frozen backbone keeps its statistics (`fieldvision.training.freeze`).
    frozen = {id(m) for f in getattr(system, "frozen_modules", ()) for m in f.modules()}
    bns = [
        m
        for m in system.model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and id(m) not in frozen
    ]
    if not bns or loader is None:
        return 0
    was_training = system.training
    momenta = [m.momentum for m in bns]
    system.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the recompute batches
        m.train()
    used = 0
    with torch.no_grad():
        for batch in loader:
            if used >= batches:
                break
            batch = system.transfer_batch_to_device(batch, system.device, 0)
            system._shared_step(batch, "bn")
            used += 1
    for m, momentum in zip(bns, momenta, strict=True):
        m.momentum = momentum
    system.train(was_training)
    return used


def read_epochs(split_dir: Path) -> dict | None:
    path = split_dir / EPOCHS_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def epoch_files(split_dir: Path) -> list[Path]:
    """Saved per-epoch weight files, oldest first."""
    files = (split_dir / "epochs").glob("epoch*.safetensors")
    return sorted(files, key=lambda p: int(p.stem.removeprefix("epoch")))


def best_epoch(record: dict | None) -> int | None:
    """1-based epoch count of the best monitored score in an ``epochs.json`` record."""
    if not record or not record.get("scores"):
        return None
    scores = {int(e): v for e, v in record["scores"].items() if np.isfinite(v)}
    if not scores:
        return None
    pick = max if record.get("mode", "max") == "max" else min
    return pick(scores, key=lambda e: (scores[e], -e))


def average_states(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of state dicts (floating tensors; others are taken from the last)."""
    if not states:
        raise RunError("no epoch weights to average")
    out: dict[str, torch.Tensor] = {}
    for key, last in states[-1].items():
        if last.is_floating_point():
            stacked = torch.stack([s[key].to(torch.float64) for s in states])
            out[key] = stacked.mean(dim=0).to(last.dtype)
        else:
            out[key] = last.clone()
    return out


def epoch_path(split_dir: Path, epoch: int) -> Path:
    return split_dir / "epochs" / f"epoch{epoch}.safetensors"


def best_record(split_dir: Path) -> dict:
    best = best_epoch(read_epochs(split_dir))
    return {"mode": "best", "epochs": [best] if best else [], "fold_best_epoch": best}


def select_epochs(split_dir: Path, schedule: ScheduleConfig, other_best: list[int]) -> dict:
    """The honest selection record of one split (which saved epochs its model uses)."""
    saved = [int(p.stem.removeprefix("epoch")) for p in epoch_files(split_dir)]
    if not saved:
        raise RunError(
            f"{split_dir}: no per-epoch weights to select from",
            hint=f"delete {split_dir} to retrain this split",
        )
    record: dict = {
        "mode": schedule.selection,
        "fold_best_epoch": best_epoch(read_epochs(split_dir)),
    }
    if schedule.selection == "last_k_average":
        record["epochs"] = saved[-schedule.selection_k :]
        return record
    if schedule.selection_epochs is not None:
        target = schedule.selection_epochs
    elif other_best:
        target = int(np.floor(np.median(other_best) + 0.5))
    else:
        target = saved[-1]  # a single split: nothing else to choose by
    record["other_best_epochs"] = other_best
    record["target_epochs"] = target
    # The nearest saved epoch (validation may not run every epoch), the earlier on ties.
    record["epochs"] = [min(saved, key=lambda e: (abs(e - target), e))]
    return record
