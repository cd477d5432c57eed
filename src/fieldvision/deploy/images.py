"""Image preprocessing in NumPy, equal to the torch path's: uint8 → float and resizing.

The torch pipelines resize with ``F.interpolate(mode="bilinear", align_corners=False,
antialias=True)`` (`fieldvision.ops.tiling.global_view`, `EvalTransform`, `BagStore`).
`resize` is that filter written out: PIL-style separable interpolation with a triangle
kernel whose support grows with the shrink factor, so shrinking averages every source pixel
(no aliasing) and enlarging is plain bilinear with half-pixel centres. For output index
``i`` of an axis of ``n`` input pixels shrunk or grown by ``scale = n_in / n_out``:

* centre ``c = scale · (i + 0.5)``; support ``r = max(scale, 1)``;
* source pixels ``j`` from ``trunc(c − r + 0.5)`` (at least 0) to ``trunc(c + r + 0.5)``
  (at most ``n``), weight ``max(0, 1 − |j − c + 0.5| / r)``, normalised to sum 1.

The weights are a ``(n_out, n_in)`` matrix per axis, so an image is ``Wy @ X @ Wxᵀ``: two
matrix products in float32 (width first, then height, as torch's separable passes), equal
to torch to ~1e-6 (the order of float additions only).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

__all__ = ["resize", "resize_weights", "to_chw"]


@functools.lru_cache(maxsize=256)
def resize_weights(n_in: int, n_out: int) -> np.ndarray:
    """Antialiased bilinear interpolation weights of one axis.

    The arithmetic is torch's CPU kernel's, step by step in float32 (the centre, the
    window, the triangle filter, the running sum that normalises the weights): computing
    them in float64 instead moves outputs near the far edge of a 72 px axis by ~6e-6.

    Returns:
        float32[n_out, n_in]; every row sums to 1.
    """
    if n_in < 1 or n_out < 1:
        raise ValueError(f"axis sizes must be positive, got {n_in} -> {n_out}")
    f32 = np.float32
    scale = f32(n_in) / f32(n_out)
    support = f32(float(scale)) if scale >= 1.0 else f32(1.0)
    invscale = f32(1.0 / float(scale)) if scale >= 1.0 else f32(1.0)
    weights = np.zeros((n_out, n_in), np.float32)
    for i in range(n_out):
        centre = f32(float(scale) * (i + 0.5))
        lo = max(int(float(centre - support) + 0.5), 0)
        hi = min(int(float(centre + support) + 0.5), n_in)
        row = np.empty(hi - lo, np.float32)
        total = f32(0.0)
        for k, j in enumerate(range(lo, hi)):
            x = abs(f32((float(f32(j) - centre) + 0.5) * float(invscale)))
            row[k] = f32(1.0 - float(x)) if x < 1.0 else f32(0.0)
            total = f32(total + row[k])
        weights[i, lo:hi] = row / total if total != 0 else row
    weights.setflags(write=False)
    return weights


def resize(x: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Resize ``float32[..., H, W]`` to ``[..., h, w]`` (antialiased bilinear, as torch).

    An image already of `size` is returned as it is (torch's helpers skip the call too).
    """
    h, w = int(size[0]), int(size[1])
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive (h, w), got {tuple(size)}")
    if tuple(x.shape[-2:]) == (h, w):
        return x
    x = np.asarray(x, np.float32)
    wy = resize_weights(x.shape[-2], h)  # (h, H)
    wx = resize_weights(x.shape[-1], w)  # (w, W)
    return np.ascontiguousarray(wy @ (x @ wx.T))  # (..., h, w)


def to_chw(image: np.ndarray) -> np.ndarray:
    """``uint8[H, W, C]`` → ``float32[C, H, W]`` in [0, 1] (``x / 255`` as the torch path)."""
    x = np.ascontiguousarray(image.transpose(2, 0, 1)).astype(np.float32)
    return x / np.float32(255.0)
