"""The torch Dataset that serves cleaned biomass photos with per-image arrays."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from fieldvision.data.cache import ImageCache
from fieldvision.ops.artifacts import paste_artifacts
from fieldvision.seeding import numpy_rng

__all__ = ["BiomassDataset"]

# Stream id of the artifact draws: `numpy_rng(seed, epoch, index, _ARTIFACT_STREAM)` is
# independent of the flip/jitter stream, so switching artifacts on or off leaves every
# other augmentation of a given (seed, epoch, index) exactly as it was.
_ARTIFACT_STREAM = 1


# --------------------------------------------------------------------------- dataset


class BiomassDataset(Dataset):
    """Cleaned photos as tensors, plus any per-image arrays the caller attaches.

    Args:
        paths: Absolute image paths, one per sample.
        cache: `ImageCache` that decodes and cleans the photos.
        arrays: Optional ``name -> np.ndarray[N, ...]`` (targets, metadata, predicted
            metadata, fold ids, ...); item ``i`` carries ``torch.as_tensor(arr[i])``.
        augment: Random h/v flips and mild brightness/contrast jitter (training). The
            randomness comes from ``numpy_rng(seed, epoch, index)``: no global RNG, and an
            item is reproducible given the epoch. Call `set_epoch` each epoch (with
            ``persistent_workers=True`` the workers keep the epoch they were started with).
        seed: Seed of the augmentation stream.
        artifact_p: Probability that an item gets synthetic camera artifacts (orange date
            stamp and/or red dots, `fieldvision.ops.artifacts`) pasted on its cleaned
            photo, before flips; 0 (the default) never draws from the artifact stream, so
            items are bit-identical to a dataset without the option. Independent of
            `augment`: the caller enables it for training sets only.
        artifact_stamp: Allow pasted date stamps.
        artifact_dots: Allow pasted red dots.

    Test-time flips are not the dataset's job: the inference loop applies them to whole
    batches (`fieldvision.inference`).

    Items are dicts: ``"image"``: Tensor[3, H, W] float32 in [0, 1]; ``"index"``: int;
    one tensor per entry of `arrays`.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        cache: ImageCache,
        arrays: Mapping[str, np.ndarray] | None = None,
        augment: bool = False,
        seed: int = 0,
        artifact_p: float = 0.0,
        artifact_stamp: bool = True,
        artifact_dots: bool = True,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.cache = cache
        self.arrays = {k: np.asarray(v) for k, v in (arrays or {}).items()}
        for name, arr in self.arrays.items():
            if name in ("image", "index"):
                raise ValueError(f"array name {name!r} is reserved")
            if len(arr) != len(self.paths):
                raise ValueError(f"array {name!r} has {len(arr)} rows for {len(self.paths)} paths")
        if not 0.0 <= artifact_p <= 1.0:
            raise ValueError(f"artifact_p must be in [0, 1], got {artifact_p}")
        self.augment = augment
        self.seed = seed
        self.artifact_p = float(artifact_p)
        self.artifact_kinds = (bool(artifact_stamp), bool(artifact_dots))
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of `epoch`."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor | int]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} images")
        i = int(i) % len(self)
        img = self.cache.get(self.paths[i])  # (H, W, 3) uint8, read-only
        if self.artifact_p > 0 and any(self.artifact_kinds):
            art = numpy_rng(self.seed, self.epoch, i, _ARTIFACT_STREAM)
            if art.random() < self.artifact_p:
                stamp, dots = self.artifact_kinds
                img, _ = paste_artifacts(img, art, stamp=stamp, dots=dots)  # a new array
        h_flip, v_flip = False, False
        gain, contrast = 1.0, 1.0
        if self.augment:
            rng = numpy_rng(self.seed, self.epoch, i)
            u = rng.random(4)
            h_flip = bool(u[0] < 0.5)
            v_flip = bool(u[1] < 0.5)
            gain = 0.9 + 0.2 * float(u[2])  # brightness x [0.9, 1.1]
            contrast = 0.9 + 0.2 * float(u[3])  # contrast x [0.9, 1.1]
        x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float() / 255.0
        dims = [d for d, on in ((2, h_flip), (1, v_flip)) if on]
        if dims:
            x = torch.flip(x, dims)  # (3, H, W)
        if gain != 1.0 or contrast != 1.0:
            mean = x.mean()
            x = ((x - mean) * contrast + mean) * gain
            x = x.clamp_(0.0, 1.0)
        item: dict[str, torch.Tensor | int] = {"image": x, "index": i}
        for name, arr in self.arrays.items():
            item[name] = torch.as_tensor(arr[i])
        return item
