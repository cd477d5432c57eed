"""Validated inputs of the biomass pipeline: tables, images, folds, loaders.

Everything here runs *before* a run directory is created: the tables are validated, every
image is decoded and cleaned once (into the image cache, outside ``--out``), and the folds
are assigned, so a bad input fails with a clear error and leaves no run behind.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from torch.utils.data import DataLoader

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
    """

    wide: pd.DataFrame
    paths: list[Path]
    cache: ImageCache
    folds: np.ndarray
    targets: np.ndarray
    fingerprint: dict[str, str | int]


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
        DataError: Bad table, missing/corrupt/oversized image, too few sampling dates.
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
    paths = [data_dir / p for p in wide["image_path"]]
    cache = image_cache(cfg, data_dir)
    cache.warm(paths, progress=cfg.train.progress)  # decodes every image: fails here, not later
    folds = grouped_folds(
        wide["sampling_date"].astype(str).to_numpy(), cfg.train.folds, cfg.train.seed
    )
    targets = wide[list(TARGETS)].to_numpy(np.float32)
    return TrainingData(
        wide, paths, cache, folds, targets, _fingerprint(data_dir / "train.csv", paths)
    )


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
    """The dataset of `paths` with per-image `arrays` (augmented when `train`)."""
    return BiomassDataset(
        list(paths), cache, arrays=dict(arrays), augment=train and cfg.data.augment, seed=seed
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
