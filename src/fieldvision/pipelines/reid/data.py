"""Reading a re-ID dataset in any supported layout, and writing the synthetic one."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fieldvision.data.images import read_rgba
from fieldvision.data.reid import (
    KaggleReID,
    ReIDSamples,
    detect_layout,
    read_identity_csv,
    read_identity_folders,
    read_kaggle,
)
from fieldvision.errors import DataError
from fieldvision.pipelines.reid.config import ReIDDataSection

__all__ = ["ReIDData", "image_reader", "load_data", "synth"]


@dataclass(frozen=True)
class ReIDData:
    """Labelled training images, plus the Kaggle test side when the layout has one."""

    samples: ReIDSamples
    kaggle: KaggleReID | None
    layout: str


def image_reader(cfg: ReIDDataSection) -> Callable[[Path], np.ndarray]:
    """The RGBA reader with the configured decoded-pixel bound."""
    return functools.partial(read_rgba, max_pixels=cfg.max_image_pixels)


def load_data(
    data: str | os.PathLike[str], cfg: ReIDDataSection, require_test: bool = False
) -> ReIDData:
    """Read a dataset in the configured (or detected) layout.

    Raises:
        DataError: See the readers in `fieldvision.data.reid`.
    """
    path = Path(data)
    layout = detect_layout(path, cfg.train_csv) if cfg.layout == "auto" else cfg.layout
    if layout == "kaggle":
        kag = read_kaggle(
            path,
            cfg.train_csv,
            cfg.train_dir,
            cfg.test_csv,
            cfg.test_dir,
            cfg.truth_csv,
            cfg.image_column,
            cfg.identity_column,
            cfg.row_id_column,
            cfg.query_column,
            cfg.gallery_column,
            require_test=require_test,
            camera_column=cfg.camera_column,
        )
        return ReIDData(kag.train, kag, layout)
    if require_test:
        raise DataError(f"{path}: a pairs submission needs the Kaggle layout ({cfg.test_csv})")
    if layout == "csv":
        samples = read_identity_csv(
            path, None, cfg.image_column, cfg.identity_column, camera_column=cfg.camera_column
        )
        return ReIDData(samples, None, layout)
    return ReIDData(read_identity_folders(path), None, "folders")


def synth(
    out: str | os.PathLike[str],
    identities: int = 40,
    per_id: int = 12,
    seed: int = 0,
    size: int = 128,
    background_leak: float = 0.3,
) -> Any:
    """Write a synthetic rosette-coat dataset in the Kaggle layout (see `coats`)."""
    from fieldvision.data.synthetic.coats import generate_coat_dataset

    if identities < 2:
        raise DataError(f"--identities must be at least 2, got {identities}")
    if per_id < 2:
        raise DataError(f"--per-id must be at least 2, got {per_id}")
    return generate_coat_dataset(
        out, identities, per_id, seed, (size, size), background_leak=background_leak
    )
