"""`ReIDDataset`: re-ID images (and alpha masks) as tensors, with seeded augmentation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from fieldvision.data.images import read_rgba
from fieldvision.data.transforms import to_tensor
from fieldvision.seeding import torch_generator


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
