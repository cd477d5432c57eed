"""Decode-and-clean disk cache: every photo is decoded and cleaned at most once.

Decoding a 2000 x 1000 JPEG, inpainting its date stamp and shrinking it costs tens of
milliseconds; loading the cleaned 256 x 512 result from a ``.npy`` file costs well under one.
Across 5 folds x 2 phases x many epochs this dominates CPU training time.

Layout::

    root/<clean_cfg.fingerprint()>/<key>.npy    cleaned image, uint8 [H, W, 3] RGB
    root/<clean_cfg.fingerprint()>/<key>.json   its CleaningReport (+ source path)

``key`` hashes the absolute source path, its size and its modification time (ns), so an
edited or replaced photo is re-cleaned, and a different cleaning config never reads stale
entries. Files are written atomically (temp file + rename), so DataLoader workers or
concurrent processes may fill the same cache: the worst case is duplicate work.

Source photos are decoded with a pixel limit (``max_pixels``, see `read_rgb`) against
decompression bombs. The limit is not part of ``key``: it changes no pixel, it only decides
whether a photo is decoded at all, so an entry cached under a larger limit is still served
(the cleaned entry is small; the protection is against the cost of decoding).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from fieldvision.console import progress_iter
from fieldvision.data.images import DEFAULT_MAX_PIXELS, check_aspect, read_rgb
from fieldvision.errors import DataError
from fieldvision.io import atomic_path, write_json
from fieldvision.ops.cleaning import CleanConfig, CleaningReport, clean_image

__all__ = ["ImageCache"]


class ImageCache:
    """Return cleaned, resized images, decoding and cleaning each source file once.

    Args:
        root: Cache directory (created on first write).
        clean_cfg: Cleaning configuration; its fingerprint names the sub-directory.
        enabled: False decodes and cleans on every `get` and writes nothing (for measuring
            the cache's speed-up, or read-only media).
        memory_items: Keep up to this many cleaned images in an in-process LRU as well
            (0 = off). Each DataLoader worker has its own copy.
        expected_aspect: Warn (`AspectRatioWarning`) when a decoded photo's ``W / H`` is more
            than 5 % off this ratio (CSIRO photos are 2:1); None disables the check.
        max_pixels: Refuse (`DataError`) source photos with more than this many pixels,
            checked from the file header before decoding; None means `DEFAULT_MAX_PIXELS`.
            Not part of the cache key (it does not change pixels).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        clean_cfg: CleanConfig,
        *,
        enabled: bool = True,
        memory_items: int = 0,
        expected_aspect: float | None = 2.0,
        max_pixels: int | None = None,
    ) -> None:
        self.root = Path(root)
        self.clean_cfg = clean_cfg
        self.enabled = enabled
        self.memory_items = int(memory_items)
        self.expected_aspect = expected_aspect
        self.max_pixels = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
        self.fingerprint = clean_cfg.fingerprint()
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()
        #: Number of decode+clean operations performed by this object (cache misses).
        self.misses = 0

    @property
    def directory(self) -> Path:
        """Directory holding the entries of this cleaning configuration."""
        return self.root / self.fingerprint

    def _key(self, path: Path) -> tuple[str, Path]:
        try:
            st = path.stat()
        except FileNotFoundError:
            raise DataError(f"{path}: image file not found") from None
        resolved = path.resolve()
        blob = f"{resolved}\0{st.st_size}\0{st.st_mtime_ns}".encode()
        return hashlib.sha256(blob).hexdigest()[:24], resolved

    def _compute(self, path: Path) -> tuple[np.ndarray, CleaningReport]:
        img, info = read_rgb(path, return_info=True, max_pixels=self.max_pixels)
        self.misses += 1
        if self.expected_aspect is not None:
            check_aspect(img, expected=self.expected_aspect, name=str(path))
        return clean_image(img, self.clean_cfg, converted_from=info.converted_from)

    def _load(self, npy: Path) -> np.ndarray | None:
        try:
            arr = np.load(npy, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None  # missing or damaged entry: recompute
        H, W = self.clean_cfg.size
        if arr.dtype != np.uint8 or arr.shape != (H, W, 3):
            return None
        return arr

    def _store(self, key: str, source: Path, img: np.ndarray, report: CleaningReport) -> None:
        directory = self.directory
        # The sidecar goes first: an .npy that exists always has its report.
        write_json(directory / f"{key}.json", {"source": str(source), **report.to_dict()})
        with atomic_path(directory / f"{key}.npy") as tmp:
            np.save(tmp, img, allow_pickle=False)

    def _remember(self, key: str, img: np.ndarray) -> None:
        if self.memory_items <= 0:
            return
        self._memory[key] = img
        self._memory.move_to_end(key)
        while len(self._memory) > self.memory_items:
            self._memory.popitem(last=False)

    def get(self, path: str | os.PathLike[str]) -> np.ndarray:
        """Cleaned image for `path`.

        Returns:
            np.ndarray[H, W, 3] uint8 RGB with ``(H, W) = clean_cfg.size``. Treat it as
            read-only (it may be shared with the in-memory LRU).

        Raises:
            DataError: The file is missing, corrupt, truncated or over `max_pixels`.
        """
        path = Path(path)
        if not self.enabled:
            return self._compute(path)[0]
        key, resolved = self._key(path)
        hit = self._memory.get(key)
        if hit is not None:
            self._memory.move_to_end(key)
            return hit
        npy = self.directory / f"{key}.npy"
        img = self._load(npy) if npy.is_file() else None
        if img is None:
            img, report = self._compute(path)
            self._store(key, resolved, img, report)
        self._remember(key, img)
        return img

    def report(self, path: str | os.PathLike[str]) -> CleaningReport:
        """The `CleaningReport` of `path` (cleaning it first if it is not cached yet)."""
        path = Path(path)
        if not self.enabled:
            return self._compute(path)[1]
        key, resolved = self._key(path)
        sidecar = self.directory / f"{key}.json"
        if sidecar.is_file() and (self.directory / f"{key}.npy").is_file():
            try:
                data = json.loads(sidecar.read_text(encoding="utf-8"))
                return CleaningReport.from_dict(data)
            except (OSError, ValueError, KeyError, TypeError, IndexError):
                pass  # damaged sidecar: recompute below
        img, report = self._compute(path)
        self._store(key, resolved, img, report)
        return report

    def warm(
        self, paths: Iterable[str | os.PathLike[str]], progress: bool = True
    ) -> list[CleaningReport]:
        """Make sure every path is cached; return their reports in order.

        Args:
            paths: Source image files.
            progress: Show a rich progress bar on stderr.
        """
        paths = list(paths)
        reports = []
        for p in progress_iter(paths, "cleaning images", total=len(paths), enabled=progress):
            if self.enabled:
                self.get(p)
            reports.append(self.report(p))
        return reports

    def __repr__(self) -> str:
        state = "" if self.enabled else ", enabled=False"
        return f"ImageCache({str(self.directory)!r}{state})"
