"""Reading MIL datasets: a folder per class, or a CSV ``image,label[,group,mask,boxes]``.

* **folders**: ``root/<class>/<image>`` (the folder name is the label);
* **csv**: a table with an image column and (for training/evaluation) a label column;
  optional ``group`` (images of one group never straddle folds: the two scans of one
  circuit board, the photos of one field), ``mask`` (a lesion-mask image) and ``boxes``
  (a box file, DeepPCB's ``x1 y1 x2 y2 type`` lines). Paths are relative to the CSV's
  folder and may not leave it.

Masks and boxes are only ever used to *measure* localisation, never to train.
"""

from __future__ import annotations

import os
from pathlib import Path

from fieldvision.data.checks import (
    IMAGE_EXTENSIONS,
    MAX_LISTED,
    check_cells,
    check_inside,
    check_unique,
    is_image,
    raise_missing,
    read_table,
    row_label,
)
from fieldvision.data.mil.samples import MILSamples
from fieldvision.errors import DataError

__all__ = ["read_class_folders", "read_mil_csv", "read_mil_data"]


def read_class_folders(root: str | os.PathLike[str]) -> MILSamples:
    """Read ``root/<class>/<image>``.

    Raises:
        DataError: `root` missing, no class folders, or a class folder without images.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: folder not found")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DataError(f"{root}: no class folders", hint="expected one sub-folder per class")
    paths, names, labels, empty = [], [], [], []
    for folder in folders:
        files = sorted(p for p in folder.iterdir() if is_image(p))
        if not files:
            empty.append(folder.name)
        for f in files:
            paths.append(f)
            names.append(f"{folder.name}/{f.name}")
            labels.append(folder.name)
    if empty:
        raise DataError(
            f"{root}: {len(empty)} class folder(s) contain no images: "
            + ", ".join(empty[:MAX_LISTED]),
            hint=f"remove them or add images ({', '.join(sorted(IMAGE_EXTENSIONS))})",
        )
    return MILSamples(
        tuple(paths), tuple(names), tuple(labels), None, None, None, tuple(names), str(root)
    )


def _optional_paths(
    frame, csv: Path, column: str | None, origins
) -> tuple[Path | None, ...] | None:
    """Paths of an optional column (empty cells allowed: no file for that image)."""
    if column is None or column not in frame.columns:
        return None
    values = [v.strip() for v in frame[column]]
    named = [(i, v) for i, v in enumerate(values) if v]
    check_inside(csv.parent, [v for _, v in named], [origins[i] for i, _ in named])
    out: list[Path | None] = [None if not v else csv.parent / v for v in values]
    missing = [(origins[i], p) for i, p in enumerate(out) if p is not None and not p.is_file()]
    if missing:
        raise_missing(f"{csv} ({column})", missing, len(named))
    return tuple(out)


def read_mil_csv(
    csv_path: str | os.PathLike[str],
    image_column: str = "image",
    label_column: str | None = "label",
    group_column: str | None = "group",
    mask_column: str | None = "mask",
    boxes_column: str | None = "boxes",
) -> MILSamples:
    """Read a CSV of images with labels (and optional groups, masks, box files).

    Args:
        csv_path: The table.
        image_column: Column of image paths (relative to the CSV's folder).
        label_column: Column of class names; None (or absent from the file) for an
            unlabelled list.
        group_column: Optional group column, used when present.
        mask_column: Optional lesion-mask column (empty cells: no mask).
        boxes_column: Optional box-file column (empty cells: no boxes).

    Raises:
        DataError: Missing file or columns, empty cells, duplicate names, names leaving the
            folder, missing images or annotation files.
    """
    path = Path(csv_path)
    frame = read_table(path, [image_column])
    label_column = label_column if label_column in frame.columns else None
    group_column = group_column if group_column in frame.columns else None
    required = [c for c in (image_column, label_column, group_column) if c]
    check_cells(frame, path, required)
    names = tuple(v.strip() for v in frame[image_column])
    origins = tuple(row_label(path, i) for i in range(len(frame)))
    if not names:
        raise DataError(f"{path}: no data rows (only a header)")
    check_unique(names, origins, str(path))
    check_inside(path.parent, names, origins)
    paths = tuple(path.parent / n for n in names)
    missing = [(o, p) for o, p in zip(origins, paths, strict=True) if not p.is_file()]
    if missing:
        raise_missing(str(path), missing, len(paths))
    labels = tuple(v.strip() for v in frame[label_column]) if label_column else None
    groups = tuple(v.strip() for v in frame[group_column]) if group_column else None
    masks = _optional_paths(frame, path, mask_column, origins)
    boxes = _optional_paths(frame, path, boxes_column, origins)
    return MILSamples(paths, names, labels, groups, masks, boxes, origins, str(path))


def read_mil_data(path: str | os.PathLike[str], **columns: str | None) -> MILSamples:
    """A CSV file, a folder with ``labels.csv``, a folder per class, or a flat image folder.

    Args:
        path: The dataset.
        **columns: Column names for `read_mil_csv`.

    Raises:
        DataError: Nothing readable at `path` (see the readers).
    """
    path = Path(path)
    if path.is_file():
        return read_mil_csv(path, **columns)
    if not path.is_dir():
        raise DataError(f"{path}: no such file or folder")
    if (path / "labels.csv").is_file():
        return read_mil_csv(path / "labels.csv", **columns)
    files = sorted(p for p in path.iterdir() if is_image(p))
    if files:  # flat folder: unlabelled images (prediction)
        names = tuple(p.name for p in files)
        return MILSamples(tuple(files), names, None, None, None, None, names, str(path))
    return read_class_folders(path)
