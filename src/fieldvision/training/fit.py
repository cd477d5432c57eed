"""One fitting loop for every pipeline: k folds or a single split, resumable, exported.

A pipeline describes *what* to train on each split with a ``build(split) -> FitTask``
callback (model, system, loaders); `fit_splits` does the rest, the same way for biomass
Phase 1, biomass Phase 2 and re-ID::

    out_dir/<split.name>/
      best.ckpt last.ckpt metrics.csv done.json   Lightning state (see `trainer`)
      model.safetensors                           the best epoch's model, with its record

A split whose ``model.safetensors`` exists is finished and is loaded instead of trained; an
interrupted one resumes from its ``last.ckpt``; so re-running a pipeline after a crash or
Ctrl+C loses at most one epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pydantic import Field
from torch import nn
from torch.utils.data import DataLoader

from fieldvision.config import StrictModel, runtime_field
from fieldvision.console import console
from fieldvision.errors import DataError
from fieldvision.models.registry import load_model, save_model
from fieldvision.seeding import seed_everything
from fieldvision.training.system import TaskSystem
from fieldvision.training.trainer import BEST_NAME, FitResult, build_trainer, fit_resumable

__all__ = [
    "MODEL_FILE",
    "FitTask",
    "FittedSplit",
    "RuntimeConfig",
    "ScheduleConfig",
    "Split",
    "TrainerConfig",
    "fit_splits",
    "kfold_splits",
]

MODEL_FILE = "model.safetensors"


class ScheduleConfig(StrictModel):
    """How long one model trains and when it stops."""

    epochs: int = Field(10, ge=1)
    patience: int | None = Field(5, ge=1)  # early stopping, in validations (null: off)
    val_every: int = Field(1, ge=1)  # validate every N epochs


class RuntimeConfig(StrictModel):
    """Where and how a run executes; none of it changes what is computed."""

    device: str = runtime_field("auto", pattern="^(auto|cpu|cuda)$")  # auto | cpu | cuda
    # auto: bf16 mixed on capable GPUs, fp16 mixed on older ones, fp32 on CPU.
    precision: str = runtime_field("auto")
    progress: bool = runtime_field(True)  # progress bars on stderr


class TrainerConfig(RuntimeConfig):
    """Trainer-level settings shared by every model a pipeline trains."""

    accumulate_grad_batches: int = Field(1, ge=1)
    gradient_clip_val: float | None = Field(None, gt=0)
    # Exponential moving average of the weights, used for validation, checkpoints and
    # prediction. null = off.
    ema_decay: float | None = Field(None, gt=0, lt=1)


@dataclass(frozen=True)
class Split:
    """Row indices of one training split.

    Attributes:
        name: Folder name of the split (``fold0``, ``train``).
        train: int[N_train] rows trained on.
        val: int[N_val] rows validated on (and predicted out of fold).
    """

    name: str
    train: np.ndarray
    val: np.ndarray


def kfold_splits(folds: np.ndarray) -> list[Split]:
    """One `Split` per fold id (``fold{k}``: train on the others, validate on fold k)."""
    folds = np.asarray(folds)
    if folds.size == 0:
        raise DataError("no samples to split into folds")
    ids = np.unique(folds)
    if ids[0] < 0 or not np.array_equal(ids, np.arange(len(ids))):
        raise DataError(f"fold ids must be 0..K-1 with every fold used, got {ids.tolist()}")
    return [
        Split(f"fold{k}", np.flatnonzero(folds != k), np.flatnonzero(folds == k))
        for k in range(int(folds.max()) + 1)
    ]


@dataclass
class FitTask:
    """What to train on one split."""

    model: nn.Module
    system: TaskSystem
    train_loader: DataLoader
    val_loader: DataLoader


@dataclass
class FittedSplit:
    """A trained split: its model (best epoch, eval mode, CPU) and the fit record."""

    split: Split
    model: nn.Module
    result: FitResult | None  # None when the split had finished in an earlier call


def _load_best(model: nn.Module, split_dir: Path, result: FitResult) -> None:
    """Copy the best (else the last) checkpoint's model weights into `model`.

    The best checkpoint is looked up by name inside `split_dir` first: the absolute path
    Lightning recorded goes stale when a run folder is moved or renamed.
    """
    candidates = [split_dir / f"{BEST_NAME}.ckpt"]
    if result.best_path:
        candidates.append(split_dir / Path(result.best_path).name)
    candidates.append(split_dir / "last.ckpt")
    best = next((c for c in candidates if c.is_file()), candidates[-1])
    if not best.is_file():
        return  # nothing was checkpointed: keep the final weights
    ckpt = torch.load(best, map_location="cpu", weights_only=True)
    state = {
        k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")
    }
    model.load_state_dict(state, strict=True)


def fit_splits(
    out_dir: str | Path,
    splits: Sequence[Split],
    build: Callable[[Split], FitTask],
    schedule: ScheduleConfig,
    trainer_cfg: TrainerConfig,
    seed: int = 0,
    label: str = "train",
) -> list[FittedSplit]:
    """Train one model per split (or load it when that split already finished).

    Args:
        out_dir: Folder holding one sub-folder per split.
        splits: The splits, in order (`kfold_splits`, or one `Split` for a single split).
        build: Makes the `FitTask` of a split; called only for splits that still train.
        schedule: Epochs, patience, validation interval.
        trainer_cfg: Device, precision, accumulation, clipping, EMA, progress.
        seed: Base seed; split ``k`` trains with ``seed + k``.
        label: Name printed with the progress of each split.

    Returns:
        One `FittedSplit` per split, in order.
    """
    from lightning.pytorch.callbacks import WeightAveraging
    from torch.optim.swa_utils import get_ema_avg_fn

    out_dir = Path(out_dir)
    fitted: list[FittedSplit] = []
    for k, split in enumerate(splits):
        split_dir = out_dir / split.name
        weights = split_dir / MODEL_FILE
        if weights.is_file():
            fitted.append(FittedSplit(split, load_model(weights), None))
            continue
        console.print(
            f"[bold]{label}[/] {split.name} ({k + 1}/{len(splits)}): "
            f"{len(split.train)} train, {len(split.val)} val"
        )
        seed_everything(seed + k)
        task = build(split)
        callbacks = []
        if trainer_cfg.ema_decay is not None:
            callbacks.append(WeightAveraging(avg_fn=get_ema_avg_fn(trainer_cfg.ema_decay)))
        n_batches = len(task.train_loader) if hasattr(task.train_loader, "__len__") else 10
        trainer = build_trainer(
            split_dir,
            max_epochs=schedule.epochs,
            device=trainer_cfg.device,
            precision=trainer_cfg.precision,
            accumulate_grad_batches=trainer_cfg.accumulate_grad_batches,
            monitor=task.system.monitor,
            mode=task.system.mode,
            patience=schedule.patience,
            progress=trainer_cfg.progress,
            gradient_clip_val=trainer_cfg.gradient_clip_val,
            check_val_every_n_epoch=schedule.val_every,
            log_every_n_steps=max(1, min(10, n_batches)),
            callbacks=callbacks,
        )
        result = fit_resumable(trainer, task.system, task.train_loader, task.val_loader, split_dir)
        model = task.model.cpu()
        _load_best(model, split_dir, result)
        save_model(model, weights)
        fitted.append(FittedSplit(split, model.eval(), result))
    return fitted
