"""Kaggle Jaguar Re-ID layout: the pairs file and the whole dataset folder.

``train.csv`` (``filename, ground_truth`` and optionally ``camera``) over ``train/``
images, ``test.csv`` (``row_id, query_image, gallery_image``) over ``test/`` images, and
optionally ``test_truth.csv`` (identities, and optionally cameras, of the test images, for
evaluation). Kaggle's nested ``train/train/`` folders are found too. Column names are
arguments.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from fieldvision.data.checks import (
    MAX_LISTED,
    check_cells,
    check_inside,
    is_image,
    raise_missing,
    read_table,
    row_label,
)
from fieldvision.data.reid.readers import read_identity_csv
from fieldvision.data.reid.samples import KaggleReID, ReIDSamples
from fieldvision.errors import DataError


def _image_dir(root: Path, name: str) -> Path:
    """``root/name``, or Kaggle's nested ``root/name/name`` when images live there."""
    folder = root / name
    nested = folder / name
    if nested.is_dir() and not any(is_image(p) for p in folder.iterdir()):
        return nested
    return folder


def read_pairs(
    csv_path: str | os.PathLike[str],
    known_images: Iterable[str] | None = None,
    row_id_column: str = "row_id",
    query_column: str = "query_image",
    gallery_column: str = "gallery_image",
) -> pd.DataFrame:
    """Read a pairs file; columns are renamed to ``row_id, query_image, gallery_image``.

    Args:
        csv_path: The pairs table (e.g. Kaggle ``test.csv``).
        known_images: Image names that exist; a pair naming another image is an error.
        row_id_column: Column with the submission row id.
        query_column: Column with the first image of the pair.
        gallery_column: Column with the second image.

    Returns:
        The table with the three columns, image names stripped of surrounding spaces.

    Raises:
        DataError: Missing columns, empty cells, duplicate row ids or unknown images.
    """
    path = Path(csv_path)
    cols = [row_id_column, query_column, gallery_column]
    frame = read_table(path, cols)
    check_cells(frame, path, cols)
    frame = frame[cols].rename(
        columns={
            row_id_column: "row_id",
            query_column: "query_image",
            gallery_column: "gallery_image",
        }
    )
    frame = frame.assign(
        query_image=frame["query_image"].str.strip(),
        gallery_image=frame["gallery_image"].str.strip(),
    )
    dup = frame["row_id"].duplicated(keep=False).to_numpy()
    if dup.any():
        rows = ", ".join(row_label(path, int(i)) for i in np.flatnonzero(dup)[:MAX_LISTED])
        raise DataError(f"{path}: duplicate {row_id_column!r} values in {rows}")
    if known_images is not None:
        known = set(known_images)
        for col, name in (("query_image", query_column), ("gallery_image", gallery_column)):
            bad = np.flatnonzero(~frame[col].isin(known).to_numpy())
            if len(bad):
                shown = "; ".join(
                    f"{row_label(path, int(i))}: {frame[col].iat[int(i)]!r}"
                    for i in bad[:MAX_LISTED]
                )
                raise DataError(
                    f"{path}: {len(bad)} pair(s) name an unknown image in {name!r}: {shown}",
                    hint="every pair image must exist in the test image folder",
                )
    return frame


def _check_pair_names(pairs: pd.DataFrame, path: Path, image_dir: Path) -> None:
    """Refuse pair image names outside `image_dir`, naming the first row that uses one."""
    n = len(pairs)
    names = np.concatenate([pairs["query_image"].to_numpy(), pairs["gallery_image"].to_numpy()])
    rows = np.concatenate([np.arange(n), np.arange(n)])
    first_row = pd.Series(rows).groupby(names).min().sort_values(kind="stable")
    check_inside(
        image_dir,
        [str(name) for name in first_row.index],
        [row_label(path, int(i)) for i in first_row.to_numpy()],
    )


def read_kaggle(
    root: str | os.PathLike[str],
    train_csv: str = "train.csv",
    train_dir: str = "train",
    test_csv: str = "test.csv",
    test_dir: str = "test",
    truth_csv: str = "test_truth.csv",
    image_column: str = "filename",
    identity_column: str = "ground_truth",
    row_id_column: str = "row_id",
    query_column: str = "query_image",
    gallery_column: str = "gallery_image",
    require_test: bool = False,
    camera_column: str | None = "camera",
) -> KaggleReID:
    """Read the Kaggle Jaguar Re-ID layout (see the module docstring).

    Args:
        root: Dataset folder.
        train_csv: Training table (relative to `root`).
        train_dir: Training image folder (``train`` or Kaggle's ``train/train``).
        test_csv: Pairs table; optional unless `require_test`.
        test_dir: Test image folder.
        truth_csv: Optional identities of the test images (same column names as train).
        image_column: Image column of the train and truth tables.
        identity_column: Identity column of the train and truth tables.
        row_id_column: Pair table row-id column.
        query_column: Pair table first-image column.
        gallery_column: Pair table second-image column.
        require_test: Raise when the pairs file is missing.
        camera_column: Camera column of the train and truth tables, used where present
            (the test images get cameras from the truth table); None to ignore cameras.

    Raises:
        DataError: An image name outside its image folder, missing test images, test
            images without a truth row; see also `read_identity_csv` and `read_pairs`.
    """
    root = Path(root)
    train = read_identity_csv(
        root / train_csv,
        _image_dir(root, train_dir),
        image_column,
        identity_column,
        True,
        camera_column,
    )
    pairs_path = root / test_csv
    if not pairs_path.is_file():
        if require_test:
            raise DataError(f"{pairs_path}: file not found", hint="the pairs file is needed here")
        return KaggleReID(train, None, None, root)
    image_dir = _image_dir(root, test_dir)
    pairs = read_pairs(pairs_path, None, row_id_column, query_column, gallery_column)
    _check_pair_names(pairs, pairs_path, image_dir)
    names = sorted(set(pairs["query_image"]) | set(pairs["gallery_image"]))
    missing = [(f"{test_csv}", image_dir / n) for n in names if not (image_dir / n).is_file()]
    if missing:
        raise_missing(f"{pairs_path} (images in {image_dir})", missing, len(names))
    identities: tuple[str, ...] | None = None
    cameras: tuple[str, ...] | None = None
    truth_path = root / truth_csv
    if truth_csv and truth_path.is_file():
        truth = read_identity_csv(
            truth_path, image_dir, image_column, identity_column, False, camera_column
        )
        lookup = dict(zip(truth.names, truth.identities or (), strict=True))
        unknown = [n for n in names if n not in lookup]
        if unknown:
            raise DataError(
                f"{truth_path}: no identity for {len(unknown)} test image(s): "
                + ", ".join(unknown[:MAX_LISTED])
            )
        identities = tuple(lookup[n] for n in names)
        if truth.cameras is not None:
            camera_of = dict(zip(truth.names, truth.cameras, strict=True))
            cameras = tuple(camera_of[n] for n in names)
    test = ReIDSamples(
        tuple(image_dir / n for n in names),
        tuple(names),
        identities,
        tuple(names),
        str(pairs_path),
        cameras,
    )
    return KaggleReID(train, test, pairs, root)
