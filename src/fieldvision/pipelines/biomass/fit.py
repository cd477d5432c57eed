"""Cross-validated training of the biomass pipeline: Phase 1, then Phase 2 on its OOF output.

A run directory (`fieldvision.runs.RunDir`, kind ``biomass``) holds::

    run.json  config.yaml  metrics.json ("fit")     the common run format
    folds.csv          image_id, sampling_date, fold   meta_encoder.json
    phase1/fold{k}/    Lightning state + model.safetensors (only when FiLM is on)
    phase1/oof_meta.csv out-of-fold predicted metadata (what Phase 2 is trained on)
    phase2/fold{k}/    Lightning state + model.safetensors
    oof.csv            out-of-fold predictions in submission format (sample_id,target)
    oof_wide.csv       the same, one row per image, with truth, fold and metadata
    report.md + PNGs

Phase 2 is trained on **out-of-fold predicted** metadata, never on ground truth: fold k's
Phase-2 model sees, for every training image, what a Phase-1 model that never saw that
image predicted, which is what it will see at test time (the seed's error-propagation
point). Re-running ``train`` with the same ``--out`` skips finished folds and resumes the
current one.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from fieldvision.console import console
from fieldvision.inference import flip_views, mean_views, predict_views
from fieldvision.io import write_csv, write_json
from fieldvision.metrics.regression import per_target_r2, weighted_r2
from fieldvision.models.biomass import Phase1Model, Phase2Model
from fieldvision.models.biomass_heads import quantile_bins
from fieldvision.pipelines.biomass.config import BiomassConfig
from fieldvision.pipelines.biomass.inputs import (
    TrainingData,
    load_training_data,
    make_dataset,
    make_loader,
)
from fieldvision.pipelines.biomass.meta import FILM_KEYS, MetaEncoder, film_meta
from fieldvision.pipelines.biomass.noise import (
    label_noise_section,
    label_noise_table,
    write_label_noise,
)
from fieldvision.runs import RunDir
from fieldvision.schemas.biomass import TARGETS, to_submission
from fieldvision.training.biomass import Phase1System, Phase2System
from fieldvision.training.fit import FitTask, Split, fit_splits, kfold_splits

__all__ = ["RUN_KIND", "TrainResult", "phase1_call", "phase2_call", "train"]

RUN_KIND = "biomass"


@dataclass
class TrainResult:
    """What `train` measured."""

    run_dir: Path
    oof_r2: float  # honest unless phase2.selection=best
    oof_r2_no_tta: float
    per_target: dict[str, float]
    fold_r2: list[float]
    seconds: float
    extra: dict = field(default_factory=dict)
    # The same OOF with each fold's own best epoch (the optimistic, selection-biased score).
    oof_r2_fold_best: float = float("nan")
    selection: str = "best"


def phase1_call(model: torch.nn.Module, batch: dict) -> dict[str, torch.Tensor]:
    """Inference call of a Phase-1 model (all its outputs)."""
    return model(batch["image"])


def phase2_call(model: torch.nn.Module, batch: dict) -> dict[str, torch.Tensor]:
    """Inference call of a Phase-2 model: targets (and tile weights when it has tiles)."""
    outputs = model(batch["image"], batch.get("meta"))
    keep = {"targets": outputs["targets"]}
    if outputs.get("tile_weights") is not None:
        keep["tile_weights"] = outputs["tile_weights"]
    return keep


def _target_scale(y: np.ndarray) -> list[float]:
    """Per-target scale (training mean, floored) so the loss sees O(1) numbers."""
    return [max(float(v), 1.0) for v in y.mean(axis=0)]


def _fold_seed(cfg: BiomassConfig, split: Split) -> int:
    return cfg.train.seed + int(split.name.removeprefix("fold"))


def _subset(arrays: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {key: value[idx] for key, value in arrays.items()}


def _fold_loaders(
    data: TrainingData, arrays: dict[str, np.ndarray], split: Split, cfg: BiomassConfig
) -> tuple[DataLoader, DataLoader]:
    """Training (shuffled, augmented, fold-seeded) and validation loaders of one fold."""
    train = make_loader(
        [data.paths[i] for i in split.train],
        data.cache,
        _subset(arrays, split.train),
        cfg,
        train=True,
        seed=_fold_seed(cfg, split),
    )
    val = make_loader(
        [data.paths[i] for i in split.val], data.cache, _subset(arrays, split.val), cfg, train=False
    )
    return train, val


def _predict(
    model: torch.nn.Module,
    data: TrainingData,
    idx: np.ndarray,
    arrays: dict[str, np.ndarray],
    cfg: BiomassConfig,
    call: Callable[[torch.nn.Module, dict], dict[str, torch.Tensor]],
    tta: bool,
) -> list[dict[str, np.ndarray]]:
    """Per-view predictions of `model` on rows `idx` (the run's flip views when `tta`)."""
    paths = [data.paths[i] for i in idx]
    dataset = make_dataset(paths, data.cache, _subset(arrays, idx), cfg)
    return predict_views(
        model,
        dataset,
        call,
        flip_views(tta),
        device=cfg.train.device,
        batch_size=cfg.data.batch_size,
    )


def _phase1_oof(
    run: RunDir, data: TrainingData, cfg: BiomassConfig, enc: MetaEncoder
) -> np.ndarray:
    """Train Phase 1 per fold; return (N, 4) out-of-fold predicted FiLM metadata."""
    oof_path = run.path / "phase1" / "oof_meta.csv"
    if oof_path.is_file():
        return pd.read_csv(oof_path)[list(FILM_KEYS)].to_numpy(np.float32)
    labels = enc.encode(data.wide)

    def build(split: Split) -> FitTask:
        model = Phase1Model(cfg.phase1, n_species=len(enc.species), n_states=len(enc.states))
        system = Phase1System(model, cfg.phase1, task_weights={})
        return FitTask(model, system, *_fold_loaders(data, labels, split, cfg))

    fitted = fit_splits(
        run.path / "phase1",
        kfold_splits(data.folds),
        build,
        cfg.phase1,
        cfg.train,
        seed=cfg.train.seed,
        label="phase 1",
    )
    oof = np.zeros((len(data.paths), len(FILM_KEYS)), np.float32)
    for f in fitted:
        views = _predict(f.model, data, f.split.val, {}, cfg, phase1_call, cfg.train.tta)
        oof[f.split.val] = film_meta(mean_views(views))
    write_csv(oof_path, pd.DataFrame(oof, columns=list(FILM_KEYS)))
    return oof


def train(
    data_dir: str | Path,
    out: str | Path,
    cfg: BiomassConfig,
    phase1_from: Path | None = None,
) -> TrainResult:
    """Cross-validated training of the whole pipeline; resumable.

    Every input is validated (tables, every image decoded, folds) before ``out`` is
    touched; a run that then fails is marked ``failed`` and replaced by a corrected re-run.

    Args:
        data_dir: Kaggle-layout directory with ``train.csv`` and ``train/``.
        out: Run directory (created, resumed, or a failed run replaced).
        cfg: Pipeline configuration.
        phase1_from: Optional finished run whose Phase-1 artifacts can be reused (same data,
            folds and Phase-1 settings); used by ablations so variants share Phase 1.

    Returns:
        OOF weighted R² (with the run's TTA and the identity view alone), per-target R²,
        per-fold R², wall time.
    """
    start = time.perf_counter()
    data = load_training_data(data_dir, cfg)
    run = RunDir.start(out, RUN_KIND, cfg, data.fingerprint, data=data_dir)
    if run.status == "done":
        recorded = recorded_result(run)
        if recorded is not None:  # same config and data, finished: nothing to recompute
            console.print(f"[dim]{out}: finished run, scores from its metrics.json[/]")
            return recorded
    with run.running():
        result = _train(run, data, cfg, phase1_from, start)
    return result


def recorded_result(run: RunDir) -> TrainResult | None:
    """The `TrainResult` a finished run recorded in ``metrics.json``, or None.

    Re-running ``train`` (or ``ablate``, which re-runs every variant) on a finished run
    returns this instead of re-predicting every fold with TTA and redrawing the report.
    None when the run predates a recorded field, so the caller recomputes.
    """
    fit = run.read_metrics().get("fit", {})
    needed = ("oof_weighted_r2", "oof_weighted_r2_no_tta", "per_target_r2", "fold_weighted_r2")
    if not all(key in fit for key in needed) or not (run.path / "oof.csv").is_file():
        return None
    selection = fit.get("selection") if isinstance(fit.get("selection"), dict) else {}
    return TrainResult(
        run.path,
        float(fit["oof_weighted_r2"]),
        float(fit["oof_weighted_r2_no_tta"]),
        {str(k): float(v) for k, v in fit["per_target_r2"].items()},
        [float(v) for v in fit["fold_weighted_r2"]],
        float(fit.get("seconds", 0.0)),
        oof_r2_fold_best=float(fit.get("oof_weighted_r2_fold_best", float("nan"))),
        selection=str(selection.get("mode", "best")),
        extra={"n_excluded": int(fit.get("n_excluded", 0))},
    )


def _train(
    run: RunDir, data: TrainingData, cfg: BiomassConfig, phase1_from: Path | None, start: float
) -> TrainResult:
    out, wide, y = run.path, data.wide, data.targets
    write_csv(
        out / "folds.csv",
        pd.DataFrame(
            {
                "image_id": wide["image_id"],
                "sampling_date": wide["sampling_date"].dt.strftime("%Y-%m-%d"),
                "fold": data.folds,
            }
        ),
    )
    enc = MetaEncoder.fit(wide)
    write_json(out / "meta_encoder.json", enc.to_dict())

    arrays: dict[str, np.ndarray] = {"targets": y}
    meta = None
    if cfg.needs_phase1:
        reusable = phase1_from is not None and (phase1_from / "phase1" / "oof_meta.csv").is_file()
        if reusable and not (out / "phase1").exists():
            shutil.copytree(phase1_from / "phase1", out / "phase1")
        meta = _phase1_oof(run, data, cfg, enc)
        arrays["meta"] = meta  # out-of-fold *predicted* metadata, never ground truth

    def build(split: Split) -> FitTask:
        scale = _target_scale(y[split.train])
        bins = {}
        if cfg.phase2.bins:  # from the training fold only, like the scale
            edges, centres = quantile_bins(y[split.train, :3], cfg.phase2.bins)
            bins = {"bin_edges": edges.tolist(), "bin_centres": centres.tolist()}
        model = Phase2Model(cfg.phase2, meta_dim=len(FILM_KEYS), target_scale=scale, **bins)
        system = Phase2System(
            model,
            cfg.phase2,
            loss_kind=cfg.phase2.loss,
            bin_loss_weight=cfg.phase2.bin_loss_weight,
        )
        return FitTask(model, system, *_fold_loaders(data, arrays, split, cfg))

    fitted = fit_splits(
        out / "phase2",
        kfold_splits(data.folds),
        build,
        cfg.phase2,
        cfg.train,
        seed=cfg.train.seed + 100,
        label="phase 2",
    )
    oof = np.zeros_like(y)
    oof_plain = np.zeros_like(y)
    oof_fold_best = np.zeros_like(y)
    tile_weights: np.ndarray | None = None
    fold_r2: list[float] = []
    fold_r2_best: list[float] = []
    for f in fitted:
        va = f.split.val
        views = _predict(f.model, data, va, arrays, cfg, phase2_call, cfg.train.tta)
        oof[va] = mean_views(views)["targets"]
        if f.fold_best is f.model:
            oof_fold_best[va] = oof[va]
        else:
            biased = _predict(f.fold_best, data, va, arrays, cfg, phase2_call, cfg.train.tta)
            oof_fold_best[va] = mean_views(biased)["targets"]
        oof_plain[va] = views[0]["targets"]  # the identity view alone: the no-TTA ablation
        if "tile_weights" in views[0]:
            # Identity view only: flips permute the tiles, so their weights cannot be averaged.
            if tile_weights is None:
                tile_weights = np.zeros((len(y), views[0]["tile_weights"].shape[1]), np.float32)
            tile_weights[va] = views[0]["tile_weights"]
        fold_r2.append(weighted_r2(y[va], oof[va]))
        fold_r2_best.append(weighted_r2(y[va], oof_fold_best[va]))
        console.print(f"  {f.split.name} OOF weighted R² = {fold_r2[-1]:.4f}")

    r2, r2_plain = weighted_r2(y, oof), weighted_r2(y, oof_plain)
    r2_fold_best = weighted_r2(y, oof_fold_best)
    per_target = per_target_r2(y, oof)
    _write_oof(out, wide, data.folds, oof, meta, enc)
    # A single run ranks images by residual; flags need repeats (`train_repeats`).
    noise = label_noise_table(wide["image_id"].astype(str).tolist(), y, [oof])
    write_label_noise(out, noise)
    selection = _selection_summary(fitted, cfg.phase2.selection)
    metrics = {
        "oof_weighted_r2": r2,
        "oof_weighted_r2_no_tta": r2_plain,
        # Each fold's own best epoch: what "best" selection reports, optimistic by design.
        "oof_weighted_r2_fold_best": r2_fold_best,
        "selection": selection,
        "per_target_r2": per_target,
        "fold_weighted_r2": fold_r2,
        "fold_weighted_r2_fold_best": fold_r2_best,
        # Validation R² of every epoch, per fold (no TTA): the training curves.
        "epoch_val_r2": _epoch_curves(out / "phase2", fitted),
        "n_images": len(wide),
        "n_excluded": len(data.excluded),  # data.exclude: not trained on, not scored
        "folds": cfg.train.folds,
        "tta": cfg.train.tta,
        "seconds": time.perf_counter() - start,
    }
    run.update_metrics("fit", metrics)
    from fieldvision.report.biomass import write_biomass_report

    write_biomass_report(
        out,
        wide,
        data.folds,
        oof,
        metrics,
        data.cache,
        data.paths,
        tile_weights,
        tuple(cfg.phase2.tile_grid),
        extra_sections=[("Label noise (ranking)", label_noise_section(noise, repeats=1))],
    )
    return TrainResult(
        out,
        r2,
        r2_plain,
        per_target,
        fold_r2,
        metrics["seconds"],
        oof_r2_fold_best=r2_fold_best,
        selection=selection["mode"],
        extra={"n_excluded": len(data.excluded)},
    )


def _epoch_curves(folder: Path, fitted: list) -> dict[str, list[float]]:
    curves = {}
    for f in fitted:
        path = folder / f.split.name / "epochs.json"
        if path.is_file():
            scores = json.loads(path.read_text(encoding="utf-8")).get("scores", {})
            curves[f.split.name] = [scores[e] for e in sorted(scores, key=int)]
    return curves


def _selection_summary(fitted: list, configured: str) -> dict:
    """How the Phase-2 fold models were chosen (``legacy``: trained before the modes)."""
    modes = {f.selection.get("mode", "best") for f in fitted}
    legacy = any(f.selection.get("legacy") for f in fitted)
    mode = modes.pop() if len(modes) == 1 else configured
    return {
        "mode": f"{mode} (legacy run)" if legacy else mode,
        "fold_epochs": [f.selection.get("epochs") for f in fitted],
        "fold_best_epochs": [f.selection.get("fold_best_epoch") for f in fitted],
    }


def _write_oof(
    out: Path,
    wide: pd.DataFrame,
    folds: np.ndarray,
    oof: np.ndarray,
    meta: np.ndarray | None,
    enc: MetaEncoder,
) -> None:
    frame = wide[["image_id", "sampling_date", "month", "state", "species", *TARGETS]].copy()
    frame["fold"] = folds
    for j, name in enumerate(TARGETS):
        frame[f"pred_{name}"] = oof[:, j]
    if meta is not None:
        frame["pred_month"] = enc.decode_month(meta[:, 0], meta[:, 1])
    write_csv(out / "oof_wide.csv", frame)
    write_csv(out / "oof.csv", to_submission(wide["image_id"].to_numpy(), oof))
