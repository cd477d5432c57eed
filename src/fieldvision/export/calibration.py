"""Calibration (and validation) images for INT8 quantization, read as each pipeline reads them.

A static INT8 model is only as good as the activation ranges it was calibrated on, so the
calibration images must reach the ONNX graph exactly as they do at predict time. Nothing
is re-implemented here: the pipelines' own readers list the images and their own loaders
decode, clean and resize them:

==========  =====================================================  =========================
pipeline    listing (``DIR_OR_CSV``)                               per image, as predict does
==========  =====================================================  =========================
biomass     ``train.csv`` (labels) / ``test.csv`` in a folder or   `ImageCache` clean + resize
            given as the CSV; a CSV with ``image_path``; else the  → float [0, 1]
            image files under the folder
reid        `read_image_list` (identity folders or CSV give        `ReIDDataset` with
            identities), a Kaggle folder through `load_data`       `EvalTransform` (full view)
mil         `read_samples` (class folders / ``labels.csv`` / a     `BagStore.load_image`, the
            CSV give labels; a flat folder is unlabelled)          tile grid, `cut_tiles`, and
                                                                   the scouter's view
==========  =====================================================  =========================

Images in [0, 1] float32 go in (the models normalise inside). The choice of ``n`` images
out of ``N`` listed is deterministic and spread over the listing: indices ``i * N // n``
(sorted listings group images by class or identity, so every group is reached). Images that
cannot be decoded are skipped and recorded; none usable is a `DataError` naming the source
and what it holds.

`model_feeds` turns an `ImageSet` into the ONNX input dicts of one exported model: image
batches for image models, one bag of tiles ``(T, 3, s, s)`` per image for a MIL expert, the
downscaled view for a scouter, and for a FiLM biomass Phase 2 the ``meta`` input computed
like predict does (`biomass_meta`: the Phase-1 fold ensemble, each fold averaged over the
run's flip TTA views). `FeedReader` is the `onnxruntime.quantization.CalibrationDataReader`
over those dicts.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from fieldvision.data.checks import is_image
from fieldvision.errors import DataError

__all__ = [
    "FeedReader",
    "ImageSet",
    "biomass_meta",
    "choose",
    "flip",
    "load_image_set",
    "model_feeds",
    "run_views",
    "tta_views",
]

#: Images per calibration / evaluation batch of an image model.
BATCH = 8


@dataclass
class ImageSet:
    """Images chosen from a folder or CSV, preprocessed for one run's models.

    Attributes:
        source: The folder or CSV they were listed from.
        kind: The pipeline (``biomass``, ``reid``, ``mil``).
        names: Image names, N of them.
        paths: Their files.
        arrays: Preprocessed inputs per role, N entries each: ``image`` (biomass: uint8
            [3, H, W], the cleaned photo; reid: float32 [3, h, w]), ``tiles`` (mil:
            float32 [T, 3, s, s]) and ``scout`` (mil: float32 [3, h, w]).
        labels: Task labels or None: biomass float32 [N, 5] grams (`TARGETS` order), reid
            identity per image, mil class name per image.
        cameras: Re-ID camera per image, or None.
        found: How many images the source lists.
        skipped: ``"name: reason"`` of chosen images that could not be read.
    """

    source: str
    kind: str
    names: list[str]
    paths: list[Path]
    arrays: dict[str, list[np.ndarray]]
    labels: np.ndarray | list[str] | None = None
    cameras: list[str] | None = None
    found: int = 0
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)

    def describe(self) -> dict[str, Any]:
        """JSON-able summary for the manifest."""
        return {
            "source": self.source,
            "found": self.found,
            "used": len(self),
            "labelled": self.labels is not None,
            "skipped": self.skipped,
            "choice": "i * found // n over the sorted listing",
        }


@dataclass
class _Listing:
    paths: list[Path]
    names: list[str]
    labels: np.ndarray | list[str] | None
    cameras: list[str] | None
    source: str
    samples: Any = None  # the pipeline's own container (MIL needs it for `BagStore`)


def choose(found: int, n: int) -> np.ndarray:
    """Deterministic, evenly spread indices ``i * found // n`` (all of them when n ≥ found).

    Returns:
        int64[min(n, found)], strictly increasing.
    """
    if n >= found:
        return np.arange(found)
    return (np.arange(n, dtype=np.int64) * found) // n


def _contents(folder: Path) -> str:
    """What a folder holds, for an error message ("3 files (2 .txt, 1 .csv), 1 folder")."""
    files, folders = Counter(), 0
    for p in folder.rglob("*"):
        if any(part.startswith(".") for part in p.relative_to(folder).parts):
            continue
        if p.is_dir():
            folders += 1
        else:
            files[p.suffix.lower() or "(no extension)"] += 1
    if not files and not folders:
        return "nothing"
    n = sum(files.values())
    kinds = ", ".join(f"{c} {s}" for s, c in files.most_common(4))
    parts = [f"{n} file(s) ({kinds})"] if n else []
    parts += [f"{folders} folder(s)"] if folders else []
    return " and ".join(parts) + ", none an image"


def _check_folder(path: Path) -> None:
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir() and not any(
        is_image(p) and not any(s.startswith(".") for s in p.relative_to(path).parts)
        for p in path.rglob("*")
    ):
        raise DataError(
            f"{path}: no usable images (found {_contents(path)})",
            hint="give a folder or CSV of the images the model will see",
        )


# --------------------------------------------------------------------------- listings


def _biomass_listing(path: Path) -> _Listing:
    import pandas as pd

    from fieldvision.data.biomass import check_images_exist, read_test_table, read_train_table
    from fieldvision.data.checks import read_table
    from fieldvision.schemas.biomass import TARGETS, TEST_COLUMNS, TRAIN_COLUMNS

    table = path if path.is_file() else None
    for name in ("train.csv", "test.csv"):
        if table is None and (path / name).is_file():
            table = path / name
    if table is None:  # a folder of photos: every image under it, sorted
        paths = sorted(
            p
            for p in path.rglob("*")
            if is_image(p) and not any(s.startswith(".") for s in p.relative_to(path).parts)
        )
        return _Listing(
            paths, [p.relative_to(path).as_posix() for p in paths], None, None, str(path)
        )
    root = table.parent
    try:
        columns = set(pd.read_csv(table, nrows=0).columns)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{table}: not a readable CSV file ({exc})") from None
    labels = None
    if set(TRAIN_COLUMNS) <= columns:  # Kaggle train format: labelled
        frame = read_train_table(table)
        labels = frame[list(TARGETS)].to_numpy(np.float32)
    elif set(TEST_COLUMNS) <= columns:
        frame = read_test_table(table).drop_duplicates("image_id").reset_index(drop=True)
    else:
        frame = read_table(table, ["image_path"]).drop_duplicates("image_path")
        frame = frame.reset_index(drop=True)
    paths = check_images_exist(frame, root, "")  # inside the CSV's folder
    return _Listing(list(paths), [str(p) for p in frame["image_path"]], labels, None, str(table))


def _reid_listing(path: Path, cfg: Any) -> _Listing:
    from fieldvision.data.reid import read_image_list
    from fieldvision.pipelines.reid.data import load_data

    d = cfg.data
    if path.is_dir() and (path / d.train_csv).is_file():  # Kaggle layout: its train side
        samples = load_data(path, d).samples
    else:
        samples = read_image_list(
            path, d.image_column, d.identity_column, camera_column=d.camera_column
        )
    ids = None if samples.identities is None else list(samples.identities)
    cams = None if samples.cameras is None else list(samples.cameras)
    return _Listing(list(samples.paths), list(samples.names), ids, cams, samples.source)


def _mil_listing(path: Path, cfg: Any) -> _Listing:
    from fieldvision.pipelines.mil.inputs import read_samples

    samples = read_samples(path, cfg)
    labels = None if samples.labels is None else list(samples.labels)
    return _Listing(list(samples.paths), list(samples.names), labels, None, samples.source, samples)


# --------------------------------------------------------------------------- preprocessing


def _biomass_reader(cfg: Any, source: Path) -> Callable[[int, Path], dict[str, np.ndarray]]:
    from fieldvision.data.cache import ImageCache

    # The pipeline's decode + clean + resize, without writing a cache into the user's folder.
    cache = ImageCache(source, cfg.data.clean, enabled=False, max_pixels=cfg.data.max_image_pixels)

    def read(i: int, path: Path) -> dict[str, np.ndarray]:
        img = cache.get(path)  # (H, W, 3) uint8 at data.clean.size
        return {"image": np.ascontiguousarray(img.transpose(2, 0, 1))}

    return read


def _reid_reader(cfg: Any, paths: Sequence[Path]) -> Callable[[int, Path], dict[str, np.ndarray]]:
    from fieldvision.data.reid import ReIDDataset
    from fieldvision.data.transforms import EvalTransform
    from fieldvision.pipelines.reid.data import image_reader

    size = tuple(cfg.data.image_size)
    dataset = ReIDDataset(list(paths), None, EvalTransform(size), reader=image_reader(cfg.data))

    def read(i: int, path: Path) -> dict[str, np.ndarray]:
        return {"image": dataset[i]["image"].numpy().astype(np.float32)}  # (3, h, w)

    return read


def _mil_reader(cfg: Any, samples: Any) -> Callable[[int, Path], dict[str, np.ndarray]]:
    from fieldvision.data.mil import BagStore
    from fieldvision.ops.glance import cut_tiles
    from fieldvision.pipelines.mil.inputs import bag_spec

    store = BagStore(samples, bag_spec(cfg), max_pixels=cfg.data.max_image_pixels)

    def read(i: int, path: Path) -> dict[str, np.ndarray]:
        image = store.load_image(i)  # (3, H, W) float, resized to data.input_size
        boxes = store.boxes_for(*image.shape[-2:])
        tiles = cut_tiles(image, boxes, store.spec.tile_size)  # (T, 3, s, s), as `Predictor`
        return {"tiles": tiles.numpy(), "scout": store.scout_view(image).numpy()}

    return read


def load_image_set(source: str | os.PathLike[str], kind: str, cfg: Any, n: int = 64) -> ImageSet:
    """List, choose and preprocess up to `n` images of `source` for a run of `kind`.

    Args:
        source: A folder or CSV (see the module table for what each pipeline reads).
        kind: ``biomass``, ``reid`` or ``mil``.
        cfg: The run's config (image sizes, cleaning, tiling, column names).
        n: How many images to use at most.

    Returns:
        The chosen images, preprocessed, with their labels when the source has them.

    Raises:
        DataError: `source` is missing, lists no image, or none of the chosen images
            could be read.
    """
    import torch

    path = Path(source)
    _check_folder(path)
    if kind == "biomass":
        listing = _biomass_listing(path)
    elif kind == "reid":
        listing = _reid_listing(path, cfg)
    elif kind == "mil":
        listing = _mil_listing(path, cfg)
    else:
        raise DataError(f"runs of kind {kind!r} have no calibration reader")
    found = len(listing.paths)
    if found == 0:
        raise DataError(f"{path}: no usable images (the listing is empty)")
    picks = choose(found, n)
    paths = [listing.paths[i] for i in picks]
    if kind == "biomass":
        read = _biomass_reader(cfg, path if path.is_dir() else path.parent)
    elif kind == "reid":
        read = _reid_reader(cfg, paths)
    else:
        read = _mil_reader(cfg, listing.samples.subset(picks))
    arrays: dict[str, list[np.ndarray]] = {}
    kept, skipped = [], []
    with torch.no_grad():
        for j, p in enumerate(paths):
            try:
                item = read(j, p)
            except DataError as exc:
                skipped.append(f"{listing.names[picks[j]]}: {exc.message}")
                continue
            for role, arr in item.items():
                arrays.setdefault(role, []).append(arr)
            kept.append(int(picks[j]))
    if not kept:
        more = f"; and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        raise DataError(
            f"{path}: no usable images (found {found} image file(s), none readable: "
            f"{'; '.join(skipped[:3])}{more})"
        )
    labels = listing.labels
    if labels is not None:
        labels = labels[kept] if isinstance(labels, np.ndarray) else [labels[i] for i in kept]
    cameras = None if listing.cameras is None else [listing.cameras[i] for i in kept]
    return ImageSet(
        listing.source,
        kind,
        [listing.names[i] for i in kept],
        [listing.paths[i] for i in kept],
        arrays,
        labels,
        cameras,
        found,
        skipped,
    )


# --------------------------------------------------------------------------- ONNX feeds


def _stack(items: Sequence[np.ndarray]) -> np.ndarray:
    """A batch float32 [B, ...] in [0, 1]; uint8 images are scaled as `BiomassDataset` does."""
    batch = np.stack(items)
    if batch.dtype == np.uint8:
        return batch.astype(np.float32) / np.float32(255.0)
    return batch.astype(np.float32, copy=False)


def model_feeds(
    entry: Mapping[str, Any],
    images: ImageSet,
    meta: np.ndarray | None = None,
    batch: int = BATCH,
) -> list[dict[str, np.ndarray]]:
    """The ONNX input dicts of one exported model over `images`.

    Args:
        entry: The model's manifest entry (``registry_name``, ``inputs``).
        images: Preprocessed images of the run's kind.
        meta: float32 [N, 4] FiLM conditioning (`biomass_meta`) when the model has a
            ``meta`` input.
        batch: Images per feed (a MIL expert gets one feed per image: its bag of tiles).

    Returns:
        Feeds ``{input name: array}``: ``image`` [B, 3, H, W], ``meta`` [B, 4] or
        ``tiles`` [T, 3, s, s].

    Raises:
        ValueError: A ``meta`` input without `meta`.
    """
    names = [i["name"] for i in entry["inputs"]]
    if names == ["tiles"]:
        return [{"tiles": t.astype(np.float32, copy=False)} for t in images.arrays["tiles"]]
    role = "scout" if entry["registry_name"] == "mil_scouter" else "image"
    if "meta" in names and meta is None:
        raise ValueError(f"{entry['registry_name']} takes a meta input: pass meta")
    feeds = []
    for start in range(0, len(images), batch):
        feed = {"image": _stack(images.arrays[role][start : start + batch])}
        if "meta" in names:
            feed["meta"] = np.asarray(meta[start : start + batch], np.float32)
        feeds.append(feed)
    return feeds


def flip(feed: Mapping[str, np.ndarray], hflip: bool, vflip: bool) -> dict[str, np.ndarray]:
    """A feed with its ``image`` mirrored, as `fieldvision.inference.View` does a batch."""
    axes = [a for a, on in ((-1, hflip), (-2, vflip)) if on]
    if not axes or "image" not in feed:
        return dict(feed)
    return {**feed, "image": np.ascontiguousarray(np.flip(feed["image"], axis=axes))}


def tta_views(tta: bool, vertical: bool = True) -> list[tuple[bool, bool]]:
    """The flip TTA views as ``(hflip, vflip)``, identity first (as `flip_views`)."""
    views = [(False, False)]
    if tta:
        views += [(True, False), (False, True)] if vertical else [(True, False)]
    return views


def run_views(
    session: Any, feeds: Sequence[Mapping[str, np.ndarray]], views: Sequence[tuple[bool, bool]]
) -> list[dict[str, np.ndarray]]:
    """Outputs of `session` per feed, averaged over the flip `views` (as `mean_views`)."""
    names = [o.name for o in session.get_outputs()]
    out = []
    for feed in feeds:
        runs = [session.run(names, flip(feed, h, v)) for h, v in views]
        out.append({n: np.mean([r[k] for r in runs], axis=0) for k, n in enumerate(names)})
    return out


def biomass_meta(
    phase1: Sequence[Any], images: ImageSet, tta: bool, batch: int = BATCH
) -> np.ndarray:
    """FiLM ``meta`` of `images` from Phase-1 ONNX sessions, computed as predict does.

    Each fold's Phase-1 outputs are averaged over the flip views of `tta`, turned into the
    (N, 4) conditioning vector (`film_meta`), and the folds are averaged.

    Returns:
        float32 [N, 4].
    """
    from fieldvision.pipelines.biomass.meta import film_meta

    entry = {"registry_name": "biomass_phase1", "inputs": [{"name": "image"}]}
    feeds = model_feeds(entry, images, batch=batch)
    per_fold = []
    for session in phase1:
        outs = run_views(session, feeds, tta_views(tta))
        joined = {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}
        per_fold.append(film_meta(joined))
    return np.mean(per_fold, axis=0).astype(np.float32)


class FeedReader(CalibrationDataReader):
    """`CalibrationDataReader` over prepared feeds (rewindable, so it can be read twice).

    Args:
        feeds: ``{input name: array}`` dicts, e.g. from `model_feeds`.
    """

    def __init__(self, feeds: Sequence[Mapping[str, np.ndarray]]) -> None:
        self.feeds = [dict(f) for f in feeds]
        self._next = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next feed, or None when all were read."""
        if self._next >= len(self.feeds):
            return None
        self._next += 1
        return self.feeds[self._next - 1]

    def rewind(self) -> None:
        """Start again from the first feed."""
        self._next = 0

    def __len__(self) -> int:
        return len(self.feeds)
