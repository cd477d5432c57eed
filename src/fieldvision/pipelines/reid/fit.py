"""Training a re-ID embedding network into a run directory (resumable).

A run directory (`fieldvision.runs.RunDir`, kind ``reid``) holds::

    run.json  config.yaml  metrics.json ("fit", "evaluate")   the common run format
    split.json         train / held-out image names and the validation protocol
    train/             Lightning state + model.safetensors (the best epoch's network)
    report.md + *.png  written by ``evaluate``

Every input is validated first (tables, every image decoded, the split, the P×K sampler
against the identities), so a bad input or config leaves no run behind.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import DataLoader

from fieldvision.console import console, progress_iter
from fieldvision.data.reid import (
    ReIDDataset,
    ReIDSamples,
    Split,
    check_images,
    closed_set_queries,
    closed_set_split,
    open_set_split,
)
from fieldvision.data.samplers import PKSampler
from fieldvision.data.transforms import EvalTransform, TrainTransform
from fieldvision.errors import ConfigError
from fieldvision.io import write_json
from fieldvision.models.reid import ReIDModel
from fieldvision.pipelines.reid.config import ReIDDataSection, ReIDPipelineConfig
from fieldvision.pipelines.reid.data import image_reader, load_data
from fieldvision.pipelines.reid.embed import RUN_KIND
from fieldvision.runs import RunDir
from fieldvision.seeding import seed_everything, torch_generator
from fieldvision.training.fit import FitTask, fit_splits
from fieldvision.training.fit import Split as FitSplit

__all__ = ["SPLIT_FILE", "fit"]

SPLIT_FILE = "split.json"


def _use_mask(cfg: ReIDDataSection, has_alpha: np.ndarray | None) -> bool:
    if cfg.use_mask == "yes":
        return True
    if cfg.use_mask == "no":
        return False
    return bool(has_alpha is not None and has_alpha.any())


def _validation_items(samples: ReIDSamples, split: Split) -> tuple[np.ndarray, np.ndarray, str]:
    """Items (indices into samples) and query mask of the validation retrieval task.

    closed: every image is in the gallery, held-out images are the queries.
    open: only held-out identities' images; each one queries the others.
    """
    ids = samples.identities or ()
    if split.protocol == "closed":
        items = np.arange(len(samples))
        qmask = np.zeros(len(samples), bool)
        qmask[split.heldout] = True
        ok, report = closed_set_queries(ids)
        return items, qmask & ok, report.message
    items = np.asarray(split.heldout)
    ok, report = closed_set_queries([ids[i] for i in items])
    return items, ok, report.message


@dataclass
class _Plan:
    """Everything `fit` validated before it created the run directory."""

    samples: ReIDSamples
    split: Split
    with_mask: bool
    labels: np.ndarray
    classes: list[str]
    items: np.ndarray
    qmask: np.ndarray
    warning: str
    fingerprint: dict[str, Any]


def _plan(data: str | os.PathLike[str], cfg: ReIDPipelineConfig) -> _Plan:
    d = load_data(data, cfg.data)
    samples = d.samples
    reader = image_reader(cfg.data)
    if cfg.data.verify_images:  # decode everything once: a bad file fails here, not mid-epoch
        wrap = (
            (lambda it: progress_iter(it, "checking images", len(samples)))
            if cfg.train.progress
            else None
        )
        has_alpha = check_images(samples, reader=reader, progress=wrap)
    else:  # a sample is enough to know whether the images carry masks
        has_alpha = check_images(samples.subset(range(min(16, len(samples)))), reader=reader)
    ids = samples.identities or ()
    split_fn = closed_set_split if cfg.train.protocol == "closed" else open_set_split
    split = split_fn(ids, cfg.train.holdout_fraction, cfg.seed)
    labels, classes = samples.subset(split.train).label_ids()
    if cfg.train.p > len(classes):
        raise ConfigError(
            f"train.p={cfg.train.p} identities per batch, but the training split has only "
            f"{len(classes)} identities",
            hint=f"use --set train.p={len(classes)} or fewer",
        )
    PKSampler(labels, cfg.train.p, cfg.train.k, seed=cfg.seed)  # validates p, k against labels
    items, qmask, warning = _validation_items(samples, split)
    fingerprint = {
        "source": Path(samples.source).name,
        "images": len(samples),
        "identities": len(set(ids)),
        "names": _digest(samples.names, ids),
    }
    return _Plan(
        samples,
        split,
        _use_mask(cfg.data, has_alpha),
        labels,
        classes,
        items,
        qmask,
        warning,
        fingerprint,
    )


def _digest(names: tuple[str, ...], ids: tuple[str, ...] | tuple[()]) -> str:
    import hashlib

    blob = "\n".join(f"{n}\t{i}" for n, i in zip(names, ids, strict=False)).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def fit(
    data: str | os.PathLike[str],
    run: str | os.PathLike[str],
    cfg: ReIDPipelineConfig,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Train a re-ID model on `data` into the run directory `run` (resumable).

    Args:
        data: Dataset (Kaggle folder, identity folders or CSV).
        run: Run directory (created, resumed, or a failed run replaced).
        cfg: Pipeline config.
        progress: Override ``train.progress``.

    Returns:
        Summary: best validation mAP, epochs, identities, images, protocol.

    Raises:
        DataError / ConfigError: Bad input data or config (nothing is written).
        RunError: `run` holds a different run.
    """
    if progress is not None:
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"progress": progress})})
    seed_everything(cfg.seed)
    plan = _plan(data, cfg)
    run_dir = RunDir.start(run, RUN_KIND, cfg, plan.fingerprint, data=data)
    with run_dir.running():
        summary = _fit(run_dir, cfg, plan)
    return summary


def _fit(run_dir: RunDir, cfg: ReIDPipelineConfig, plan: _Plan) -> dict[str, Any]:
    samples, split, tcfg = plan.samples, plan.split, cfg.train
    write_json(
        run_dir.path / SPLIT_FILE,
        {
            "protocol": split.protocol,
            "with_mask": plan.with_mask,
            "train": [samples.names[i] for i in split.train],
            "heldout": [samples.names[i] for i in split.heldout],
            "train_identities": list(plan.classes),
        },
    )
    if plan.warning:
        console.print(f"[yellow]warning:[/] {plan.warning}")
    size = tuple(cfg.data.image_size)
    reader = image_reader(cfg.data)

    def build(_: FitSplit) -> FitTask:
        transform = TrainTransform(
            size=size,  # type: ignore[arg-type]
            crop_scale=tcfg.crop_scale,
            flip_p=tcfg.flip_p,
            brightness=tcfg.brightness,
            saturation=tcfg.saturation,
            erase_p=tcfg.erase_p,
            background_p=tcfg.background_p if plan.with_mask else 0.0,
        )
        train_samples = samples.subset(split.train)
        train_ds = ReIDDataset(
            train_samples.paths,
            plan.labels,
            transform,
            with_mask=plan.with_mask,
            seed=cfg.seed,
            reader=reader,
        )
        sampler = PKSampler(plan.labels, tcfg.p, tcfg.k, seed=cfg.seed)
        train_loader = DataLoader(
            train_ds,
            batch_sampler=sampler,
            num_workers=tcfg.num_workers,
            generator=torch_generator(cfg.seed),
        )
        all_labels, _ = samples.label_ids()
        val_ds = ReIDDataset(
            [samples.paths[i] for i in plan.items],
            all_labels[plan.items],
            EvalTransform(size),  # type: ignore[arg-type]
            reader=reader,
        )
        val_loader = DataLoader(
            val_ds, batch_size=cfg.inference.batch_size, num_workers=tcfg.num_workers
        )
        model = ReIDModel(cfg.model)
        from fieldvision.training.reid import ReIDSystem

        system = ReIDSystem(
            model,
            num_classes=len(plan.classes),
            loss=cfg.model,
            mixup_alpha=tcfg.mixup_alpha,
            mixup_prob=tcfg.mixup_prob,
            optim=tcfg,
            val_query_mask=plan.qmask,
            seed=cfg.seed,
        )
        return FitTask(model, system, train_loader, val_loader)

    only = FitSplit("train", np.asarray(split.train), np.asarray(plan.items))
    (fitted,) = fit_splits(run_dir.path, [only], build, tcfg, tcfg, seed=cfg.seed, label="reid")
    previous = run_dir.read_metrics().get("fit", {})
    result = fitted.result
    summary = {
        "best_val_map": result.best_score if result else previous.get("best_val_map"),
        "epochs_run": result.epochs_run if result else previous.get("epochs_run"),
        "stopped_early": result.stopped_early if result else previous.get("stopped_early"),
        "resumed": result.resumed if result else True,
        "protocol": split.protocol,
        "n_identities": len(set(samples.identities or ())),
        "n_train_identities": len(plan.classes),
        "n_train_images": len(split.train),
        "n_heldout_images": len(split.heldout),
        "n_val_queries": int(plan.qmask.sum()),
        "with_mask": plan.with_mask,
        "backbone": cfg.model.backbone,
    }
    run_dir.update_metrics("fit", summary)
    return summary
