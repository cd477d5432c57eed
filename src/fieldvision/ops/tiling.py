"""Split images into halves and grid tiles, resize to a global view, and stitch tiles back.

All functions are pure torch, batched and loop-free: tiling is a reshape + permute of the
input (one copy at most), so it works for any float dtype, on any device, and gradients
flow back to the input. Shapes follow torchvision's ``Tensor[B, C, H, W]`` convention.

Tile order is row-major: tile ``k`` covers grid row ``k // cols`` and column ``k % cols``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["global_view", "grid_tiles", "halves", "untile"]


def _check_image_batch(x: Tensor, name: str = "x") -> None:
    if x.ndim != 4:
        raise ValueError(
            f"{name} must be a batch of images [B, C, H, W], got shape {tuple(x.shape)}"
        )


def grid_tiles(x: Tensor, rows: int, cols: int) -> Tensor:
    """Cut every image into a ``rows × cols`` grid of equal, non-overlapping tiles.

    Args:
        x: Tensor[B, C, H, W]; ``H`` divisible by `rows` and ``W`` by `cols`.
        rows: Number of tile rows (>= 1).
        cols: Number of tile columns (>= 1).

    Returns:
        Tensor[B, rows * cols, C, H // rows, W // cols], tiles in row-major order.

    Raises:
        ValueError: `x` is not 4-D, the grid is empty, or a dimension is not divisible.
    """
    _check_image_batch(x)
    if rows < 1 or cols < 1:
        raise ValueError(f"grid must have at least one row and column, got {rows}x{cols}")
    B, C, H, W = x.shape
    if H % rows:
        raise ValueError(f"height H={H} is not divisible by rows={rows}")
    if W % cols:
        raise ValueError(f"width W={W} is not divisible by cols={cols}")
    h, w = H // rows, W // cols
    t = x.reshape(B, C, rows, h, cols, w)  # (B, C, r, h, c, w)
    t = t.permute(0, 2, 4, 1, 3, 5)  # (B, r, c, C, h, w)
    return t.reshape(B, rows * cols, C, h, w)  # (B, r*c, C, h, w)


def untile(tiles: Tensor, rows: int, cols: int) -> Tensor:
    """Stitch row-major tiles back into whole images (inverse of `grid_tiles`).

    Args:
        tiles: Tensor[B, rows * cols, C, h, w]; also works for per-tile maps such as
            attention heatmaps with ``C = h = w = 1``.
        rows: Number of tile rows.
        cols: Number of tile columns.

    Returns:
        Tensor[B, C, rows * h, cols * w].

    Raises:
        ValueError: `tiles` is not 5-D or its tile count is not ``rows * cols``.
    """
    if tiles.ndim != 5:
        raise ValueError(f"tiles must be [B, N, C, h, w], got shape {tuple(tiles.shape)}")
    if rows < 1 or cols < 1:
        raise ValueError(f"grid must have at least one row and column, got {rows}x{cols}")
    B, N, C, h, w = tiles.shape
    if rows * cols != N:
        raise ValueError(f"got {N} tiles, expected rows*cols = {rows}*{cols} = {rows * cols}")
    t = tiles.reshape(B, rows, cols, C, h, w)  # (B, r, c, C, h, w)
    t = t.permute(0, 3, 1, 4, 2, 5)  # (B, C, r, h, c, w)
    return t.reshape(B, C, rows * h, cols * w)


def halves(x: Tensor) -> Tensor:
    """Split every image into its left and right halves.

    Args:
        x: Tensor[B, C, H, W] with even ``W``.

    Returns:
        Tensor[B, 2, C, H, W // 2]; index 0 is the left half, 1 the right half.

    Raises:
        ValueError: `x` is not 4-D or its width is odd.
    """
    _check_image_batch(x)
    if x.shape[-1] % 2:
        raise ValueError(f"width W={x.shape[-1]} must be even to split into halves")
    # A 1 x 2 grid is exactly (left, right).
    return grid_tiles(x, 1, 2)


def global_view(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize whole images to `size` with antialiased bilinear interpolation.

    Antialiasing matters when shrinking a 2000 x 1000 photo to a few hundred pixels: plain
    bilinear would alias the fine grass texture into moire.

    Args:
        x: Tensor[B, C, H, W], any float dtype.
        size: Output ``(h, w)``.

    Returns:
        Tensor[B, C, h, w] with the dtype of `x`.
    """
    _check_image_batch(x)
    h, w = int(size[0]), int(size[1])
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive (h, w), got {size}")
    if not x.is_floating_point():
        raise TypeError(f"global_view needs a float tensor, got {x.dtype}")
    if tuple(x.shape[-2:]) == (h, w):
        return x
    # The antialiased kernels are not implemented for half types on every backend;
    # compute in float32 there and cast back (the result is stored in the input dtype anyway).
    work = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    out = F.interpolate(work, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    return out.to(x.dtype)
