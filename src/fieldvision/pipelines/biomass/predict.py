"""Fold-ensemble prediction in the Kaggle submission format, and its evaluation.

Test-time metadata (FiLM's conditioning) is the mean of the Phase-1 fold models'
predictions, each averaged over the run's TTA views: exactly how the out-of-fold metadata
Phase 2 was trained on was computed. The Phase-2 prediction of an image is the mean over
folds of the mean over views, clipped at 0 g.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fieldvision.data.biomass import read_train_table
from fieldvision.errors import DataError
from fieldvision.inference import View, flip_views, mean_views, predict_views
from fieldvision.io import read_yaml, write_csv
from fieldvision.metrics.regression import per_target_r2, weighted_r2_long
from fieldvision.pipelines.biomass.config import BiomassConfig
from fieldvision.pipelines.biomass.fit import RUN_KIND, phase1_call, phase2_call
from fieldvision.pipelines.biomass.inputs import TestData, load_test_data, make_dataset
from fieldvision.pipelines.biomass.meta import MetaEncoder, film_meta
from fieldvision.runs import RunDir
from fieldvision.schemas.biomass import TARGETS, long_to_wide, submission_for, to_long

__all__ = ["EvalResult", "evaluate", "load_run", "phase2_arrays", "predict", "predict_targets"]


@dataclass
class EvalResult:
    """Weighted R² of a submission (or OOF file) against a truth table."""

    weighted_r2: float
    per_target: dict[str, float]
    n_images: int


def load_run(run_dir: str | Path) -> tuple[RunDir, BiomassConfig, MetaEncoder]:
    """Open a finished biomass run: its directory, config and metadata encoder.

    Raises:
        RunError: Not a finished biomass run, or an edited ``config.yaml``.
    """
    run, cfg = RunDir.open(run_dir, RUN_KIND, BiomassConfig)
    enc = MetaEncoder.from_dict(read_yaml(run.path / "meta_encoder.json"))
    return run, cfg, enc


def _fold_outputs(
    run: RunDir,
    cfg: BiomassConfig,
    test: TestData,
    phase: str,
    call: Callable[[torch.nn.Module, dict], dict[str, torch.Tensor]],
    arrays: dict[str, np.ndarray],
    views: tuple[View, ...],
) -> list[dict[str, np.ndarray]]:
    """Each fold model's outputs of `phase` on the test images, averaged over `views`."""
    dataset = make_dataset(test.paths, test.cache, arrays, cfg)
    outs = []
    for k in range(cfg.train.folds):
        model = run.load_model(f"{phase}/fold{k}/model.safetensors")
        views_out = predict_views(
            model, dataset, call, views, device=cfg.train.device, batch_size=cfg.data.batch_size
        )
        outs.append(mean_views(views_out))
    return outs


def phase2_arrays(run: RunDir, cfg: BiomassConfig, test: TestData) -> dict[str, np.ndarray]:
    """Per-image arrays Phase 2 reads on the test images: ``{"meta": float32[N, 4]}`` (the
    Phase-1 fold ensemble over the run's TTA views) when FiLM is on, else ``{}``."""
    if not cfg.needs_phase1:
        return {}
    per_fold = _fold_outputs(run, cfg, test, "phase1", phase1_call, {}, flip_views(cfg.train.tta))
    return {"meta": np.mean([film_meta(o) for o in per_fold], axis=0).astype(np.float32)}


def predict_targets(
    run: RunDir, cfg: BiomassConfig, test: TestData, tta: bool | None = None
) -> np.ndarray:
    """(N, 5) grams for the test images: fold ensemble, TTA, clipped at 0.

    Args:
        run: The finished run.
        cfg: Its config (runtime fields may differ from training).
        test: Validated test data.
        tta: Phase-2 flip TTA; None uses the run's setting. Phase-1 metadata always uses
            the run's setting, so Phase 2 sees metadata computed as in training.
    """
    phase2_views = flip_views(cfg.train.tta if tta is None else tta)
    arrays = phase2_arrays(run, cfg, test)
    per_fold = _fold_outputs(run, cfg, test, "phase2", phase2_call, arrays, phase2_views)
    preds = np.mean([o["targets"] for o in per_fold], axis=0)
    return np.clip(preds, 0.0, None)


def predict(
    run_dir: str | Path,
    data_dir: str | Path,
    out_csv: str | Path,
    tta: bool | None = None,
    overrides: list[str] | None = None,
) -> pd.DataFrame:
    """Fold-ensemble prediction for every row of ``test.csv`` in Kaggle submission format.

    Args:
        run_dir: A finished run directory.
        data_dir: Kaggle-layout directory with ``test.csv`` and ``test/``.
        out_csv: Submission path (``sample_id,target``), written atomically after every
            input has been validated.
        tta: Override the run's Phase-2 TTA (see `predict_targets`).
        overrides: ``--set`` overrides of runtime fields (device, batch workers, ...).

    Returns:
        The submission frame, rows in ``test.csv`` order.
    """
    from fieldvision.config import apply_runtime_overrides

    run, cfg, _ = load_run(run_dir)
    cfg = apply_runtime_overrides(cfg, overrides or [])
    test = load_test_data(data_dir, cfg)
    preds = predict_targets(run, cfg, test, tta)
    submission = submission_for(test.table, test.images["image_id"], preds)
    write_csv(out_csv, submission)
    return submission


def evaluate(pred_csv: str | Path, truth_csv: str | Path) -> EvalResult:
    """Weighted R² (competition metric) and per-target R² of a submission or OOF file.

    Args:
        pred_csv: ``sample_id,target`` predictions.
        truth_csv: A ``train.csv``-format table with the true targets.
    """
    pred_csv, truth_csv = Path(pred_csv), Path(truth_csv)
    for path in (pred_csv, truth_csv):
        if not path.is_file():
            raise DataError(f"{path}: file not found")
    truth = read_train_table(truth_csv)
    try:
        pred = pd.read_csv(pred_csv)
    except pd.errors.EmptyDataError:
        raise DataError(f"{pred_csv}: empty CSV") from None
    missing = {"sample_id", "target"} - set(pred.columns)
    if missing:
        raise DataError(
            f"{pred_csv}: missing column(s) {sorted(missing)}; a submission has sample_id,target"
        )
    long_truth = to_long(truth["image_id"].to_numpy(), truth[list(TARGETS)].to_numpy())
    try:
        score = weighted_r2_long(long_truth, pred)
    except DataError as exc:
        raise DataError(f"{pred_csv} vs {truth_csv}: {exc}") from None
    wide_true = long_to_wide(long_truth)
    wide_pred = long_to_wide(pred).reindex(wide_true.index)
    per_target = per_target_r2(wide_true.to_numpy(), wide_pred.to_numpy())
    return EvalResult(score, per_target, len(truth))
