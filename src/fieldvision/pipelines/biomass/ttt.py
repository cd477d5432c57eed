"""Test-time training (TTT) of a finished biomass run on its own test predictions.

``fieldvision biomass predict --ttt`` (8th place in CSIRO Image2Biomass used the idea):

1. predict the test images as `predict` does (Phase-1 metadata, every Phase-2 fold model,
   the run's TTA) and take the **fold-ensemble** mean, clipped at 0 g, as pseudo-labels:
   the ensemble scores better than any one fold, so it is the better teacher for each;
2. fine-tune an in-memory copy of each fold's Phase-2 model for a few epochs at a low
   learning rate on the test images with those pseudo-labels **mixed with that fold's own
   training rows** (true targets, the out-of-fold metadata it was trained on), with
   training augmentation on. The real labels anchor the copy: on the pseudo-labels alone
   it could only learn to repeat its teacher;
3. predict again with the fine-tuned copies (same views, same fold averaging).

The run directory is only read: each copy is rebuilt from ``model.safetensors`` and lives
in memory, so the run's files are byte-identical afterwards and nothing is written but the
submission. Every fold fine-tunes under its own seed derived from ``train.seed``
(shuffling, augmentation, dropout), so two TTT predictions of one run are equal on the
same device.

The fine-tuning is a plain loop, not the Lightning fitting loop of `training.fit`: there
is nothing to validate, checkpoint or resume in two epochs, and the loop writes nothing.
It uses the run's own loss (`Phase2System`), optimiser recipe (AdamW with the cosine
schedule, no warmup) and gradient clipping, and recomputes batch-norm statistics afterwards
when the run did (``phase2.precise_bn_batches``).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader

from fieldvision.console import console
from fieldvision.data.loaders import batch_loader
from fieldvision.errors import ConfigError, DataError
from fieldvision.inference import flip_views, mean_views, predict_views
from fieldvision.io import write_csv
from fieldvision.pipelines.biomass.config import BiomassConfig
from fieldvision.pipelines.biomass.fit import phase2_call
from fieldvision.pipelines.biomass.inputs import (
    TestData,
    TrainingData,
    load_test_data,
    load_training_data,
    make_dataset,
)
from fieldvision.pipelines.biomass.meta import FILM_KEYS
from fieldvision.pipelines.biomass.predict import load_run, phase2_arrays
from fieldvision.runs import RunDir
from fieldvision.runtime import resolve_device
from fieldvision.schemas.biomass import submission_for
from fieldvision.seeding import seed_everything
from fieldvision.training.biomass import Phase2System
from fieldvision.training.optim import OptimConfig, build_optimizer
from fieldvision.training.selection import recompute_bn

__all__ = ["TTTResult", "TTTSettings", "finetune", "predict_ttt", "ttt_dataset"]

# TTT seeds sit apart from the training seeds (Phase 1: seed + k, Phase 2: seed + 100 + k).
_SEED_OFFSET = 200
# The test part's augmentation stream: another seed than the training part's, so image i of
# both parts is not flipped alike.
_TEST_STREAM = 10_000


@dataclass(frozen=True)
class TTTSettings:
    """How long and how fast each fold copy fine-tunes.

    Attributes:
        epochs: Passes over the mixed (training + pseudo-labelled test) images, >= 1.
        lr: Peak learning rate (> 0); None: a tenth of the run's ``phase2.lr``, low enough
            to adjust a trained model rather than retrain it.

    Raises:
        ConfigError: ``epochs < 1`` or ``lr <= 0``.
    """

    epochs: int = 2
    lr: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise ConfigError(f"--ttt-epochs {self.epochs!r}: must be a whole number >= 1")
        if self.lr is not None and not (np.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"--ttt-lr {self.lr!r}: must be a positive number")

    def learning_rate(self, cfg: BiomassConfig) -> float:
        """The peak learning rate for the run `cfg`."""
        return self.lr if self.lr is not None else cfg.phase2.lr / 10.0


@dataclass
class TTTResult:
    """What `predict_ttt` produced.

    Attributes:
        submission: ``sample_id,target`` rows in ``test.csv`` order (after TTT).
        teacher: float32[N, 5] grams before TTT (the pseudo-labels; equal to `predict`).
        preds: float32[N, 5] grams after TTT.
        minutes: Wall time of loading the training data, fine-tuning and re-predicting
            (the cost over `predict`).
        n_test: Pseudo-labelled test images in each fold's fine-tuning set.
        n_train: Training images mixed in, per fold.
    """

    submission: pd.DataFrame
    teacher: np.ndarray
    preds: np.ndarray
    minutes: float
    n_test: int
    n_train: list[int]


def _training_meta(run: RunDir, data: TrainingData) -> dict[str, np.ndarray]:
    """The out-of-fold Phase-1 metadata Phase 2 was trained on (``{}`` without FiLM)."""
    path = run.path / "phase1" / "oof_meta.csv"
    if not path.is_file():
        return {}
    meta = pd.read_csv(path)[list(FILM_KEYS)].to_numpy(np.float32)
    if len(meta) != len(data.paths):
        raise DataError(f"{path}: {len(meta)} rows for {len(data.paths)} training images")
    return {"meta": meta}


def _training_dir(run: RunDir, data_dir: Path, train_dir: str | Path | None) -> Path:
    """Where the run's ``train.csv`` is: `train_dir`, else the folder ``run.json`` recorded
    (when it still holds a ``train.csv``), else `data_dir` (the Kaggle layout keeps both)."""
    if train_dir is not None:
        return Path(train_dir)
    # Runs written before the data location was recorded have none.
    recorded = (getattr(run, "data", None) or {}).get("path")
    if recorded:
        folder = Path(recorded) if Path(recorded).is_dir() else Path(recorded).parent
        if (folder / "train.csv").is_file():
            return folder
    return data_dir


def _run_folds(run: RunDir, data: TrainingData, train_csv: Path) -> np.ndarray:
    """int64[N] fold of each training image as the run recorded it (``folds.csv``)."""
    if data.fingerprint != run.inputs:
        raise DataError(
            f"{train_csv}: differs from the table the run was trained on "
            f"(run.json inputs {run.inputs}, found {data.fingerprint})",
            hint="TTT mixes in the run's own training data: pass it with --ttt-train DIR",
        )
    folds = pd.read_csv(run.path / "folds.csv").set_index("image_id")["fold"]
    return folds.reindex(data.wide["image_id"]).to_numpy(np.int64)


def ttt_dataset(
    train: TrainingData,
    train_rows: np.ndarray,
    train_arrays: dict[str, np.ndarray],
    test: TestData,
    test_arrays: dict[str, np.ndarray],
    pseudo: np.ndarray,
    cfg: BiomassConfig,
    seed: int,
) -> ConcatDataset:
    """Training rows with their true targets, then every test image with its pseudo-label.

    Args:
        train: The run's training data.
        train_rows: int[M] rows of `train` to mix in (a fold's own training rows).
        train_arrays: Per-training-image arrays besides the targets (``meta`` [N_train, 4]).
        test: The test data.
        test_arrays: Per-test-image arrays (``meta`` [N_test, 4]).
        pseudo: float32[N_test, 5] pseudo-label grams.
        cfg: The run's config (augmentation, cleaning).
        seed: Augmentation seed.

    Returns:
        An augmented dataset of ``M + N_test`` items with ``image``, ``targets`` (and ``meta``).
    """
    rows = np.asarray(train_rows)
    known = {"targets": train.targets[rows], **{k: v[rows] for k, v in train_arrays.items()}}
    guessed = {"targets": pseudo.astype(np.float32), **test_arrays}
    if set(known) != set(guessed):
        raise ValueError(f"training arrays {sorted(known)} != test arrays {sorted(guessed)}")
    paths = [train.paths[i] for i in rows]
    test_seed = seed + _TEST_STREAM
    return ConcatDataset(
        [
            make_dataset(paths, train.cache, known, cfg, train=True, seed=seed),
            make_dataset(test.paths, test.cache, guessed, cfg, train=True, seed=test_seed),
        ]
    )


def _autocast(device: str) -> contextlib.AbstractContextManager[Any]:
    # bf16 only: fp16 would need a gradient scaler, and on CPU the run trained in fp32.
    if device == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def finetune(
    model: nn.Module, loader: DataLoader, cfg: BiomassConfig, settings: TTTSettings, seed: int
) -> nn.Module:
    """Fine-tune `model` in place on `loader` and return it (eval mode, on CPU).

    Args:
        model: A Phase-2 model (an in-memory copy: its weights change).
        loader: Shuffled batches of ``image`` Tensor[B, 3, H, W], ``targets`` Tensor[B, 5]
            (and ``meta`` Tensor[B, 4]) over a `ttt_dataset`.
        cfg: The run's config (loss, optimiser recipe, clipping, precise BN, device).
        settings: Epochs and learning rate.
        seed: Seeds dropout and any other global randomness.
    """
    seed_everything(seed)
    device = resolve_device(cfg.train.device)
    system = Phase2System(  # the run's own training loss
        model, cfg.phase2, loss_kind=cfg.phase2.loss, bin_loss_weight=cfg.phase2.bin_loss_weight
    ).to(device)
    recipe = OptimConfig.narrow(cfg.phase2).model_copy(
        update={"lr": settings.learning_rate(cfg), "warmup_epochs": 0.0}
    )
    total = settings.epochs * len(loader)
    optimizer, scheduler = build_optimizer(model, recipe, total, warmup_steps=0)
    system.train()
    for epoch in range(settings.epochs):
        for part in loader.dataset.datasets:  # type: ignore[attr-defined]
            part.set_epoch(epoch)  # the augmentation stream of this epoch
        for batch in loader:
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            with _autocast(device):
                loss = system._shared_step(batch, "train").loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.train.gradient_clip_val is not None:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.train.gradient_clip_val)
            optimizer.step()
            scheduler.step()
    if cfg.phase2.precise_bn_batches is not None:
        # As in training: BN statistics of the final weights, not a lagging running mean.
        recompute_bn(system, loader, cfg.phase2.precise_bn_batches)
    return model.cpu().eval()


def _ensemble(
    models: list[nn.Module],
    test: TestData,
    arrays: dict[str, np.ndarray],
    cfg: BiomassConfig,
    tta: bool,
) -> np.ndarray:
    """float32[N, 5]: mean over fold models of the mean over TTA views, clipped at 0."""
    dataset = make_dataset(test.paths, test.cache, arrays, cfg)
    views = flip_views(tta)
    per_fold = [
        mean_views(
            predict_views(m, dataset, phase2_call, views, cfg.train.device, cfg.data.batch_size)
        )["targets"]
        for m in models
    ]
    return np.clip(np.mean(per_fold, axis=0), 0.0, None).astype(np.float32)


def predict_ttt(
    run_dir: str | Path,
    data_dir: str | Path,
    out_csv: str | Path,
    settings: TTTSettings | None = None,
    tta: bool | None = None,
    overrides: list[str] | None = None,
    train_dir: str | Path | None = None,
) -> TTTResult:
    """`predict` with test-time training of every Phase-2 fold model (see the module doc).

    Args:
        run_dir: A finished run directory (only read).
        data_dir: Kaggle-layout directory with ``test.csv`` and ``test/``.
        out_csv: Submission path, written atomically after every input was validated.
        settings: Epochs and learning rate (default `TTTSettings()`).
        tta: Override the run's Phase-2 TTA (teacher, fine-tuned predictions alike).
        overrides: ``--set`` overrides of runtime fields.
        train_dir: Directory with the run's ``train.csv`` and ``train/`` (default: the
            data folder ``run.json`` recorded, else `data_dir`); it must hold the table the
            run was trained on.

    Raises:
        DataError: Bad test or training input, or training data other than the run's.
        RunError: Not a finished biomass run.
    """
    from fieldvision.config import apply_runtime_overrides

    settings = settings or TTTSettings()
    run, cfg, _ = load_run(run_dir)
    cfg = apply_runtime_overrides(cfg, overrides or [])
    tta = cfg.train.tta if tta is None else tta
    test = load_test_data(data_dir, cfg)
    start = time.perf_counter()  # TTT's cost: what `predict` does not do
    train_dir = _training_dir(run, Path(data_dir), train_dir)
    train = load_training_data(train_dir, cfg)
    folds = _run_folds(run, train, train_dir / "train.csv")
    train_arrays = _training_meta(run, train)
    loading = time.perf_counter() - start

    arrays = phase2_arrays(run, cfg, test)
    # Rebuilt from the run's files: in-memory copies, free to be fine-tuned below.
    models = [run.load_model(f"phase2/fold{k}/model.safetensors") for k in range(cfg.train.folds)]
    teacher = _ensemble(models, test, arrays, cfg, tta)

    start = time.perf_counter()
    tuned, n_train = [], []
    for k, model in enumerate(models):
        seed = cfg.train.seed + _SEED_OFFSET + k
        rows = np.flatnonzero(folds != k)  # what fold k was trained on
        dataset = ttt_dataset(train, rows, train_arrays, test, arrays, teacher, cfg, seed)
        loader = batch_loader(dataset, cfg.data.batch_size, train=True,
                              num_workers=cfg.data.num_workers, seed=seed)  # fmt: skip
        console.print(
            f"[bold]ttt[/] fold{k}: {len(rows)} train + {len(test.paths)} pseudo-labelled test, "
            f"{settings.epochs} epoch(s)"
        )
        tuned.append(finetune(model, loader, cfg, settings, seed))
        n_train.append(len(rows))
    preds = _ensemble(tuned, test, arrays, cfg, tta)
    minutes = (loading + time.perf_counter() - start) / 60.0

    submission = submission_for(test.table, test.images["image_id"], preds)
    write_csv(out_csv, submission)
    return TTTResult(submission, teacher, preds, minutes, len(test.paths), n_train)
