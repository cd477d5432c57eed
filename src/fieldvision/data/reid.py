"""Re-identification data: readers, validation, splits, a torch Dataset and embedding files.

Three input layouts are read into one validated container, `ReIDSamples`:

* **folders**: ``root/<identity>/<image>`` (one folder per identity);
* **csv**: a table with an image column and an identity column (images relative to the
  CSV's folder or to ``image_root``);
* **kaggle** (Jaguar Re-ID): ``train.csv`` (``filename, ground_truth``), ``train/``
  images, ``test.csv`` (``row_id, query_image, gallery_image``) over ``test/`` images, and
  optionally ``test_truth.csv`` (identities of the test images, for evaluation).
  Kaggle's nested ``train/train/`` folders are found too. Column names are arguments.

Every problem a user can fix is a `DataError` naming the file and row (CSV rows are
counted from 1 after the header; the file line is given too). Identities with a single
image cannot be closed-set queries: `closed_set_queries` excludes them from the queries
(they stay in the gallery) and returns a `SingletonReport` for the caller to print.

Embedding files (`save_embeddings` / `load_embeddings`) are ``.npz`` archives with
``embeddings`` float32[N, D], ``names`` str[N], optional ``identities`` str[N] and ``meta``
(a JSON string).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, get_worker_info

from fieldvision.data.images import read_rgba
from fieldvision.data.transforms import to_tensor
from fieldvision.errors import DataError
from fieldvision.io import atomic_path
from fieldvision.seeding import numpy_rng, torch_generator

__all__ = [
    "IMAGE_EXTENSIONS",
    "EmbeddingSet",
    "KaggleReID",
    "ReIDDataset",
    "ReIDSamples",
    "SingletonReport",
    "Split",
    "check_images",
    "closed_set_queries",
    "closed_set_split",
    "detect_layout",
    "load_embeddings",
    "open_set_split",
    "read_identity_csv",
    "read_identity_folders",
    "read_image_list",
    "read_kaggle",
    "read_pairs",
    "save_embeddings",
]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})
_MAX_LISTED = 5  # problems listed in one error message


# --------------------------------------------------------------------------- containers


@dataclass(frozen=True)
class ReIDSamples:
    """A validated list of images with (optional) identities.

    Attributes:
        paths: Image files.
        names: Unique image names (the CSV value, or ``identity/file`` for folders).
        identities: Identity of each image, or None for unlabelled images.
        origins: Where each sample came from, for error messages (``"train.csv row 3"``).
        source: The file or folder the samples were read from.
    """

    paths: tuple[Path, ...]
    names: tuple[str, ...]
    identities: tuple[str, ...] | None
    origins: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def labelled(self) -> bool:
        """True when every sample has an identity."""
        return self.identities is not None

    def label_ids(self) -> tuple[np.ndarray, list[str]]:
        """Integer labels ``int64[N]`` and the sorted identity names they index.

        Raises:
            DataError: The samples have no identities.
        """
        if self.identities is None:
            raise DataError(f"{self.source}: images have no identities")
        classes = sorted(set(self.identities))
        lookup = {c: i for i, c in enumerate(classes)}
        return np.array([lookup[i] for i in self.identities], np.int64), classes

    def subset(self, indices: Sequence[int] | np.ndarray) -> ReIDSamples:
        """The samples at `indices` (in that order)."""
        idx = [int(i) for i in indices]
        return ReIDSamples(
            paths=tuple(self.paths[i] for i in idx),
            names=tuple(self.names[i] for i in idx),
            identities=None if self.identities is None else tuple(self.identities[i] for i in idx),
            origins=tuple(self.origins[i] for i in idx),
            source=self.source,
        )

    @staticmethod
    def concat(parts: Sequence[ReIDSamples], source: str) -> ReIDSamples:
        """Concatenate sample lists (names must stay unique)."""
        ids = (
            None
            if any(p.identities is None for p in parts)
            else sum(
                (p.identities for p in parts),
                (),  # type: ignore[misc]
            )
        )
        out = ReIDSamples(
            paths=sum((p.paths for p in parts), ()),
            names=sum((p.names for p in parts), ()),
            identities=ids,
            origins=sum((p.origins for p in parts), ()),
            source=source,
        )
        _check_unique(out.names, out.origins, source)
        return out


@dataclass(frozen=True)
class KaggleReID:
    """The Kaggle Jaguar Re-ID layout.

    Attributes:
        train: Labelled training images.
        test: Images referenced by the pairs file (labelled when a truth file exists), or None.
        pairs: ``row_id, query_image, gallery_image`` table (renamed to these columns), or None.
        root: Dataset folder.
    """

    train: ReIDSamples
    test: ReIDSamples | None
    pairs: pd.DataFrame | None
    root: Path


@dataclass(frozen=True)
class SingletonReport:
    """Identities that have a single image: they cannot be closed-set queries."""

    identities: tuple[str, ...]
    n_queries: int
    n_excluded: int

    @property
    def message(self) -> str:
        """A one-paragraph warning for the user ('' when there is nothing to say)."""
        if not self.identities:
            return ""
        shown = ", ".join(self.identities[:_MAX_LISTED])
        more = (
            ""
            if len(self.identities) <= _MAX_LISTED
            else f" and {len(self.identities) - _MAX_LISTED} more"
        )
        return (
            f"{len(self.identities)} identit{'y has' if len(self.identities) == 1 else 'ies have'} "
            f"a single image ({shown}{more}): such an image has no other image of its animal to "
            "find, so it is excluded from the queries and kept in the gallery"
        )


@dataclass(frozen=True)
class Split:
    """Indices of a train / held-out split (into the samples it was made from)."""

    train: np.ndarray
    heldout: np.ndarray
    protocol: str  # "closed" (held-out images) or "open" (held-out identities)


@dataclass(frozen=True)
class EmbeddingSet:
    """Embeddings with their image names (and identities when known).

    Attributes:
        embeddings: float32[N, D], L2-normalised rows.
        names: Image names, unique.
        identities: Identities or None.
        meta: Free-form JSON-able metadata (model, tta, ...).
    """

    embeddings: np.ndarray
    names: tuple[str, ...]
    identities: tuple[str, ...] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def dim(self) -> int:
        """Embedding size D."""
        return int(self.embeddings.shape[1])

    def index_of(self) -> dict[str, int]:
        """Map image name -> row."""
        return {n: i for i, n in enumerate(self.names)}


# --------------------------------------------------------------------------- readers


def _is_image(path: Path) -> bool:
    return (
        path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")
    )


def _check_unique(names: Sequence[str], origins: Sequence[str], source: str) -> None:
    counts = Counter(names)
    dups = [n for n, c in counts.items() if c > 1]
    if not dups:
        return
    details = []
    for name in dups[:_MAX_LISTED]:
        where = [o for n, o in zip(names, origins, strict=True) if n == name]
        details.append(f"{name!r} ({', '.join(where)})")
    raise DataError(
        f"{source}: {len(dups)} duplicate image name(s): " + "; ".join(details),
        hint="every image must be listed once",
    )


def _raise_missing(source: str, missing: list[tuple[str, Path]], total: int) -> None:
    shown = "; ".join(f"{o}: {p}" for o, p in missing[:_MAX_LISTED])
    more = "" if len(missing) <= _MAX_LISTED else f" (and {len(missing) - _MAX_LISTED} more)"
    raise DataError(f"{source}: {len(missing)} of {total} images not found: {shown}{more}")


def read_identity_folders(root: str | os.PathLike[str]) -> ReIDSamples:
    """Read ``root/<identity>/<image>``.

    Raises:
        DataError: `root` is missing, has no identity folders, or an identity folder holds
            no images.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: folder not found")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DataError(
            f"{root}: no identity folders", hint="expected one sub-folder of images per identity"
        )
    paths: list[Path] = []
    names: list[str] = []
    ids: list[str] = []
    empty: list[str] = []
    for folder in folders:
        files = sorted(p for p in folder.iterdir() if _is_image(p))
        if not files:
            empty.append(str(folder))
            continue
        for f in files:
            paths.append(f)
            names.append(f"{folder.name}/{f.name}")
            ids.append(folder.name)
    if empty:
        shown = ", ".join(empty[:_MAX_LISTED])
        raise DataError(
            f"{root}: {len(empty)} identity folder(s) contain no images: {shown}",
            hint=f"remove them or add images ({', '.join(sorted(IMAGE_EXTENSIONS))})",
        )
    return ReIDSamples(tuple(paths), tuple(names), tuple(ids), tuple(names), str(root))


def _read_table(path: Path, required: Sequence[str]) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(repr(c) for c in missing)}; "
            f"found {', '.join(repr(c) for c in frame.columns)}",
            hint="set the column names in the config (data.image_column, data.identity_column)",
        )
    return frame


def _row(source: Path, i: int) -> str:
    return f"{source.name} row {i + 1} (line {i + 2})"


def _check_cells(frame: pd.DataFrame, path: Path, columns: Sequence[str]) -> None:
    for col in columns:
        values = frame[col].str.strip()
        blank = np.flatnonzero((values == "").to_numpy())
        if len(blank):
            rows = ", ".join(_row(path, int(i)) for i in blank[:_MAX_LISTED])
            raise DataError(f"{path}: empty {col!r} in {len(blank)} row(s): {rows}")


def read_identity_csv(
    csv_path: str | os.PathLike[str],
    image_root: str | os.PathLike[str] | None = None,
    image_column: str = "filename",
    identity_column: str | None = "ground_truth",
    check_files: bool = True,
) -> ReIDSamples:
    """Read a CSV of images and identities.

    Args:
        csv_path: The table.
        image_root: Folder the image names are relative to (default: the CSV's folder).
        image_column: Column with image file names.
        identity_column: Column with identities; None for an unlabelled list.
        check_files: Raise when listed images do not exist.

    Raises:
        DataError: Missing file or columns, empty cells, duplicate names, missing images.
    """
    path = Path(csv_path)
    cols = [image_column] + ([identity_column] if identity_column else [])
    frame = _read_table(path, cols)
    _check_cells(frame, path, cols)
    root = Path(image_root) if image_root is not None else path.parent
    names = tuple(frame[image_column].str.strip())
    origins = tuple(_row(path, i) for i in range(len(frame)))
    _check_unique(names, origins, str(path))
    paths = tuple(root / n for n in names)
    if check_files:
        missing = [(o, p) for o, p in zip(origins, paths, strict=True) if not p.is_file()]
        if missing:
            _raise_missing(str(path), missing, len(paths))
    ids = tuple(frame[identity_column].str.strip()) if identity_column else None
    return ReIDSamples(paths, names, ids, origins, str(path))


def read_image_list(
    path: str | os.PathLike[str],
    image_column: str = "filename",
    identity_column: str = "ground_truth",
    image_root: str | os.PathLike[str] | None = None,
) -> ReIDSamples:
    """Images to embed: a folder per identity, a flat folder of images, or a CSV.

    For a CSV the identity column is used when present, else the images are unlabelled;
    image names are relative to `image_root` (default: the CSV's folder).

    Raises:
        DataError: Nothing readable at `path`.
    """
    path = Path(path)
    if path.is_file():
        frame = _read_table(path, [image_column])
        ident = identity_column if identity_column in frame.columns else None
        return read_identity_csv(path, image_root, image_column, ident)
    if not path.is_dir():
        raise DataError(f"{path}: no such file or folder")
    files = sorted(p for p in path.iterdir() if _is_image(p))
    if files:
        names = tuple(p.name for p in files)
        return ReIDSamples(tuple(files), names, None, names, str(path))
    return read_identity_folders(path)


def _image_dir(root: Path, name: str) -> Path:
    """``root/name``, or Kaggle's nested ``root/name/name`` when images live there."""
    folder = root / name
    nested = folder / name
    if nested.is_dir() and not any(_is_image(p) for p in folder.iterdir()):
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

    Raises:
        DataError: Missing columns, empty cells, duplicate row ids or unknown images.
    """
    path = Path(csv_path)
    cols = [row_id_column, query_column, gallery_column]
    frame = _read_table(path, cols)
    _check_cells(frame, path, cols)
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
        rows = ", ".join(_row(path, int(i)) for i in np.flatnonzero(dup)[:_MAX_LISTED])
        raise DataError(f"{path}: duplicate {row_id_column!r} values in {rows}")
    if known_images is not None:
        known = set(known_images)
        for col, name in (("query_image", query_column), ("gallery_image", gallery_column)):
            bad = np.flatnonzero(~frame[col].isin(known).to_numpy())
            if len(bad):
                shown = "; ".join(
                    f"{_row(path, int(i))}: {frame[col].iat[int(i)]!r}" for i in bad[:_MAX_LISTED]
                )
                raise DataError(
                    f"{path}: {len(bad)} pair(s) name an unknown image in {name!r}: {shown}",
                    hint="every pair image must exist in the test image folder",
                )
    return frame


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

    Raises:
        DataError: See `read_identity_csv` and `read_pairs`.
    """
    root = Path(root)
    train = read_identity_csv(
        root / train_csv, _image_dir(root, train_dir), image_column, identity_column
    )
    pairs_path = root / test_csv
    if not pairs_path.is_file():
        if require_test:
            raise DataError(f"{pairs_path}: file not found", hint="the pairs file is needed here")
        return KaggleReID(train, None, None, root)
    image_dir = _image_dir(root, test_dir)
    pairs = read_pairs(pairs_path, None, row_id_column, query_column, gallery_column)
    names = sorted(set(pairs["query_image"]) | set(pairs["gallery_image"]))
    missing = [(f"{test_csv}", image_dir / n) for n in names if not (image_dir / n).is_file()]
    if missing:
        _raise_missing(f"{pairs_path} (images in {image_dir})", missing, len(names))
    identities: tuple[str, ...] | None = None
    truth_path = root / truth_csv
    if truth_csv and truth_path.is_file():
        truth = read_identity_csv(truth_path, image_dir, image_column, identity_column, False)
        lookup = dict(zip(truth.names, truth.identities or (), strict=True))
        unknown = [n for n in names if n not in lookup]
        if unknown:
            raise DataError(
                f"{truth_path}: no identity for {len(unknown)} test image(s): "
                + ", ".join(unknown[:_MAX_LISTED])
            )
        identities = tuple(lookup[n] for n in names)
    test = ReIDSamples(
        tuple(image_dir / n for n in names), tuple(names), identities, tuple(names), str(pairs_path)
    )
    return KaggleReID(train, test, pairs, root)


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


# --------------------------------------------------------------------------- queries, splits


def closed_set_queries(identities: Sequence[str]) -> tuple[np.ndarray, SingletonReport]:
    """Which images can be closed-set queries (their identity has another image).

    Returns:
        ``(bool[N] query mask, report of single-image identities)``.
    """
    counts = Counter(identities)
    mask = np.array([counts[i] > 1 for i in identities], bool)
    singles = tuple(sorted(i for i, c in counts.items() if c == 1))
    return mask, SingletonReport(singles, int(mask.sum()), int((~mask).sum()))


def closed_set_split(
    identities: Sequence[str], holdout_fraction: float = 0.25, seed: int = 0
) -> Split:
    """Hold out a fraction of each identity's images (stratified).

    Every identity with at least two images keeps at least one training image and holds
    out at least one; single-image identities stay in training.

    Raises:
        DataError: No identity has two images (nothing to hold out).
    """
    if not 0.0 < holdout_fraction < 1.0:
        raise DataError(f"holdout fraction must be in (0, 1), got {holdout_fraction}")
    ids = np.asarray(identities, dtype=object)
    rng = numpy_rng(seed, 101)
    train: list[int] = []
    held: list[int] = []
    for ident in sorted(set(identities)):
        members = rng.permutation(np.flatnonzero(ids == ident))
        n = len(members)
        n_hold = 0 if n < 2 else min(n - 1, max(1, round(n * holdout_fraction)))
        held.extend(members[:n_hold].tolist())
        train.extend(members[n_hold:].tolist())
    if not held:
        raise DataError("cannot make a closed-set split: no identity has two or more images")
    return Split(np.sort(np.array(train, np.int64)), np.sort(np.array(held, np.int64)), "closed")


def open_set_split(
    identities: Sequence[str], holdout_fraction: float = 0.25, seed: int = 0
) -> Split:
    """Hold out whole identities (those are never trained on).

    Held-out identities are drawn among those with at least two images (so they can be
    queries); at least two identities stay in training.

    Raises:
        DataError: Fewer than three identities, or none with two images to hold out.
    """
    if not 0.0 < holdout_fraction < 1.0:
        raise DataError(f"holdout fraction must be in (0, 1), got {holdout_fraction}")
    counts = Counter(identities)
    if len(counts) < 3:
        raise DataError(f"open-set split needs at least 3 identities, got {len(counts)}")
    eligible = sorted(i for i, c in counts.items() if c >= 2)
    if not eligible:
        raise DataError("open-set split: no identity has two or more images")
    n_hold = min(len(eligible), len(counts) - 2, max(1, round(len(counts) * holdout_fraction)))
    rng = numpy_rng(seed, 102)
    held_ids = set(rng.choice(np.array(eligible, dtype=object), size=n_hold, replace=False))
    is_held = np.array([i in held_ids for i in identities], bool)
    return Split(np.flatnonzero(~is_held), np.flatnonzero(is_held), "open")


# --------------------------------------------------------------------------- torch dataset


def _derive_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([p & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


class ReIDDataset(Dataset):
    """Images (and masks) as tensors for training and embedding.

    Items are dicts: ``image`` Tensor[3, H, W] float (after `transform`), ``mask``
    Tensor[1, H, W] (only when ``with_mask``), ``label`` int64 (-1 when unlabelled) and
    ``index`` int (position in this dataset).

    Randomness: `transform(img, mask, generator)` draws from a generator owned by the
    dataset: in the main process it is seeded by ``(seed, epoch)`` (`set_epoch`); in a
    worker process by the worker seed, which torch derives from the DataLoader's
    ``generator``, so runs are reproducible either way and no global RNG is used.

    Args:
        paths: Image files.
        labels: int64 labels or None.
        transform: ``(img, mask, generator) -> (img, mask)``; default: `to_tensor` only.
        with_mask: Return the alpha mask (all ones for images without alpha).
        seed: Base seed of the augmentation.
        reader: Image reader returning uint8[H, W, 4].
    """

    def __init__(
        self,
        paths: Sequence[Path],
        labels: Sequence[int] | np.ndarray | None = None,
        transform: Callable[..., tuple[torch.Tensor, torch.Tensor | None]] | None = None,
        with_mask: bool = False,
        seed: int = 0,
        reader: Callable[[Path], np.ndarray] = read_rgba,
    ) -> None:
        self.paths = list(paths)
        if labels is not None and len(labels) != len(self.paths):
            raise ValueError(f"{len(labels)} labels for {len(self.paths)} images")
        self.labels = None if labels is None else np.asarray(labels, np.int64)
        self.transform = transform
        self.with_mask = with_mask
        self.seed = int(seed)
        self.reader = reader
        self.epoch = 0
        self._generator: torch.Generator | None = None
        self._generator_key: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.paths)

    def set_epoch(self, epoch: int) -> None:
        """Re-seed the main-process augmentation generator for `epoch`."""
        self.epoch = int(epoch)
        self._generator = None

    def _rng(self) -> torch.Generator:
        info = get_worker_info()
        key = (self.seed, self.epoch) if info is None else (self.seed, int(info.seed), info.id)
        if self._generator is None or key != self._generator_key:
            self._generator = torch_generator(_derive_seed(*key))
            self._generator_key = key
        return self._generator

    def __getitem__(self, index: int) -> dict[str, Any]:
        rgba = self.reader(self.paths[index])
        img, mask = to_tensor(rgba)
        if mask is None and self.with_mask:
            mask = torch.ones((1, *img.shape[1:]))
        if self.transform is not None:
            img, mask = self.transform(img, mask, self._rng())
        item: dict[str, Any] = {
            "image": img,
            "label": torch.tensor(-1 if self.labels is None else int(self.labels[index])),
            "index": int(index),
        }
        if self.with_mask:
            item["mask"] = mask
        return item


# --------------------------------------------------------------------------- embeddings files


def save_embeddings(path: str | os.PathLike[str], emb: EmbeddingSet) -> Path:
    """Write an `EmbeddingSet` as ``.npz`` atomically."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {
        "embeddings": np.ascontiguousarray(emb.embeddings, np.float32),
        "names": np.array(emb.names, dtype=str),
        "meta": np.array(json.dumps(emb.meta, default=str)),
    }
    if emb.identities is not None:
        arrays["identities"] = np.array(emb.identities, dtype=str)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def load_embeddings(path: str | os.PathLike[str]) -> EmbeddingSet:
    """Read and validate an embeddings ``.npz``.

    Raises:
        DataError: Missing file or keys, wrong shapes or lengths, non-finite values,
            duplicate names.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: embeddings file not found")
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npz embeddings file ({exc})") from None
    for key in ("embeddings", "names"):
        if key not in data:
            raise DataError(f"{path}: missing array {key!r} (found {', '.join(sorted(data))})")
    emb = data["embeddings"]
    if emb.ndim != 2 or not np.issubdtype(emb.dtype, np.number):
        raise DataError(f"{path}: 'embeddings' must be a numeric (N, D) array, got {emb.shape}")
    names = tuple(str(n) for n in np.atleast_1d(data["names"]))
    if len(names) != emb.shape[0]:
        raise DataError(f"{path}: {emb.shape[0]} embeddings but {len(names)} names")
    if emb.size and not np.isfinite(emb).all():
        row = int(np.flatnonzero(~np.isfinite(emb).all(axis=1))[0])
        raise DataError(f"{path}: embedding row {row} ({names[row]!r}) has NaN or infinity")
    _check_unique(names, [f"row {i}" for i in range(len(names))], str(path))
    identities = None
    if "identities" in data:
        identities = tuple(str(i) for i in np.atleast_1d(data["identities"]))
        if len(identities) != len(names):
            raise DataError(f"{path}: {len(names)} names but {len(identities)} identities")
    meta: dict[str, Any] = {}
    if "meta" in data:
        try:
            meta = json.loads(str(data["meta"]))
        except ValueError:
            raise DataError(f"{path}: 'meta' is not a JSON string") from None
    return EmbeddingSet(emb.astype(np.float32), names, identities, meta)
