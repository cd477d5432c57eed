"""Validated inputs of the MIL pipeline: samples, classes, bags (decoded once), splits.

Everything here runs before a run directory exists, so a bad input (an empty class folder,
a single class, an unreadable, huge or too-small image, a missing mask) fails with a clear
error and leaves nothing behind.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fieldvision.console import progress_iter
from fieldvision.data.mil import BagSpec, BagStore, MILSamples, read_mil_data
from fieldvision.errors import DataError
from fieldvision.pipelines.mil.config import MILConfig
from fieldvision.training.fit import Split, kfold_splits
from fieldvision.training.kfold import grouped_folds

__all__ = ["MILTrainingData", "bag_spec", "class_weights", "load_training_data", "read_samples"]


def bag_spec(cfg: MILConfig) -> BagSpec:
    """How this config turns images into bags."""
    d = cfg.data
    return BagSpec(
        grid=tuple(d.grid),  # type: ignore[arg-type]
        tile_size=cfg.expert.tile_size,
        scout_size=tuple(cfg.scouter.input_size),  # type: ignore[arg-type]
        overlap=d.overlap,
        input_size=None if d.input_size is None else tuple(d.input_size),  # type: ignore[arg-type]
        min_tile_px=d.min_tile_px,
    )


def read_samples(path: str | Path, cfg: MILConfig) -> MILSamples:
    """Read a MIL dataset with the configured column names."""
    d = cfg.data
    return read_mil_data(
        path,
        image_column=d.image_column,
        label_column=d.label_column,
        group_column=d.group_column,
        mask_column=d.mask_column,
        boxes_column=d.boxes_column,
    )


@dataclass
class MILTrainingData:
    """A validated training set.

    Attributes:
        samples: The images.
        classes: Sorted class names.
        labels: int64[N] class indices.
        negative: Index of the negative (healthy) class, or None.
        store: Bags of every image, decoded and tiled.
        splits: Training splits (one grouped split, or k folds).
        fingerprint: What identifies these inputs in ``run.json``.
    """

    samples: MILSamples
    classes: tuple[str, ...]
    labels: np.ndarray
    negative: int | None
    store: BagStore
    splits: list[Split]
    fingerprint: dict[str, str | int]


def _splits(samples: MILSamples, labels: np.ndarray, cfg: MILConfig) -> list[Split]:
    groups = samples.groups if samples.groups is not None else samples.names
    n_folds = cfg.train.folds or max(2, round(1.0 / cfg.train.val_fraction))
    folds = grouped_folds(groups, n_folds, cfg.train.seed, stratify=labels)
    if cfg.train.folds:
        return kfold_splits(folds)
    return [Split("train", np.flatnonzero(folds != 0), np.flatnonzero(folds == 0))]


def class_weights(labels: np.ndarray, n_classes: int) -> list[float]:
    """Inverse-frequency class weights, normalised to mean 1 over the present classes."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / n_classes, 0.0)
    return (w / w[counts > 0].mean()).tolist()


def load_training_data(path: str | Path, cfg: MILConfig) -> MILTrainingData:
    """Validate a labelled MIL dataset, decode it into bags and plan the splits.

    Raises:
        DataError: Unreadable data, unlabelled images, a single class, a class with fewer
            than two images, a negative class that is not among the classes, bad images.
    """
    samples = read_samples(path, cfg)
    if samples.labels is None:
        raise DataError(f"{samples.source}: training needs labels (a label column or folders)")
    classes = samples.classes
    if len(classes) < 2:
        raise DataError(
            f"{samples.source}: only one class ({classes[0]!r}); MIL classification needs at "
            "least two (e.g. healthy and a disease)"
        )
    counts = {c: samples.labels.count(c) for c in classes}
    rare = [c for c, n in counts.items() if n < 2]
    if rare:
        raise DataError(f"{samples.source}: class(es) {', '.join(rare)} have a single image")
    negative = None
    if cfg.data.negative_class is not None:
        if cfg.data.negative_class not in classes:
            raise DataError(
                f"{samples.source}: data.negative_class={cfg.data.negative_class!r} is not one "
                f"of the classes ({', '.join(classes)})",
                hint="set data.negative_class to the class without evidence, or null",
            )
        negative = classes.index(cfg.data.negative_class)
    labels = samples.label_ids(classes)
    store = BagStore(samples, bag_spec(cfg), max_pixels=cfg.data.max_image_pixels)
    wrap = (
        (lambda it: progress_iter(it, "tiling images", len(samples)))
        if cfg.train.progress
        else None
    )
    store.prepare(wrap)
    splits = _splits(samples, labels, cfg)
    digest = hashlib.sha256()
    for name, lab in zip(samples.names, samples.labels, strict=True):
        digest.update(f"{name}\t{lab};".encode())
    fingerprint = {
        "source": Path(samples.source).name,
        "images": len(samples),
        "sha256": digest.hexdigest()[:16],
    }
    return MILTrainingData(samples, classes, labels, negative, store, splits, fingerprint)
