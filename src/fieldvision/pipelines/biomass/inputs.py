"""Validated inputs of the biomass pipeline: tables, images, folds, loaders.

Everything here runs *before* a run directory is created: the tables are validated, every
image is decoded and cleaned once (into the image cache, outside ``--out``), and the folds
are assigned, so a bad input fails with a clear error and leaves no run behind.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from torch.utils.data import DataLoader

from fieldvision.console import console
from fieldvision.data.biomass import (
    BiomassDataset,
    check_images_exist,
    read_test_table,
    read_train_table,
)
from fieldvision.data.cache import ImageCache
from fieldvision.data.loaders import batch_loader
from fieldvision.errors import DataError
from fieldvision.pipelines.biomass.config import BiomassConfig
from fieldvision.pipelines.biomass.noise import read_exclude_list
from fieldvision.schemas.biomass import TARGETS
from fieldvision.training.kfold import grouped_folds

__all__ = [
    "TestData",
    "TrainingData",
    "image_cache",
    "load_test_data",
    "load_training_data",
    "make_dataset",
    "make_loader",
]


@dataclass
class TrainingData:
    """A validated training set.

    Attributes:
        wide: One row per image (`read_train_table`).
        paths: Image files, aligned with `wide`.
        cache: Image cache holding every cleaned image.
        folds: int64[N] date-grouped fold ids.
        targets: float32[N, 5] grams in `TARGETS` order.
        fingerprint: What identifies these inputs in ``run.json``.
        excluded: Ids of the images ``data.exclude`` removed (not in `wide`).
    """

    wide: pd.DataFrame
    paths: list[Path]
    cache: ImageCache
    folds: np.ndarray
    targets: np.ndarray
    fingerprint: dict[str, str | int]
    excluded: list[str] = field(default_factory=list)


@dataclass
class TestData:
    """A validated test set: the long table, one row per image, and its files."""

    table: pd.DataFrame
    images: pd.DataFrame
    paths: list[Path]
    cache: ImageCache


def image_cache(cfg: BiomassConfig, data_dir: Path) -> ImageCache:
    """The cleaned-image cache of a data folder (``data.cache_dir`` overrides its place)."""
    root = Path(cfg.data.cache_dir) if cfg.data.cache_dir else data_dir / ".fieldvision_cache"
    # The in-memory layer keeps a small dataset's cleaned images decoded across epochs.
    return ImageCache(root, cfg.data.clean, memory_items=2048, max_pixels=cfg.data.max_image_pixels)


def _fingerprint(table: Path, paths: Sequence[Path]) -> dict[str, str | int]:
    digest = hashlib.sha256(table.read_bytes())
    for p in paths:
        digest.update(f"{p.name}:{p.stat().st_size};".encode())
    return {"table": table.name, "sha256": digest.hexdigest()[:16], "images": len(paths)}


def load_training_data(data_dir: str | Path, cfg: BiomassConfig) -> TrainingData:
    """Validate ``train.csv``, its images (decoded once) and the fold plan.

    Raises:
        DataError: Bad table, missing/corrupt/oversized image, too few sampling dates, a
            bad ``data.exclude`` file or one naming an image not in the table.
        ConfigError: More folds than sampling dates.
    """
    data_dir = Path(data_dir)
    wide = read_train_table(data_dir / "train.csv")
    check_images_exist(wide, data_dir, "train")
    n_dates = wide["sampling_date"].nunique()
    if n_dates < cfg.train.folds:
        raise DataError(
            f"{data_dir / 'train.csv'}: {n_dates} sampling dates cannot fill "
            f"{cfg.train.folds} date-grouped folds",
            hint="use --folds with a smaller number",
        )
    # Folds of the full table, so excluding images keeps every other image in its fold
    # (runs with and without an exclude list are compared on the same splits).
    folds = grouped_folds(
        wide["sampling_date"].astype(str).to_numpy(), cfg.train.folds, cfg.train.seed
    )
    excluded: list[str] = []
    if cfg.data.exclude is not None:  # validated before any image is decoded
        wide, folds, excluded = _apply_exclude(Path(cfg.data.exclude), wide, folds, cfg)
    paths = [data_dir / p for p in wide["image_path"]]
    cache = image_cache(cfg, data_dir)
    cache.warm(paths, progress=cfg.train.progress)  # decodes every image: fails here, not later
    targets = wide[list(TARGETS)].to_numpy(np.float32)
    fingerprint = _fingerprint(data_dir / "train.csv", paths)
    if cfg.data.exclude is not None:
        blob = "\n".join(sorted(excluded)).encode()
        fingerprint["excluded"] = hashlib.sha256(blob).hexdigest()[:16]
    return TrainingData(wide, paths, cache, folds, targets, fingerprint, excluded)


def _apply_exclude(
    path: Path, wide: pd.DataFrame, folds: np.ndarray, cfg: BiomassConfig
) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """Drop the rows the exclude file names; every fold must keep an image."""
    drop = read_exclude_list(path, wide)
    excluded = wide["image_id"].astype(str)[drop].tolist()
    keep = ~drop
    for k in range(cfg.train.folds):
        if not np.any(keep & (folds == k)):
            raise DataError(
                f"{path}: excluding {len(excluded)} images leaves fold {k} without images",
                hint="exclude fewer images, or use fewer --folds",
            )
    console.print(
        f"excluded {len(excluded)} images listed in {path} from training and the OOF score"
    )
    return wide[keep].reset_index(drop=True), folds[keep], excluded


def load_test_data(data_dir: str | Path, cfg: BiomassConfig) -> TestData:
    """Validate ``test.csv`` and its images (decoded once).

    Raises:
        DataError: Bad table or missing/corrupt/oversized image.
    """
    data_dir = Path(data_dir)
    table = read_test_table(data_dir / "test.csv")
    check_images_exist(table, data_dir, "test")
    images = table.drop_duplicates("image_id")[["image_id", "image_path"]].reset_index(drop=True)
    paths = [data_dir / p for p in images["image_path"]]
    cache = image_cache(cfg, data_dir)
    cache.warm(paths, progress=cfg.train.progress)
    return TestData(table, images, paths, cache)


def make_dataset(
    paths: Sequence[Path],
    cache: ImageCache,
    arrays: Mapping[str, np.ndarray],
    cfg: BiomassConfig,
    *,
    train: bool = False,
    seed: int = 0,
) -> BiomassDataset:
    """The dataset of `paths` with per-image `arrays` (augmented when `train`).

    Artifact augmentation (``data.artifact_augment``) is a training-only option: validation,
    OOF and test datasets (``train=False``) never get pasted artifacts.
    """
    return BiomassDataset(
        list(paths),
        cache,
        arrays=dict(arrays),
        augment=train and cfg.data.augment,
        seed=seed,
        artifact_p=cfg.data.artifact_augment if train else 0.0,
        artifact_stamp=cfg.data.artifact_stamp,
        artifact_dots=cfg.data.artifact_dots,
    )


def make_loader(
    paths: Sequence[Path],
    cache: ImageCache,
    arrays: Mapping[str, np.ndarray],
    cfg: BiomassConfig,
    *,
    train: bool,
    seed: int = 0,
) -> DataLoader:
    """A training (shuffled, seeded) or validation DataLoader."""
    dataset = make_dataset(paths, cache, arrays, cfg, train=train, seed=seed)
    return batch_loader(dataset, cfg.data.batch_size, train=train,
                        num_workers=cfg.data.num_workers, seed=seed)  # fmt: skip
