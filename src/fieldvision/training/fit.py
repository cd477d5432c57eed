"""One fitting loop for every pipeline: k folds or a single split, resumable, exported.

A pipeline describes *what* to train on each split with a ``build(split) -> FitTask``
callback (model, system, loaders); `fit_splits` does the rest, the same way for biomass
Phase 1, biomass Phase 2 and re-ID::

    out_dir/<split.name>/
      best.ckpt last.ckpt metrics.csv done.json   Lightning state (see `trainer`)
      model.safetensors                           the selected model, with its record
      epochs.json                                 monitored score per validated epoch
      selection.json                              how model.safetensors was selected
      fold_best.safetensors                       honest modes: the fold's own best epoch
      epochs/epoch{e}.safetensors                 honest modes: per-epoch weights (pruned)

**Selection** (``ScheduleConfig.selection``). Picking the best epoch on the fold that then
reports the out-of-fold score is optimistic (``best``: the score is the max over noisy
epochs). The honest modes never look at the fold's own validation score: early stopping
is off, the full schedule trains, and the exported model is

* ``fixed_epochs``: the weights after E epochs, E = ``selection_epochs`` or else the
  median best epoch count of the *other* splits (the last epoch for a single split);
* ``last_k_average``: the mean of the weights of the last ``selection_k`` validated
  epochs (checkpoint averaging); with ``precise_bn_batches`` the batch-norm statistics
  of the averaged weights are then recomputed on the training data (else averaged).

The fold's own best epoch is still exported (``fold_best.safetensors``) so a pipeline can
report the biased and the honest score side by side.

**Precise BN** (``ScheduleConfig.precise_bn_batches``): batch-norm running statistics are
an exponential average over past training steps; with few steps per epoch and weights
that move fast (from-scratch training), they describe weights that no longer exist and
validation swings. When set, the statistics are recomputed with the current weights over
that many training batches before every validation (so checkpoints and epoch weights
carry them), and once more for averaged weights.

A split whose ``model.safetensors`` exists is finished and is loaded instead of trained; an
interrupted one resumes from its ``last.ckpt``; so re-running a pipeline after a crash or
Ctrl+C loses at most one epoch.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from pydantic import Field, model_validator
from torch import nn
from torch.utils.data import DataLoader

from fieldvision.config import StrictModel, runtime_field
from fieldvision.console import console
from fieldvision.errors import DataError
from fieldvision.io import write_json
from fieldvision.models.registry import load_model, load_state, save_model
from fieldvision.runtime import resolve_device
from fieldvision.seeding import seed_everything
from fieldvision.training.selection import (
    EpochRecorder,
    PreciseBN,
    average_states,
    best_epoch,
    best_record,
    epoch_files,
    epoch_path,
    read_epochs,
    recompute_bn,
    select_epochs,
)
from fieldvision.training.system import TaskSystem
from fieldvision.training.trainer import (
    BEST_NAME,
    DONE_FILE,
    FitResult,
    build_trainer,
    fit_resumable,
)

__all__ = [
    "FOLD_BEST_FILE",
    "MODEL_FILE",
    "SELECTION_MODES",
    "FitTask",
    "FittedSplit",
    "RuntimeConfig",
    "ScheduleConfig",
    "Split",
    "TrainerConfig",
    "average_states",
    "best_epoch",
    "fit_splits",
    "kfold_splits",
    "recompute_bn",
]

MODEL_FILE = "model.safetensors"
FOLD_BEST_FILE = "fold_best.safetensors"
SELECTION_FILE = "selection.json"
SELECTION_MODES = ("best", "fixed_epochs", "last_k_average")
_SELECTION_PATTERN = "^(" + "|".join(SELECTION_MODES) + ")$"


class ScheduleConfig(StrictModel):
    """How long one model trains and when it stops."""

    epochs: int = Field(10, ge=1)
    patience: int | None = Field(5, ge=1)  # early stopping, in validations (null: off)
    # Early stopping never ends training before this many epochs. MIL experts sit at
    # chance for several epochs before the max-pooled evidence "ignites" (the DeepPCB
    # recipe's run stopped on that plateau at epoch 13); patience alone cannot tell a
    # plateau before learning from one after it.
    min_epochs: int = Field(0, ge=0)
    val_every: int = Field(1, ge=1)  # validate every N epochs
    # Which weights a split exports (see the module docstring): best (on the fold itself:
    # biased) | fixed_epochs | last_k_average (honest: early stopping off).
    selection: str = Field("best", pattern=_SELECTION_PATTERN)
    # fixed_epochs: this epoch count (null: the median best epoch of the other splits).
    selection_epochs: int | None = Field(None, ge=1)
    selection_k: int = Field(3, ge=1)  # last_k_average: epochs averaged
    # Precise BN: before every validation, recompute batch-norm running statistics with the
    # current weights over up to this many training batches (null: off, keep the running
    # averages of past steps, which lag behind fast-moving weights).
    precise_bn_batches: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _min_within_budget(self) -> ScheduleConfig:
        if self.min_epochs > self.epochs:
            raise ValueError(f"min_epochs ({self.min_epochs}) exceeds epochs ({self.epochs})")
        return self

    @property
    def honest(self) -> bool:
        """True when the exported model is chosen without the fold's own score."""
        return self.selection != "best"


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
    """A trained split: its model (selected, eval mode, CPU) and the fit record.

    Attributes:
        model: The exported model, chosen by the schedule's ``selection``.
        result: The fit record; None when the split had finished in an earlier call.
        fold_best: The split's own best epoch (the biased choice); `model` itself in
            ``best`` mode and for splits trained before selection modes existed.
        selection: What `model` is: ``mode``, ``epochs`` (1-based epoch counts used),
            ``fold_best_epoch``, and for ``fixed_epochs`` the ``other_best_epochs``.
    """

    split: Split
    model: nn.Module
    result: FitResult | None
    fold_best: nn.Module | None = None
    selection: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.fold_best is None:
            self.fold_best = self.model


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

    Every split trains first; then, in the honest selection modes, each split's exported
    model is chosen (``fixed_epochs`` needs the other splits' best epochs).

    Args:
        out_dir: Folder holding one sub-folder per split.
        splits: The splits, in order (`kfold_splits`, or one `Split` for a single split).
        build: Makes the `FitTask` of a split; called only for splits that still train.
        schedule: Epochs, patience, validation interval, selection mode.
        trainer_cfg: Device, precision, accumulation, clipping, EMA, progress.
        seed: Base seed; split ``k`` trains with ``seed + k``.
        label: Name printed with the progress of each split.

    Returns:
        One `FittedSplit` per split, in order.
    """
    from lightning.pytorch.callbacks import WeightAveraging
    from torch.optim.swa_utils import get_ema_avg_fn

    out_dir = Path(out_dir)
    fitted: list[FittedSplit | None] = []
    pending: list[tuple[int, nn.Module, FitResult | None]] = []  # trained, selection still to do
    for k, split in enumerate(splits):
        split_dir = out_dir / split.name
        weights = split_dir / MODEL_FILE
        if weights.is_file():
            fitted.append(_load_finished(split, split_dir))
            continue
        if schedule.honest and _trained_awaiting_selection(split_dir, schedule.epochs):
            pending.append((k, load_model(split_dir / FOLD_BEST_FILE), None))
            fitted.append(None)
            continue
        console.print(
            f"[bold]{label}[/] {split.name} ({k + 1}/{len(splits)}): "
            f"{len(split.train)} train, {len(split.val)} val"
        )
        seed_everything(seed + k)
        task = build(split)
        callbacks: list[Callback] = []
        if trainer_cfg.ema_decay is not None:
            callbacks.append(WeightAveraging(avg_fn=get_ema_avg_fn(trainer_cfg.ema_decay)))
        if schedule.precise_bn_batches is not None:  # after EMA: on the averaged weights
            callbacks.append(PreciseBN(schedule.precise_bn_batches))
        # After the EMA callback, so the recorded weights are the validated (averaged) ones.
        keep = schedule.selection_k if schedule.selection == "last_k_average" else None
        callbacks.append(
            EpochRecorder(split_dir, task.system.monitor, task.system.mode, schedule.honest, keep)
        )
        n_batches = len(task.train_loader) if hasattr(task.train_loader, "__len__") else 10
        trainer = build_trainer(
            split_dir,
            max_epochs=schedule.epochs,
            device=trainer_cfg.device,
            precision=trainer_cfg.precision,
            accumulate_grad_batches=trainer_cfg.accumulate_grad_batches,
            monitor=task.system.monitor,
            mode=task.system.mode,
            # Early stopping reads the fold's own score: off in the honest modes.
            patience=None if schedule.honest else schedule.patience,
            min_epochs=schedule.min_epochs or None,
            progress=trainer_cfg.progress,
            gradient_clip_val=trainer_cfg.gradient_clip_val,
            check_val_every_n_epoch=schedule.val_every,
            log_every_n_steps=max(1, min(10, n_batches)),
            callbacks=callbacks,
        )
        result = fit_resumable(trainer, task.system, task.train_loader, task.val_loader, split_dir)
        model = task.model.cpu()
        _load_best(model, split_dir, result)
        if not schedule.honest:
            save_model(model, weights)
            write_json(split_dir / SELECTION_FILE, best_record(split_dir))
            fitted.append(
                FittedSplit(split, model.eval(), result, selection=best_record(split_dir))
            )
            continue
        save_model(model, split_dir / FOLD_BEST_FILE)
        pending.append((k, model, result))
        fitted.append(None)
    for k, fold_best, result in pending:
        split = splits[k]
        split_dir = out_dir / split.name
        others = [best_epoch(read_epochs(out_dir / s.name)) for j, s in enumerate(splits) if j != k]
        record = select_epochs(split_dir, schedule, [e for e in others if e is not None])
        model = load_model(split_dir / FOLD_BEST_FILE)
        if record["mode"] == "last_k_average":
            state = average_states([load_state(epoch_path(split_dir, e)) for e in record["epochs"]])
        else:
            state = load_state(epoch_path(split_dir, record["epochs"][0]))
        model.load_state_dict(state, strict=True)
        if record["mode"] == "last_k_average" and schedule.precise_bn_batches is not None:
            # Averaged weights need their own BN statistics (the SWA recipe): recompute
            # them over the split's training data.
            seed_everything(seed + k)
            task = build(split)
            task.model.load_state_dict(model.state_dict(), strict=True)
            task.system.to(resolve_device(trainer_cfg.device))
            record["bn_batches"] = recompute_bn(
                task.system, task.train_loader, schedule.precise_bn_batches
            )
            model = task.model.cpu()
        save_model(model, split_dir / MODEL_FILE)
        write_json(split_dir / SELECTION_FILE, record)
        if record["mode"] == "fixed_epochs":  # keep only the weights that were used
            for path in epoch_files(split_dir):
                if int(path.stem.removeprefix("epoch")) not in record["epochs"]:
                    path.unlink(missing_ok=True)
        fitted[k] = FittedSplit(split, model.eval(), result, fold_best.eval(), record)
    return [f for f in fitted if f is not None]


def _trained_awaiting_selection(split_dir: Path, epochs: int) -> bool:
    """An honest split that finished training (in an earlier call) but was not exported."""
    if not (split_dir / FOLD_BEST_FILE).is_file() or not (split_dir / DONE_FILE).is_file():
        return False
    try:
        record = json.loads((split_dir / DONE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(record.get("stopped_early")) or int(record.get("max_epochs", -1)) >= epochs


def _load_finished(split: Split, split_dir: Path) -> FittedSplit:
    """A split exported by an earlier call (or by a release without selection modes)."""
    model = load_model(split_dir / MODEL_FILE)
    path = split_dir / SELECTION_FILE
    if not path.is_file():  # trained before selection modes: the fold's best epoch
        return FittedSplit(split, model, None, selection={"mode": "best", "legacy": True})
    record = json.loads(path.read_text(encoding="utf-8"))
    fold_best = split_dir / FOLD_BEST_FILE
    biased = load_model(fold_best) if fold_best.is_file() else None
    return FittedSplit(split, model, None, biased, record)
