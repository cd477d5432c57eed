"""The biomass pipeline: k-fold training of Phase 1 and Phase 2, prediction, evaluation.

A run directory holds::

    config.yaml        resolved BiomassConfig          run.json     status + fingerprint
    folds.csv          image_id, sampling_date, fold   meta_encoder.json
    phase1/fold{k}/    Lightning logs + model.safetensors (only when FiLM is on)
    phase1/oof_meta.csv out-of-fold predicted metadata (what Phase 2 is trained on)
    phase2/fold{k}/    Lightning logs + model.safetensors
    oof.csv            out-of-fold predictions in submission format (sample_id,target)
    oof_wide.csv       the same, one row per image, with truth, fold and metadata
    metrics.json       OOF weighted R² (with and without TTA), per target, per fold
    report.md + PNGs

Every fold writes ``done.json`` when it finishes, so re-running ``train`` with the same
``--out`` after an interruption skips finished folds and resumes the current one from its
``last.ckpt``.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import WeightAveraging
from safetensors.torch import load_file, save_file
from torch.optim.swa_utils import get_ema_avg_fn
from torch.utils.data import DataLoader

from fieldvision.config import config_to_dict, load_config
from fieldvision.console import console
from fieldvision.data.biomass import (
    TARGETS,
    BiomassDataset,
    check_images_exist,
    read_test_table,
    read_train_table,
    to_long,
)
from fieldvision.data.cache import ImageCache
from fieldvision.errors import DataError, RunError
from fieldvision.io import atomic_path, read_yaml, write_csv, write_json, write_yaml
from fieldvision.metrics.regression import per_target_r2, weighted_r2, weighted_r2_long
from fieldvision.models.biomass import Phase1Config, Phase1Model, Phase2Config, Phase2Model
from fieldvision.pipelines.biomass_config import BiomassConfig
from fieldvision.pipelines.biomass_meta import FILM_KEYS, MetaEncoder
from fieldvision.runtime import resolve_device
from fieldvision.seeding import seed_everything
from fieldvision.training.biomass import OptimConfig, Phase1System, Phase2System
from fieldvision.training.callbacks import SetEpochCallback
from fieldvision.training.kfold import grouped_folds
from fieldvision.training.trainer import build_trainer, fit_resumable

__all__ = ["EvalResult", "TrainResult", "evaluate", "predict", "train"]

RUN_KIND = "biomass"


@dataclass
class TrainResult:
    """What `train` measured."""

    run_dir: Path
    oof_r2: float
    oof_r2_no_tta: float
    per_target: dict[str, float]
    fold_r2: list[float]
    seconds: float
    extra: dict = field(default_factory=dict)


@dataclass
class EvalResult:
    """Weighted R² of a submission (or OOF file) against a truth table."""

    weighted_r2: float
    per_target: dict[str, float]
    n_images: int


# --------------------------------------------------------------------------- helpers


def _cache_for(cfg: BiomassConfig, data_dir: Path) -> ImageCache:
    root = Path(cfg.data.cache_dir) if cfg.data.cache_dir else data_dir / ".fieldvision_cache"
    # The in-memory layer keeps a small dataset's cleaned images decoded across epochs.
    return ImageCache(root, cfg.data.clean, memory_items=2048)


def _loader(
    paths: Sequence[Path],
    cache: ImageCache,
    arrays: Mapping[str, np.ndarray],
    cfg: BiomassConfig,
    *,
    train: bool,
    seed: int = 0,
    hflip: bool = False,
    vflip: bool = False,
) -> DataLoader:
    dataset = BiomassDataset(
        list(paths),
        cache,
        arrays=dict(arrays),
        hflip=hflip,
        vflip=vflip,
        augment=train and cfg.data.augment,
        seed=seed,
    )
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=cfg.data.batch_size,
        shuffle=train,
        drop_last=train and len(dataset) > cfg.data.batch_size,
        num_workers=cfg.data.num_workers,
        generator=generator,
    )


#: Flip TTA views for top-down photos: identity, horizontal, vertical.
_TTA_VIEWS = ((False, False), (True, False), (False, True))


@torch.no_grad()
def _predict_views(
    model: torch.nn.Module,
    paths: Sequence[Path],
    cache: ImageCache,
    arrays: Mapping[str, np.ndarray],
    cfg: BiomassConfig,
    call: Callable[[torch.nn.Module, dict], dict[str, torch.Tensor]],
    tta: bool,
    device: str,
) -> list[dict[str, np.ndarray]]:
    """Run `call(model, batch)` over `paths` once per flip view (one view without `tta`)."""
    model.eval().to(device)
    results = []
    for hflip, vflip in _TTA_VIEWS if tta else _TTA_VIEWS[:1]:
        loader = _loader(paths, cache, arrays, cfg, train=False, hflip=hflip, vflip=vflip)
        chunks: dict[str, list[np.ndarray]] = {}
        for batch in loader:
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            for key, value in call(model, batch).items():
                chunks.setdefault(key, []).append(value.float().cpu().numpy())
        results.append({key: np.concatenate(parts) for key, parts in chunks.items()})
    return results


def _mean_views(views: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Average of per-view outputs (TTA)."""
    return {key: np.mean([v[key] for v in views], axis=0) for key in views[0]}


def _predict_arrays(*args, **kwargs) -> dict[str, np.ndarray]:
    """`_predict_views` averaged over views."""
    return _mean_views(_predict_views(*args, **kwargs))


def _subset(arrays: Mapping[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    """Rows `idx` of every per-image array."""
    return {key: value[idx] for key, value in arrays.items()}


def _film_meta(outputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """(N, 4) FiLM conditioning vector from Phase-1 outputs (sin, cos, ndvi_z, height_z)."""
    month = outputs["month"]
    return np.stack([month[:, 0], month[:, 1], outputs["ndvi"], outputs["height"]], axis=1).astype(
        np.float32
    )


def _phase1_config(cfg: BiomassConfig, enc: MetaEncoder) -> Phase1Config:
    p = cfg.phase1
    return Phase1Config(
        backbone=p.backbone,
        pretrained=p.pretrained,
        input_size=tuple(p.input_size),
        hidden=p.hidden,
        dropout=p.dropout,
        n_species=len(enc.species),
        n_states=len(enc.states),
        use_species=p.use_species,
        use_state=p.use_state,
    )


def _phase2_config(cfg: BiomassConfig, target_scale: Sequence[float]) -> Phase2Config:
    p = cfg.phase2
    return Phase2Config(
        backbone=p.backbone,
        pretrained=p.pretrained,
        global_size=tuple(p.global_size),
        tile_grid=tuple(p.tile_grid),
        use_tiles=p.use_tiles,
        aggregation=p.aggregation,
        num_heads=p.num_heads,
        use_film=p.use_film,
        meta_dim=len(FILM_KEYS),
        fusion_dim=p.fusion_dim,
        hidden=p.hidden,
        dropout=p.dropout,
        target_scale=tuple(float(s) for s in target_scale),
    )


def _target_scale(y: np.ndarray) -> list[float]:
    """Per-target scale (training mean, floored) so the loss sees O(1) numbers."""
    return [max(float(v), 1.0) for v in y.mean(axis=0)]


def _save_weights(model: torch.nn.Module, path: Path) -> None:
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp))


def _load_best(model: torch.nn.Module, best_path: Path | None) -> None:
    """Copy the best Lightning checkpoint's weights into `model` (kept on CPU)."""
    if best_path is None or not Path(best_path).is_file():
        return  # training ended without a best checkpoint: keep the final weights
    ckpt = torch.load(best_path, map_location="cpu", weights_only=True)
    state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items()}
    model.load_state_dict(state)


def _load_model(model: torch.nn.Module, path: Path, run_dir: Path) -> torch.nn.Module:
    if not path.is_file():
        raise RunError(
            f"{run_dir}: missing checkpoint {path.relative_to(run_dir)}; the run is unfinished"
        )
    try:
        model.load_state_dict(load_file(str(path)))
    except RuntimeError as exc:
        raise RunError(
            f"{path}: checkpoint does not match the run's config.yaml ({str(exc).splitlines()[0]})",
            hint="the run directory was produced by another config",
        ) from None
    return model.eval()


def _optim(cfg: BiomassConfig, section: str) -> OptimConfig:
    sec = getattr(cfg, section)
    return OptimConfig(
        lr=sec.lr, weight_decay=sec.weight_decay, warmup_epochs=cfg.train.warmup_epochs
    )


def _callbacks(cfg: BiomassConfig) -> list[L.Callback]:
    callbacks: list[L.Callback] = [SetEpochCallback()]
    if cfg.train.ema_decay is not None:
        callbacks.append(WeightAveraging(avg_fn=get_ema_avg_fn(cfg.train.ema_decay)))
    return callbacks


def _fit_fold(
    model: torch.nn.Module,
    system: L.LightningModule,
    fold_dir: Path,
    paths: Sequence[Path],
    arrays: Mapping[str, np.ndarray],
    tr: np.ndarray,
    va: np.ndarray,
    cache: ImageCache,
    cfg: BiomassConfig,
    section: str,
    monitor: str,
    mode: str,
    seed: int,
) -> None:
    """Train `model` on rows `tr` (validating on `va`) unless the fold already finished.

    A finished fold has ``model.safetensors`` (the best epoch's weights); an interrupted one
    resumes from its ``last.ckpt`` inside `fit_resumable`.
    """
    weights = fold_dir / "model.safetensors"
    if weights.is_file():
        model.load_state_dict(load_file(str(weights)))
        return
    sec = getattr(cfg, section)
    trainer = build_trainer(
        fold_dir,
        max_epochs=sec.epochs,
        device=cfg.train.device,
        precision=cfg.train.precision,
        accumulate_grad_batches=cfg.train.accumulate_grad_batches,
        monitor=monitor,
        mode=mode,
        patience=sec.patience,
        progress=cfg.train.progress,
        callbacks=_callbacks(cfg),
    )
    train_loader = _loader(
        [paths[i] for i in tr], cache, _subset(arrays, tr), cfg, train=True, seed=seed
    )
    val_loader = _loader([paths[i] for i in va], cache, _subset(arrays, va), cfg, train=False)
    result = fit_resumable(trainer, system, train_loader, val_loader, fold_dir)
    _load_best(model, result.best_path)
    _save_weights(model, weights)


# --------------------------------------------------------------------------- run directory


def _prepare_run_dir(out: Path, cfg: BiomassConfig) -> None:
    """Create `out`, or check that an existing run there was made with the same config."""
    run_json = out / "run.json"
    if run_json.is_file():
        recorded = read_yaml(run_json)
        if recorded.get("kind") != RUN_KIND:
            raise RunError(f"{out}: holds a {recorded.get('kind')!r} run, not a biomass run")
        if recorded.get("fingerprint") != cfg.fingerprint():
            raise RunError(
                f"{out}: was started with a different config (fingerprint "
                f"{recorded.get('fingerprint')} != {cfg.fingerprint()})",
                hint="use a new --out, or the same config to resume",
            )
        console.print(f"[yellow]resuming run in {out}[/]")
    out.mkdir(parents=True, exist_ok=True)
    write_yaml(out / "config.yaml", config_to_dict(cfg))
    write_json(run_json, {"kind": RUN_KIND, "fingerprint": cfg.fingerprint(), "status": "running"})


def load_run(run_dir: Path) -> tuple[BiomassConfig, MetaEncoder, dict]:
    """Load a finished run's config, metadata encoder and ``run.json``.

    Raises:
        RunError: Not a run directory, another pipeline's run, an unfinished run, or a
            ``config.yaml`` that no longer matches the one the run was trained with.
    """
    run_json = run_dir / "run.json"
    if not run_json.is_file():
        raise RunError(f"{run_dir}: not a run directory (no run.json)")
    info = read_yaml(run_json)
    if info.get("kind") != RUN_KIND:
        raise RunError(f"{run_dir}: holds a {info.get('kind')!r} run, not a biomass run")
    if info.get("status") != "complete":
        raise RunError(f"{run_dir}: the run is unfinished", hint="re-run train with the same --out")
    cfg = load_config(BiomassConfig, run_dir / "config.yaml")
    if cfg.fingerprint() != info.get("fingerprint"):
        raise RunError(
            f"{run_dir}/config.yaml: differs from the config the run was trained with",
            hint="restore the original config.yaml or retrain",
        )
    enc = MetaEncoder.from_dict(read_yaml(run_dir / "meta_encoder.json"))
    return cfg, enc, info


# --------------------------------------------------------------------------- training


def _phase1_oof(
    cfg: BiomassConfig,
    out: Path,
    paths: Sequence[Path],
    folds: np.ndarray,
    enc: MetaEncoder,
    meta_targets: Mapping[str, np.ndarray],
    cache: ImageCache,
    device: str,
) -> np.ndarray:
    """Train Phase 1 per fold and return (N, 4) out-of-fold predicted FiLM metadata."""
    oof_path = out / "phase1" / "oof_meta.csv"
    if oof_path.is_file():
        return pd.read_csv(oof_path)[list(FILM_KEYS)].to_numpy(np.float32)
    oof = np.zeros((len(paths), len(FILM_KEYS)), np.float32)
    for k in range(cfg.train.folds):
        fold_dir = out / "phase1" / f"fold{k}"
        tr, va = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        console.print(
            f"[bold]phase 1[/] fold {k + 1}/{cfg.train.folds}: {len(tr)} train, {len(va)} val"
        )
        seed_everything(cfg.train.seed + k)
        model = Phase1Model(_phase1_config(cfg, enc))
        system = Phase1System(model, _optim(cfg, "phase1"), task_weights={})
        _fit_fold(
            model,
            system,
            fold_dir,
            paths,
            meta_targets,
            tr,
            va,
            cache,
            cfg,
            "phase1",
            monitor="val_loss",
            mode="min",
            seed=cfg.train.seed + k,
        )
        outputs = _predict_arrays(
            model,
            [paths[i] for i in va],
            cache,
            {},
            cfg,
            lambda m, b: m(b["image"]),
            cfg.train.tta,
            device,
        )
        oof[va] = _film_meta(outputs)
    frame = pd.DataFrame(oof, columns=list(FILM_KEYS))
    write_csv(oof_path, frame)
    return oof


def train(
    data_dir: Path,
    out: Path,
    cfg: BiomassConfig,
    phase1_from: Path | None = None,
) -> TrainResult:
    """Cross-validated training of the whole pipeline; resumable.

    Args:
        data_dir: Kaggle-layout directory with ``train.csv`` and ``train/``.
        out: Run directory (created, or resumed if it holds the same config).
        cfg: Pipeline configuration.
        phase1_from: Optional finished run whose Phase-1 artifacts can be reused (same data,
            folds and Phase-1 settings); used by ablations so variants share Phase 1.

    Returns:
        OOF weighted R² (TTA and no TTA), per-target R², per-fold R², wall time.
    """
    start = time.perf_counter()
    data_dir, out = Path(data_dir), Path(out)
    wide = read_train_table(data_dir / "train.csv")
    check_images_exist(wide, data_dir, "train")
    if wide["sampling_date"].nunique() < cfg.train.folds:
        raise DataError(
            f"{data_dir / 'train.csv'}: {wide['sampling_date'].nunique()} sampling dates cannot "
            f"fill {cfg.train.folds} date-grouped folds",
            hint="use --folds with a smaller number",
        )
    _prepare_run_dir(out, cfg)
    device = resolve_device(cfg.train.device)
    paths = [data_dir / p for p in wide["image_path"]]
    cache = _cache_for(cfg, data_dir)
    cache.warm(paths, progress=cfg.train.progress)

    folds = grouped_folds(
        wide["sampling_date"].astype(str).to_numpy(), cfg.train.folds, cfg.train.seed
    )
    write_csv(
        out / "folds.csv",
        pd.DataFrame(
            {
                "image_id": wide["image_id"],
                "sampling_date": wide["sampling_date"].dt.strftime("%Y-%m-%d"),
                "fold": folds,
            }
        ),
    )
    enc = MetaEncoder.fit(wide)
    write_json(out / "meta_encoder.json", enc.to_dict())
    meta_targets = enc.encode(wide)
    y = wide[list(TARGETS)].to_numpy(np.float32)

    meta = None
    if cfg.needs_phase1:
        reusable = phase1_from is not None and (phase1_from / "phase1" / "oof_meta.csv").is_file()
        if reusable and not (out / "phase1").exists():
            shutil.copytree(phase1_from / "phase1", out / "phase1")
        meta = _phase1_oof(cfg, out, paths, folds, enc, meta_targets, cache, device)

    oof = np.zeros_like(y)
    oof_plain = np.zeros_like(y)
    tile_weights: np.ndarray | None = None
    fold_r2: list[float] = []
    for k in range(cfg.train.folds):
        fold_dir = out / "phase2" / f"fold{k}"
        tr, va = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        console.print(
            f"[bold]phase 2[/] fold {k + 1}/{cfg.train.folds}: {len(tr)} train, {len(va)} val"
        )
        seed_everything(cfg.train.seed + 100 + k)
        model = Phase2Model(_phase2_config(cfg, _target_scale(y[tr])))
        arrays: dict[str, np.ndarray] = {"targets": y}
        if meta is not None:
            arrays["meta"] = meta  # out-of-fold *predicted* metadata, never ground truth
        system = Phase2System(model, _optim(cfg, "phase2"), loss_kind=cfg.phase2.loss)
        _fit_fold(
            model,
            system,
            fold_dir,
            paths,
            arrays,
            tr,
            va,
            cache,
            cfg,
            "phase2",
            monitor="val_r2",
            mode="max",
            seed=cfg.train.seed + k,
        )
        va_paths = [paths[i] for i in va]
        views = _predict_views(
            model, va_paths, cache, _subset(arrays, va), cfg, _phase2_call, True, device
        )
        oof[va] = _mean_views(views)["targets"]
        oof_plain[va] = views[0]["targets"]  # the identity view alone: the no-TTA ablation
        if "tile_weights" in views[0]:
            # Identity view only: flips permute the tiles, so their weights cannot be averaged.
            if tile_weights is None:
                tile_weights = np.zeros((len(y), views[0]["tile_weights"].shape[1]), np.float32)
            tile_weights[va] = views[0]["tile_weights"]
        fold_r2.append(weighted_r2(y[va], oof[va]))
        console.print(f"  fold {k} OOF weighted R² = {fold_r2[-1]:.4f}")

    r2 = weighted_r2(y, oof)
    r2_plain = weighted_r2(y, oof_plain)
    per_target = per_target_r2(y, oof)
    _write_oof(out, wide, folds, oof, meta, enc)
    metrics = {
        "oof_weighted_r2": r2,
        "oof_weighted_r2_no_tta": r2_plain,
        "per_target_r2": per_target,
        "fold_weighted_r2": fold_r2,
        "n_images": len(wide),
        "folds": cfg.train.folds,
        "seconds": time.perf_counter() - start,
    }
    write_json(out / "metrics.json", metrics)
    from fieldvision.report.biomass import write_biomass_report

    write_biomass_report(
        out, wide, folds, oof, metrics, cache, paths, tile_weights, tuple(cfg.phase2.tile_grid)
    )
    write_json(
        out / "run.json", {"kind": RUN_KIND, "fingerprint": cfg.fingerprint(), "status": "complete"}
    )
    return TrainResult(out, r2, r2_plain, per_target, fold_r2, metrics["seconds"])


def _phase2_call(model: torch.nn.Module, batch: dict) -> dict[str, torch.Tensor]:
    outputs = model(batch["image"], batch.get("meta"))
    keep = {"targets": outputs["targets"]}
    if outputs.get("tile_weights") is not None:
        keep["tile_weights"] = outputs["tile_weights"]
    return keep


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
    write_csv(out / "oof.csv", _to_submission(wide["image_id"].to_numpy(), oof))


def _to_submission(image_ids: Sequence[str], preds: np.ndarray) -> pd.DataFrame:
    rows = [
        (f"{image_id}__{name}", float(preds[i, j]))
        for i, image_id in enumerate(image_ids)
        for j, name in enumerate(TARGETS)
    ]
    return pd.DataFrame(rows, columns=["sample_id", "target"])


# --------------------------------------------------------------------------- predict / evaluate


def predict(run_dir: Path, data_dir: Path, out_csv: Path, tta: bool | None = None) -> pd.DataFrame:
    """Fold-ensemble prediction for every row of ``test.csv`` in Kaggle submission format.

    Args:
        run_dir: A finished run directory.
        data_dir: Kaggle-layout directory with ``test.csv`` and ``test/``.
        out_csv: Submission path (``sample_id,target``), written atomically.
        tta: Override the run's TTA setting.

    Returns:
        The submission frame, rows in ``test.csv`` order.
    """
    run_dir, data_dir = Path(run_dir), Path(data_dir)
    cfg, enc, _ = load_run(run_dir)
    tta = cfg.train.tta if tta is None else tta
    test = read_test_table(data_dir / "test.csv")
    check_images_exist(test, data_dir, "test")
    images = test.drop_duplicates("image_id")[["image_id", "image_path"]].reset_index(drop=True)
    paths = [data_dir / p for p in images["image_path"]]
    device = resolve_device(cfg.train.device)
    cache = _cache_for(cfg, data_dir)
    cache.warm(paths, progress=cfg.train.progress)
    n_folds = cfg.train.folds

    meta = None
    if cfg.needs_phase1:
        acc = np.zeros((len(paths), len(FILM_KEYS)), np.float32)
        for k in range(n_folds):
            model = _load_model(
                Phase1Model(_phase1_config(cfg, enc)),
                run_dir / "phase1" / f"fold{k}" / "model.safetensors",
                run_dir,
            )
            outs = _predict_arrays(
                model, paths, cache, {}, cfg, lambda m, b: m(b["image"]), tta, device
            )
            acc += _film_meta(outs)
        meta = acc / n_folds

    preds = np.zeros((len(paths), len(TARGETS)), np.float32)
    arrays = {"meta": meta} if meta is not None else {}
    for k in range(n_folds):
        scale = [1.0] * len(TARGETS)  # overwritten by the checkpoint's target_scale buffer
        model = _load_model(
            Phase2Model(_phase2_config(cfg, scale)),
            run_dir / "phase2" / f"fold{k}" / "model.safetensors",
            run_dir,
        )
        preds += _predict_arrays(model, paths, cache, arrays, cfg, _phase2_call, tta, device)[
            "targets"
        ]
    preds = np.clip(preds / n_folds, 0.0, None)

    by_image = dict(zip(images["image_id"], preds, strict=True))
    index = {name: j for j, name in enumerate(TARGETS)}
    values = [
        float(by_image[i][index[t]])
        for i, t in zip(test["image_id"], test["target_name"], strict=True)
    ]
    submission = pd.DataFrame({"sample_id": test["sample_id"].to_numpy(), "target": values})
    write_csv(out_csv, submission)
    return submission


def evaluate(pred_csv: Path, truth_csv: Path) -> EvalResult:
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
    long_truth = to_long(truth)
    try:
        score = weighted_r2_long(long_truth, pred)
    except DataError as exc:
        raise DataError(f"{pred_csv} vs {truth_csv}: {exc}") from None
    # Wide (N, 5) arrays in TARGETS order for the per-target R².
    merged = long_truth.merge(pred, on="sample_id", suffixes=("", "_pred"))
    merged["image_id"] = merged["sample_id"].str.rsplit("__", n=1).str[0]
    wide_true = merged.pivot(index="image_id", columns="target_name", values="target")[
        list(TARGETS)
    ]
    wide_pred = merged.pivot(index="image_id", columns="target_name", values="target_pred")[
        list(TARGETS)
    ]
    per_target = per_target_r2(wide_true.to_numpy(), wide_pred.to_numpy())
    return EvalResult(score, per_target, len(truth))
