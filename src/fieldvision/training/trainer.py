"""Lightning trainer builder and a resumable `fit`.

Every fold run lives in its own directory::

    out_dir/
      best.ckpt     best checkpoint by the monitored metric
      last.ckpt     written after every validation (the resume point)
      metrics.csv   CSV log (kept across resumes)
      done.json     written last, atomically: the run is complete

`fit_resumable` skips a run whose ``done.json`` exists, resumes from ``last.ckpt`` when a
run was interrupted, and starts fresh otherwise, so re-running a pipeline after a crash or
Ctrl+C loses at most one epoch.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning as L
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from fieldvision.errors import RunError
from fieldvision.io import atomic_path, write_json
from fieldvision.runtime import resolve_device, resolve_precision

__all__ = ["DONE_FILE", "FitResult", "build_trainer", "fit_resumable"]

DONE_FILE = "done.json"
BEST_NAME = "best"
LAST_NAME = "last"


def _quiet_lightning_info() -> None:
    """Silence Lightning's per-fit banners (GPU available, tips, "Loading dataloader...");
    a k-fold run builds many trainers and these would drown the progress output. Warnings
    and errors still show."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)


class _AtomicCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose files are written to a temp file and renamed into place, so a
    crash while saving never leaves a truncated ``last.ckpt`` to resume from."""

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        if not trainer.is_global_zero:  # only rank 0 writes; others still join the barrier
            super()._save_checkpoint(trainer, filepath)
            return
        with atomic_path(filepath) as tmp:
            super()._save_checkpoint(trainer, str(tmp))
        # Lightning records the path it saved to; point it at the real file.
        self._last_checkpoint_saved = filepath


class _AppendingWriter(ExperimentWriter):
    """CSV writer that keeps an existing ``metrics.csv`` (Lightning's deletes it), so a
    resumed run's log continues the interrupted one."""

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if path.is_file():
            with open(path, encoding="utf-8") as fh:
                header = fh.readline().strip()
            if header:
                self.metrics_keys = header.split(",")


class _ResumableCSVLogger(CSVLogger):
    """`CSVLogger` writing straight into ``save_dir`` with an appending writer."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            os.makedirs(self.log_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


def build_trainer(
    out_dir: str | os.PathLike[str],
    max_epochs: int,
    device: str = "auto",
    precision: str = "auto",
    accumulate_grad_batches: int = 1,
    monitor: str = "val_r2",
    mode: str = "max",
    patience: int | None = 5,
    progress: bool = True,
    gradient_clip_val: float | None = None,
    deterministic: bool = False,
    log_every_n_steps: int = 10,
    callbacks: list[Callback] | None = None,
    **trainer_kwargs: Any,
) -> L.Trainer:
    """Build a Lightning trainer that checkpoints into `out_dir`.

    Args:
        out_dir: Run directory (``best.ckpt``, ``last.ckpt``, ``metrics.csv``).
        max_epochs: Epoch budget.
        device: ``auto`` | ``cpu`` | ``cuda``.
        precision: Lightning precision or ``auto`` (bf16/16 mixed on GPU, 32 on CPU).
        accumulate_grad_batches: Gradient accumulation.
        monitor: Logged metric that selects ``best.ckpt`` and drives early stopping.
        mode: ``max`` or ``min`` for `monitor`.
        patience: Early-stopping patience in validation epochs; None disables it.
        progress: Show a rich progress bar.
        gradient_clip_val: Clip the gradient norm (None: no clipping).
        deterministic: Ask torch for deterministic algorithms.
        log_every_n_steps: Training-step logging interval.
        callbacks: Extra callbacks.
        **trainer_kwargs: Passed to ``lightning.Trainer`` (e.g. ``limit_train_batches``).

    Returns:
        A configured ``lightning.Trainer``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    cbs: list[Callback] = [
        _AtomicCheckpoint(
            dirpath=out,
            filename=BEST_NAME,
            monitor=monitor,
            mode=mode,
            save_top_k=1,
            enable_version_counter=False,  # overwrite best.ckpt, never best-v1.ckpt
            auto_insert_metric_name=False,
        ),
        # A separate unmonitored checkpoint for the resume point: Lightning 2.6's
        # ``save_last=True`` only refreshes last.ckpt in epochs where best.ckpt improved, so a
        # resume would restart from the best epoch instead of the latest one.
        _AtomicCheckpoint(
            dirpath=out,
            filename=LAST_NAME,
            monitor=None,
            save_top_k=1,
            every_n_epochs=1,
            enable_version_counter=False,
        ),
    ]
    if patience is not None:
        cbs.append(EarlyStopping(monitor=monitor, mode=mode, patience=patience))
    if progress:
        # stderr, like every diagnostic: stdout stays clean for results.
        cbs.append(RichProgressBar(leave=False, console_kwargs={"stderr": True}))
    cbs.extend(callbacks or [])
    _quiet_lightning_info()
    return L.Trainer(
        default_root_dir=out,
        max_epochs=max_epochs,
        accelerator="gpu" if dev == "cuda" else "cpu",
        devices=1,
        precision=resolve_precision(dev, precision),
        accumulate_grad_batches=accumulate_grad_batches,
        gradient_clip_val=gradient_clip_val,
        deterministic=deterministic,
        callbacks=cbs,
        logger=_ResumableCSVLogger(save_dir=out, name="", version=""),
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=log_every_n_steps,
        **trainer_kwargs,
    )


@dataclass(frozen=True)
class FitResult:
    """Outcome of `fit_resumable`.

    Attributes:
        best_path: Path of the best checkpoint ("" if none was saved).
        best_score: Best value of the monitored metric (NaN if never logged).
        epochs_run: Epochs completed in total (across resumes).
        resumed: True when this call continued an earlier run (or found it done).
        stopped_early: Early stopping ended the run before ``max_epochs``.
        max_epochs: The epoch budget the run was trained with.
    """

    best_path: str
    best_score: float
    epochs_run: int
    resumed: bool
    stopped_early: bool = False
    max_epochs: int = -1


def _checkpoint_callback(trainer: L.Trainer) -> ModelCheckpoint:
    cb = trainer.checkpoint_callback
    if cb is None:
        raise RunError("trainer has no ModelCheckpoint callback; build it with build_trainer")
    return cb


def _read_done(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        return {k: record[k] for k in ("best_path", "best_score", "epochs_run")} | {
            "stopped_early": bool(record.get("stopped_early", False)),
            "max_epochs": int(record.get("max_epochs", -1)),
        }
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunError(
            f"{path}: unreadable run record ({exc.__class__.__name__}: {exc})",
            hint=f"delete {path} to retrain this run",
        ) from None


def fit_resumable(
    trainer: L.Trainer,
    system: L.LightningModule,
    train_loader: Any,
    val_loader: Any,
    out_dir: str | os.PathLike[str],
) -> FitResult:
    """Fit `system`, skipping a finished run and resuming an interrupted one.

    * ``out_dir/done.json`` exists and the run either stopped early or had at least the
      trainer's ``max_epochs``: nothing is trained, the recorded result is returned.
    * otherwise, ``out_dir/last.ckpt`` exists: training resumes from it (model, optimizer,
      scheduler, epoch counter, early-stopping and checkpoint state) — this also extends a
      finished run when ``max_epochs`` grew.
    * otherwise: a fresh run.

    ``done.json`` is written atomically only after ``trainer.fit`` returns normally.

    Raises:
        RunError: The run was interrupted (e.g. Ctrl+C) or ``done.json`` is unreadable.
    """
    out = Path(out_dir)
    done_path = out / DONE_FILE
    last_path = out / f"{LAST_NAME}.ckpt"
    max_epochs = int(trainer.max_epochs if trainer.max_epochs is not None else -1)
    if done_path.is_file():
        record = _read_done(done_path)
        if record["stopped_early"] or record["max_epochs"] >= max_epochs:
            return FitResult(**record, resumed=True)
    resumed = last_path.is_file()
    with warnings.catch_warnings():
        # Expected here: resuming writes into a non-empty run directory, and small datasets
        # have fewer batches than the step-logging interval (systems also log per epoch).
        warnings.filterwarnings("ignore", message=r"Checkpoint directory .* is not empty")
        warnings.filterwarnings("ignore", message=r".*smaller than the logging interval")
        warnings.filterwarnings("ignore", message=r".*LeafSpec.*")  # Lightning-internal
        trainer.fit(
            system,
            train_dataloaders=train_loader,
            val_dataloaders=val_loader,
            ckpt_path=str(last_path) if resumed else None,
        )
    if trainer.interrupted:
        raise RunError(
            f"training in {out} was interrupted",
            hint="run the same command again to resume from last.ckpt",
        )
    ckpt = _checkpoint_callback(trainer)
    score = ckpt.best_model_score
    # Ended normally before the budget: early stopping (or max_steps / max_time) stopped it.
    early = 0 <= trainer.current_epoch < max_epochs
    result = FitResult(
        best_path=str(ckpt.best_model_path or ""),
        best_score=float(score) if score is not None else float("nan"),
        epochs_run=int(trainer.current_epoch),
        resumed=resumed,
        stopped_early=early,
        max_epochs=max_epochs,
    )
    record = asdict(result)
    record.pop("resumed")
    write_json(done_path, record)
    return result
