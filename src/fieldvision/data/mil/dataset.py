"""Bags of tiles in memory, and the torch Dataset that serves them.

An image becomes a *bag*: an R×C grid of tiles cut at full resolution (any size and aspect;
optional overlap), each resized to the expert's ``tile_size``, plus one downscaled view of
the whole image for the scouter. `BagStore` decodes every file once (bounded decoded pixels)
and keeps the bag as uint8 tensors, so epochs after the first cost no decoding.

Items are dicts: ``tiles`` Tensor[T, 3, s, s] float in [0, 1] (row-major), ``image``
Tensor[3, h, w] float in [0, 1] (the scouter's view), ``label`` int64 (-1 when unlabelled),
``index`` int, plus any per-image arrays attached (e.g. the scouter's ``target``
Tensor[R, C]). Training augmentation flips the whole bag (tiles, their order, the view and
any target map) with randomness from ``(seed, epoch, index)``; optionally every tile is also
turned by its own random element of the dihedral group (`dihedral_tiles`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from fieldvision.data.images import read_rgb
from fieldvision.data.mil.samples import MILSamples
from fieldvision.errors import DataError
from fieldvision.ops.glance import cut_tiles, tile_boxes
from fieldvision.seeding import numpy_rng

__all__ = ["Bag", "BagDataset", "BagSpec", "BagStore", "dihedral_tiles", "flip_bag"]


@dataclass(frozen=True)
class BagSpec:
    """How images become bags.

    Attributes:
        grid: ``(rows, cols)`` of tiles.
        tile_size: Side of the square tile the expert sees.
        scout_size: ``(h, w)`` of the whole-image view for the scouter.
        overlap: Fraction of a tile added on each side (0: a partition of the image).
        input_size: Resize every image to ``(H, W)`` before tiling; None keeps full size.
        min_tile_px: Smallest allowed grid cell side in source pixels.
    """

    grid: tuple[int, int] = (8, 8)
    tile_size: int = 64
    scout_size: tuple[int, int] = (128, 128)
    overlap: float = 0.0
    input_size: tuple[int, int] | None = None
    min_tile_px: int = 16


@dataclass(frozen=True)
class Bag:
    """One image as a bag (uint8 tensors, kept in memory)."""

    tiles: torch.Tensor  # (T, 3, s, s) uint8
    image: torch.Tensor  # (3, h, w) uint8
    boxes: np.ndarray  # (T, 4) int64 xyxy in source pixels
    size: tuple[int, int]  # (H, W) of the source image (after input_size)


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return (x * 255.0).round_().clamp_(0, 255).to(torch.uint8)


class BagStore:
    """Decode, tile and keep bags; every image file is read once.

    Args:
        samples: The images.
        spec: Tiling.
        max_pixels: Decoded-pixel bound of the image reader.
        reader: ``path -> uint8[H, W, 3]`` (default `read_rgb` with `max_pixels`).
    """

    def __init__(
        self,
        samples: MILSamples,
        spec: BagSpec,
        max_pixels: int | None = None,
        reader: Callable[[Path], np.ndarray] | None = None,
    ) -> None:
        self.samples = samples
        self.spec = spec
        self.reader = reader or functools.partial(read_rgb, max_pixels=max_pixels)
        self._bags: dict[int, Bag] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def load_image(self, i: int) -> torch.Tensor:
        """Image `i` as Tensor[3, H, W] float in [0, 1] (resized to ``input_size``).

        Raises:
            DataError: Unreadable or oversized file, or too small for the grid.
        """
        try:
            rgb = self.reader(self.samples.paths[i])
        except DataError as exc:
            raise DataError(f"{self.samples.origins[i]}: {exc.message}", exc.hint) from None
        x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float() / 255.0
        if self.spec.input_size is not None and tuple(x.shape[-2:]) != self.spec.input_size:
            x = F.interpolate(x[None], size=self.spec.input_size, mode="bilinear",
                              antialias=True, align_corners=False)[0]  # fmt: skip
        h, w = x.shape[-2:]
        rows, cols = self.spec.grid
        if h / rows < self.spec.min_tile_px or w / cols < self.spec.min_tile_px:
            raise DataError(
                f"{self.samples.origins[i]}: image {w}×{h} is too small for a {rows}×{cols} "
                f"grid (cells under {self.spec.min_tile_px} px)",
                hint="use a coarser data.grid, or larger images",
            )
        return x

    def scout_view(self, image: torch.Tensor) -> torch.Tensor:
        """The scouter's view of ``image: Tensor[3, H, W]``: Tensor[3, h, w]."""
        return F.interpolate(image[None], size=self.spec.scout_size, mode="bilinear",
                             antialias=True, align_corners=False)[0]  # fmt: skip

    def boxes_for(self, height: int, width: int) -> np.ndarray:
        """Tile boxes (T, 4) of an image of this size."""
        rows, cols = self.spec.grid
        return tile_boxes(height, width, rows, cols, self.spec.overlap)

    def bag(self, i: int) -> Bag:
        """The bag of image `i` (decoded and tiled on first use)."""
        bag = self._bags.get(i)
        if bag is None:
            image = self.load_image(i)
            h, w = image.shape[-2:]
            boxes = self.boxes_for(h, w)
            tiles = cut_tiles(image, boxes, self.spec.tile_size)  # (T, 3, s, s)
            bag = Bag(_to_uint8(tiles), _to_uint8(self.scout_view(image)), boxes, (h, w))
            self._bags[i] = bag
        return bag

    def prepare(self, progress: Callable | None = None) -> None:
        """Decode and tile every image now (a bad file fails here, not mid-epoch)."""
        indices = range(len(self))
        for i in progress(indices) if progress is not None else indices:
            self.bag(i)


def flip_bag(item: dict, hflip: bool, vflip: bool, grid: tuple[int, int]) -> dict:
    """Mirror a whole bag: the tile order, every tile, the view and a ``target`` map."""
    rows, cols = grid
    out = dict(item)
    dims_tiles, dims_img, dims_map = [], [], []
    if hflip:
        dims_tiles += [1, 4]
        dims_img.append(2)
        dims_map.append(1)
    if vflip:
        dims_tiles += [0, 3]
        dims_img.append(1)
        dims_map.append(0)
    if dims_tiles:
        if "tiles" in item:
            tiles = item["tiles"].view(rows, cols, *item["tiles"].shape[1:])  # (R, C, 3, s, s)
            out["tiles"] = tiles.flip(dims_tiles).reshape(item["tiles"].shape)
        out["image"] = item["image"].flip(dims_img)
        if "target" in item:
            out["target"] = item["target"].flip(dims_map)
    return out


def dihedral_tiles(tiles: torch.Tensor, ops: np.ndarray) -> torch.Tensor:
    """Turn each tile by its own element of the dihedral group D4 (8 rotations/mirrors).

    Valid as bag augmentation because the expert scores every tile on its own and MIL
    pooling ignores where a tile sits: a bag of independently rotated tiles is another
    view of the same evidence. It suits images without a preferred orientation (circuit
    boards, micrographs, leaf surfaces); the scouter's whole-image view is not touched.

    Args:
        tiles: Tensor[T, C, s, s] (square tiles).
        ops: int[T] in [0, 8): ``op % 4`` quarter turns (counter-clockwise), then a
            left-right mirror when ``op >= 4``; 0 is the identity.

    Returns:
        Tensor[T, C, s, s], a new tensor.

    Raises:
        ValueError: Non-square tiles, or `ops` of the wrong length or range.
    """
    ops = np.asarray(ops, dtype=np.int64)
    if tiles.ndim != 4 or tiles.shape[-1] != tiles.shape[-2]:
        raise ValueError(f"tiles must be Tensor[T, C, s, s], got {tuple(tiles.shape)}")
    if ops.shape != (tiles.shape[0],) or (ops.size and not 0 <= ops.min() <= ops.max() < 8):
        raise ValueError(f"ops must be {tiles.shape[0]} integers in [0, 8), got {ops.tolist()}")
    out = tiles.clone()
    for op in np.unique(ops):  # at most 8 batched ops instead of one per tile
        if op == 0:
            continue
        idx = torch.from_numpy(np.flatnonzero(ops == op))
        turned = torch.rot90(tiles[idx], int(op) % 4, dims=(-2, -1))
        out[idx] = turned.flip(-1) if op >= 4 else turned
    return out


class BagDataset(Dataset):
    """Bags as float tensors, with labels and optional per-image arrays.

    Args:
        store: Where the bags come from.
        indices: Which images of the store (default: all).
        labels: int64 label per image of `indices` (default: -1).
        arrays: ``name -> array[N, ...]`` aligned with `indices` (e.g. ``target``).
        augment: Random whole-bag flips (training).
        seed: Seed of the augmentation stream; call `set_epoch` each epoch.
        with_tiles: Serve ``tiles`` (False: only the whole-image view, for the scouter).
        tile_augment: Also turn every tile by its own random dihedral element
            (`dihedral_tiles`); needs ``augment``.
    """

    def __init__(
        self,
        store: BagStore,
        indices: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        arrays: Mapping[str, np.ndarray] | None = None,
        augment: bool = False,
        seed: int = 0,
        with_tiles: bool = True,
        tile_augment: bool = False,
    ) -> None:
        self.store = store
        self.tile_augment = bool(tile_augment)
        self.with_tiles = with_tiles
        self.indices = np.arange(len(store)) if indices is None else np.asarray(indices)
        self.labels = None if labels is None else np.asarray(labels, np.int64)
        self.arrays = {k: np.asarray(v) for k, v in (arrays or {}).items()}
        for name, arr in self.arrays.items():
            if len(arr) != len(self.indices):
                raise ValueError(f"array {name!r} has {len(arr)} rows for {len(self.indices)}")
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of `epoch`."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> dict:
        bag = self.store.bag(int(self.indices[k]))
        item = {
            "image": bag.image.float() / 255.0,
            "label": torch.tensor(-1 if self.labels is None else int(self.labels[k])),
            "index": int(k),
        }
        if self.with_tiles:
            item["tiles"] = bag.tiles.float() / 255.0
        for name, arr in self.arrays.items():
            item[name] = torch.as_tensor(arr[k])
        if self.augment:
            rng = numpy_rng(self.seed, self.epoch, int(k))
            u = rng.random(2)
            item = flip_bag(item, bool(u[0] < 0.5), bool(u[1] < 0.5), self.store.spec.grid)
            if self.tile_augment and "tiles" in item:
                item["tiles"] = dihedral_tiles(
                    item["tiles"], rng.integers(0, 8, len(item["tiles"]))
                )
        return item
