"""Re-ID readers for identity folders, identity CSVs and image lists; layout and image checks.

Folder layouts: ``root/<identity>/<image>``, or ``root/<identity>/<camera>/<image>`` when
the images of every identity are sorted into one sub-folder per camera (or site). CSV
layout: an image column, an identity column and an optional camera column, with image
names relative to the CSV's folder or to ``image_root``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from fieldvision.data.checks import (
    IMAGE_EXTENSIONS,
    MAX_LISTED,
    check_cells,
    check_inside,
    check_unique,
    is_image,
    more_suffix,
    optional_column,
    raise_missing,
    read_table,
    row_label,
)
from fieldvision.data.images import read_rgba
from fieldvision.data.reid.samples import ReIDSamples
from fieldvision.errors import DataError


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if is_image(p))


def _listed(items: list[str]) -> str:
    return ", ".join(items[:MAX_LISTED]) + more_suffix(MAX_LISTED, len(items))


def read_identity_folders(root: str | os.PathLike[str]) -> ReIDSamples:
    """Read ``root/<identity>/<image>`` or ``root/<identity>/<camera>/<image>``.

    An identity folder either holds its images itself, or holds no images and one
    sub-folder of images per camera. Every identity folder must use the same layout.
    Flat folders give names ``identity/file`` and no cameras; camera sub-folders give
    names ``identity/camera/file`` and ``cameras`` = the sub-folder names. Sub-folders
    of a flat identity folder and hidden entries are ignored.

    Raises:
        DataError: `root` is missing or has no identity folders; an identity or camera
            folder holds no images; an identity folder holds both images and camera
            sub-folders of images; or some identity folders are flat and others are not.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: folder not found")
    folders = _visible_dirs(root)
    if not folders:
        raise DataError(
            f"{root}: no identity folders", hint="expected one sub-folder of images per identity"
        )
    # (identity, camera or "" in flat folders, image file) for every image, in sorted order.
    entries: list[tuple[str, str, Path]] = []
    empty: list[str] = []
    empty_cameras: list[str] = []
    mixed: list[str] = []
    flat: list[str] = []
    split: list[str] = []
    for folder in folders:
        files = _images_in(folder)
        by_camera = {sub.name: _images_in(sub) for sub in _visible_dirs(folder)}
        filled = [c for c, f in by_camera.items() if f]
        if files and filled:
            mixed.append(f"{folder} ({len(files)} image(s) and sub-folder(s) {_listed(filled)})")
        elif files:
            flat.append(folder.name)
            entries.extend((folder.name, "", f) for f in files)
        elif filled:
            split.append(folder.name)
            empty_cameras.extend(str(folder / c) for c, f in by_camera.items() if not f)
            for camera in filled:
                entries.extend((folder.name, camera, f) for f in by_camera[camera])
        else:
            empty.append(str(folder))
    if mixed:
        raise DataError(
            f"{root}: {len(mixed)} identity folder(s) hold both images and camera sub-folders "
            f"of images: {'; '.join(mixed[:MAX_LISTED])}{more_suffix(MAX_LISTED, len(mixed))}",
            hint="keep an identity's images either directly in its folder or in one "
            "sub-folder per camera, not both",
        )
    if empty or empty_cameras:
        kind, folders_ = ("identity", empty) if empty else ("camera", empty_cameras)
        raise DataError(
            f"{root}: {len(folders_)} {kind} folder(s) contain no images: {_listed(folders_)}",
            hint=f"remove them or add images ({', '.join(sorted(IMAGE_EXTENSIONS))})",
        )
    if flat and split:
        raise DataError(
            f"{root}: identity folders mix two layouts: {len(flat)} hold their images "
            f"directly ({_listed(flat)}) and {len(split)} hold camera sub-folders "
            f"({_listed(split)})",
            hint="use root/<identity>/<image> for every identity, or "
            "root/<identity>/<camera>/<image> for every identity",
        )
    names = tuple(
        f"{ident}/{camera}/{f.name}" if split else f"{ident}/{f.name}"
        for ident, camera, f in entries
    )
    return ReIDSamples(
        paths=tuple(f for _, _, f in entries),
        names=names,
        identities=tuple(ident for ident, _, _ in entries),
        origins=names,
        source=str(root),
        cameras=tuple(camera for _, camera, _ in entries) if split else None,
    )


def read_identity_csv(
    csv_path: str | os.PathLike[str],
    image_root: str | os.PathLike[str] | None = None,
    image_column: str = "filename",
    identity_column: str | None = "ground_truth",
    check_files: bool = True,
    camera_column: str | None = "camera",
) -> ReIDSamples:
    """Read a CSV of images, identities and (optionally) cameras.

    Args:
        csv_path: The table.
        image_root: Folder the image names are relative to (default: the CSV's folder).
        image_column: Column with image file names; every name must stay inside the
            image folder (no ``..`` out of it, no absolute paths).
        identity_column: Column with identities; None for an unlabelled list.
        check_files: Raise when listed images do not exist.
        camera_column: Column with camera (or site) ids, used when the table has it
            (then every row needs one); None to ignore cameras.

    Raises:
        DataError: Missing file or columns, empty cells, image names outside the image
            folder, duplicate names, missing images.
    """
    path = Path(csv_path)
    cols = [image_column] + ([identity_column] if identity_column else [])
    frame = read_table(path, cols)
    check_cells(frame, path, cols)
    root = Path(image_root) if image_root is not None else path.parent
    names = tuple(frame[image_column].str.strip())
    origins = tuple(row_label(path, i) for i in range(len(frame)))
    check_inside(root, names, origins)
    check_unique(names, origins, str(path))
    cameras = optional_column(frame, path, camera_column)
    paths = tuple(root / n for n in names)
    if check_files:
        missing = [(o, p) for o, p in zip(origins, paths, strict=True) if not p.is_file()]
        if missing:
            raise_missing(str(path), missing, len(paths))
    ids = tuple(frame[identity_column].str.strip()) if identity_column else None
    return ReIDSamples(paths, names, ids, origins, str(path), cameras)


def read_image_list(
    path: str | os.PathLike[str],
    image_column: str = "filename",
    identity_column: str = "ground_truth",
    image_root: str | os.PathLike[str] | None = None,
    camera_column: str | None = "camera",
) -> ReIDSamples:
    """Images to embed: identity folders (see `read_identity_folders`), a flat folder of
    images, or a CSV.

    For a CSV the identity and camera columns are used when present, else the images are
    unlabelled (have no cameras); image names are relative to `image_root` (default: the
    CSV's folder).

    Raises:
        DataError: Nothing readable at `path`; see `read_identity_csv` and
            `read_identity_folders`.
    """
    path = Path(path)
    if path.is_file():
        frame = read_table(path, [image_column])
        ident = identity_column if identity_column in frame.columns else None
        return read_identity_csv(path, image_root, image_column, ident, True, camera_column)
    if not path.is_dir():
        raise DataError(f"{path}: no such file or folder")
    files = _images_in(path)
    if files:
        names = tuple(p.name for p in files)
        return ReIDSamples(tuple(files), names, None, names, str(path))
    return read_identity_folders(path)


def detect_layout(path: str | os.PathLike[str], train_csv: str = "train.csv") -> str:
    """``"kaggle"`` (folder with `train_csv`), ``"csv"`` (a file) or ``"folders"``.

    Raises:
        DataError: `path` does not exist.
    """
    path = Path(path)
    if path.is_file():
        return "csv"
    if not path.is_dir():
        raise DataError(f"{path}: no such file or folder")
    return "kaggle" if (path / train_csv).is_file() else "folders"


def check_images(
    samples: ReIDSamples,
    reader: Callable[[Path], np.ndarray] = read_rgba,
    progress: Callable[[Iterable[int]], Iterable[int]] | None = None,
) -> np.ndarray:
    """Decode every image once; return which ones carry a real alpha mask.

    Args:
        samples: Images to check.
        reader: Image reader (raises `DataError` on unreadable files).
        progress: Optional wrapper for a progress bar over indices.

    Returns:
        bool[N]: True where the alpha channel is not fully opaque.

    Raises:
        DataError: An image is unreadable; names the sample's row and file.
    """
    has_alpha = np.zeros(len(samples), bool)
    indices: Iterable[int] = range(len(samples))
    if progress is not None:
        indices = progress(indices)
    for i in indices:
        try:
            img = reader(samples.paths[i])
        except DataError as exc:
            raise DataError(f"{samples.origins[i]}: {exc.message}", exc.hint) from None
        has_alpha[i] = img.ndim == 3 and img.shape[2] == 4 and bool((img[..., 3] < 255).any())
    return has_alpha
