"""Glance inference helpers: tile geometry, tile cutting and scouter-guided tile selection.

Glance inference looks at an image twice: a light *scouter* scores every tile of a
``rows × cols`` grid from a small whole-image view, `select_tiles` keeps the few tiles worth
a closer look (within a budget), and the expensive *expert* runs on those tiles only
(`fieldvision.models.mil.MILExpert` with a tile mask).

Tile order is row-major everywhere: tile ``k`` is grid row ``k // cols``, column
``k % cols``, as in `fieldvision.ops.tiling` and in the scouter's ``Tensor[B, R, C]`` map
(flatten it to ``Tensor[B, T]``). Boxes are ``(x1, y1, x2, y2)`` pixel indices, half-open
(``x2`` and ``y2`` excluded), so a box's width is ``x2 − x1``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from fieldvision.errors import ConfigError
from fieldvision.ops.tiling import global_view, grid_tiles

__all__ = ["binary_entropy", "cut_tiles", "select_tiles", "tile_boxes", "unseen_evidence"]

_LN2 = math.log(2.0)


def binary_entropy(p: Tensor) -> Tensor:
    """Entropy in bits of a Bernoulli(p): ``−p log₂ p − (1 − p) log₂ (1 − p)``.

    Args:
        p: Tensor of probabilities (any shape), clamped to [0, 1]; ``0 log 0 = 0``.

    Returns:
        Tensor of the same shape in [0, 1]: 0 for a certain outcome, 1 at ``p = 0.5``.
    """
    p = p.clamp(0.0, 1.0)
    q = 1.0 - p
    return -(torch.xlogy(p, p) + torch.xlogy(q, q)) / _LN2


def unseen_evidence(ranked: Tensor) -> Tensor:
    """Probability that some tile not yet looked at holds evidence, after each glance step.

    With tiles ranked by score and the top ``k`` looked at, the unseen tiles are ranks
    ``k+1 … T``; read as independent probabilities, at least one of them holds evidence
    with probability ``1 − Π_{j > k} (1 − p_j)`` (0 once every tile is seen).

    Args:
        ranked: Tensor[B, T] tile probabilities in [0, 1], sorted in decreasing order.

    Returns:
        Tensor[B, T] float64: column ``k − 1`` is the probability after looking at ``k``
        tiles (``k = 1 … T``).
    """
    p = ranked.detach().double().clamp(0.0, 1.0 - 1e-12)  # (B, T); 1 would give log(0)
    log_clean = torch.log1p(-p)  # (B, T) log P(tile j holds no evidence)
    suffix = log_clean.flip(1).cumsum(1).flip(1)  # (B, T) sum over ranks j..T
    after = torch.cat([suffix[:, 1:], suffix.new_zeros((p.shape[0], 1))], dim=1)  # ranks > k
    return -torch.expm1(after)  # (B, T)


def select_tiles(
    scores: Tensor, budget: float, min_tiles: int = 1, stop_entropy: float = 0.5
) -> tuple[Tensor, Tensor]:
    """Pick the tiles the expert should look at, from the scouter's tile probabilities.

    Rule, per image (``T`` tiles):

    1. ``K_max = min(T, max(min_tiles, ceil(budget · T)))`` tiles at most (``budget · T``
       is rounded to 9 decimals first, so ``0.3 · 10`` is 3, not 4);
    2. tiles are ranked by score, highest first; equal scores rank by tile index;
    3. the top ``min(min_tiles, T)`` tiles are always kept;
    4. after ``k`` kept tiles, the glance goes on to the next one (up to ``K_max``) while
       the evidence left in the unseen tiles (`unseen_evidence`: the probability that at
       least one of ranks ``k+1 … T`` holds evidence) is *likely* (≥ 0.5) or *uncertain*
       (its binary entropy in bits is ≥ `stop_entropy`); it stops once the scouter is
       confident that nothing it has not looked at matters.

    The rule reads the scores as probabilities, so it needs a calibrated scouter
    (`fieldvision.pipelines.mil.calibration`): a confidently clean image (every tile
    near 0) costs ``min_tiles`` expert calls; a suspicious one, or one where many tiles
    each carry a little doubt, the whole budget. It asks about the *whole* unseen rest,
    not the next tile alone: 63 tiles at 1 % each leave a 47 % chance of evidence, which
    is no reason to stop. ``stop_entropy=0`` always spends the budget; ``> 1`` stops as
    soon as the evidence left is below one half.

    Args:
        scores: Tensor[B, T] scouter tile probabilities in [0, 1].
        budget: Fraction of the tiles the expert may see, in (0, 1].
        min_tiles: Tiles always kept (≥ 1), even above the budget.
        stop_entropy: Entropy (bits, in [0, 1]) from which the evidence left counts as
            uncertain; values above 1 make nothing uncertain.

    Returns:
        ``(mask: Tensor[B, T] bool, k: Tensor[B] int64)``: the selected tiles (in the
        original tile order) and how many there are per image (``k ≥ 1``).

    Raises:
        ConfigError: `budget` not in (0, 1], ``min_tiles < 1`` or a negative `stop_entropy`.
        ValueError: `scores` is not a non-empty Tensor[B, T].
    """
    if not 0.0 < budget <= 1.0:
        raise ConfigError(f"glance budget must be in (0, 1], got {budget}")
    if int(min_tiles) < 1:
        raise ConfigError(f"min_tiles must be >= 1, got {min_tiles}")
    if not stop_entropy >= 0.0:  # also refuses NaN
        raise ConfigError(f"stop_entropy must be >= 0 (bits), got {stop_entropy}")
    if scores.ndim != 2 or scores.shape[1] == 0:
        raise ValueError(f"scores must be Tensor[B, T] with T >= 1, got {tuple(scores.shape)}")
    t = scores.shape[1]
    k_min = min(int(min_tiles), t)
    k_max = min(t, max(k_min, math.ceil(round(budget * t, 9))))
    s = scores.detach().float()  # (B, T)
    order = torch.sort(s, dim=1, descending=True, stable=True).indices  # (B, T)
    left = unseen_evidence(s.gather(1, order))  # (B, T): after looking at k = 1..T tiles
    go_on = (left >= 0.5) | (binary_entropy(left) >= stop_entropy)  # (B, T)
    # Rank j (0-based) is looked at when the glance went on after j tiles.
    keep = torch.cat([torch.ones_like(go_on[:, :1]), go_on[:, :-1]], dim=1)  # (B, T)
    keep[:, :k_min] = True
    keep = keep.long().cumprod(dim=1).bool()  # (B, T): False from the first stop on
    keep[:, k_max:] = False
    mask = torch.zeros_like(keep).scatter_(1, order, keep)  # (B, T) in tile order
    return mask, keep.sum(dim=1)


def _edges(n: int, parts: int) -> np.ndarray:
    """``parts + 1`` integer boundaries ``round(i · n / parts)`` (half up), 0 to n."""
    i = np.arange(parts + 1, dtype=np.int64)
    return (2 * i * n + parts) // (2 * parts)


def tile_boxes(height: int, width: int, rows: int, cols: int, overlap: float = 0.0) -> np.ndarray:
    """Pixel boxes of a ``rows × cols`` tiling of a ``height × width`` image.

    Without overlap the tiles partition the image exactly: column boundaries are
    ``round(j · W / cols)`` (half up), row boundaries ``round(i · H / rows)``, so uneven
    sizes differ by at most one pixel. With overlap, every tile grows by
    ``round(overlap · its width)`` pixels left and right (``· its height`` top and bottom)
    and is clipped to the image.

    Args:
        height: Image height ``H`` (≥ 1).
        width: Image width ``W`` (≥ 1).
        rows: Tile rows, in [1, H].
        cols: Tile columns, in [1, W].
        overlap: Fraction of a tile's size added on each side (≥ 0).

    Returns:
        np.ndarray[T, 4] int64 of half-open ``(x1, y1, x2, y2)`` boxes, ``T = rows · cols``,
        row-major.

    Raises:
        ValueError: Empty image, a grid finer than the pixels, or a negative overlap.
    """
    height, width, rows, cols = int(height), int(width), int(rows), int(cols)
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    if not (1 <= rows <= height and 1 <= cols <= width):
        raise ValueError(
            f"a {rows}x{cols} tile grid does not fit a {height}x{width} image "
            "(need 1 <= rows <= H and 1 <= cols <= W)"
        )
    if not (math.isfinite(overlap) and overlap >= 0):
        raise ValueError(f"overlap must be a finite number >= 0, got {overlap}")
    xs, ys = _edges(width, cols), _edges(height, rows)  # (cols+1,), (rows+1,)
    x1, x2 = xs[:-1], xs[1:]  # (cols,)
    y1, y2 = ys[:-1], ys[1:]  # (rows,)
    if overlap > 0:
        px = np.floor(overlap * (x2 - x1) + 0.5).astype(np.int64)  # (cols,)
        py = np.floor(overlap * (y2 - y1) + 0.5).astype(np.int64)  # (rows,)
        x1, x2 = np.maximum(x1 - px, 0), np.minimum(x2 + px, width)
        y1, y2 = np.maximum(y1 - py, 0), np.minimum(y2 + py, height)
    boxes = np.empty((rows, cols, 4), dtype=np.int64)
    boxes[..., 0] = x1[None, :]
    boxes[..., 1] = y1[:, None]
    boxes[..., 2] = x2[None, :]
    boxes[..., 3] = y2[:, None]
    return boxes.reshape(rows * cols, 4)


def _as_boxes(boxes: np.ndarray | Tensor | Sequence[Sequence[int]], h: int, w: int) -> np.ndarray:
    """Validated np.ndarray[T, 4] int64 of boxes inside an ``h × w`` image."""
    if isinstance(boxes, Tensor):
        boxes = boxes.detach().cpu().numpy()
    arr = np.asarray(boxes)
    if arr.ndim != 2 or arr.shape[1] != 4 or arr.shape[0] == 0:
        raise ValueError(f"boxes must be a non-empty array [T, 4], got shape {arr.shape}")
    integral = arr.dtype.kind in "iu" or (
        arr.dtype.kind == "f" and np.array_equal(arr, np.floor(arr))
    )
    if not integral:
        raise ValueError("boxes must hold integer pixel coordinates")
    arr = arr.astype(np.int64)
    x1, y1, x2, y2 = arr.T
    bad = (x1 < 0) | (y1 < 0) | (x2 > w) | (y2 > h) | (x2 <= x1) | (y2 <= y1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(f"box {first} {arr[first].tolist()} is empty or outside the {h}x{w} image")
    return arr


def _even_grid(boxes: np.ndarray, h: int, w: int) -> tuple[int, int] | None:
    """``(rows, cols)`` when `boxes` is the exact row-major tiling of an evenly divisible
    ``h × w`` image (so `grid_tiles` can cut it with one reshape), else None."""
    th, tw = int(boxes[0, 3] - boxes[0, 1]), int(boxes[0, 2] - boxes[0, 0])
    if h % th or w % tw:
        return None
    rows, cols = h // th, w // tw
    if rows * cols != boxes.shape[0]:
        return None
    if not np.array_equal(boxes, tile_boxes(h, w, rows, cols)):
        return None
    return rows, cols


def cut_tiles(
    image: Tensor, boxes: np.ndarray | Tensor | Sequence[Sequence[int]], size: int
) -> Tensor:
    """Crop boxes out of images and resize every crop to ``size × size`` (antialiased).

    An exact, evenly divisible row-major grid (`tile_boxes` with ``overlap=0`` on an image
    whose sides divide by the grid) takes a vectorised path: one reshape of the image and
    one batched resize. Other boxes of one size (a subset of such a grid, as glance
    selects) are sliced and resized in one batch; boxes of mixed sizes (overlap at the
    border, uneven grids) are cut and resized one by one. All paths give the same tiles;
    gradients flow to `image`.

    Args:
        image: Tensor[C, H, W] or Tensor[B, C, H, W] (C = 3 for RGB), any float dtype.
        boxes: [T, 4] half-open ``(x1, y1, x2, y2)`` integer boxes inside the image.
        size: Side of the output tiles (≥ 1).

    Returns:
        Tensor[T, C, size, size] for a single image, Tensor[B, T, C, size, size] for a
        batch, in the order of `boxes`.

    Raises:
        ValueError: Bad image shape, `size` < 1, or a box that is empty or outside the image.
    """
    if image.ndim not in (3, 4):
        raise ValueError(f"image must be Tensor[C, H, W] or [B, C, H, W], got {tuple(image.shape)}")
    if int(size) < 1:
        raise ValueError(f"tile size must be >= 1, got {size}")
    size = int(size)
    x = image if image.ndim == 4 else image.unsqueeze(0)  # (B, C, H, W)
    b, c, h, w = x.shape
    arr = _as_boxes(boxes, h, w)  # (T, 4)
    t = arr.shape[0]
    grid = _even_grid(arr, h, w)
    if grid is not None:
        tiles = grid_tiles(x, *grid).flatten(0, 1)  # (B*T, C, h/r, w/c)
        out = global_view(tiles, (size, size)).view(b, t, c, size, size)
    elif len({(y2 - y1, x2 - x1) for x1, y1, x2, y2 in arr.tolist()}) == 1:
        # Equal-sized boxes (a glance selection from an even grid): crop by slicing, then
        # one batched resize instead of one call per tile; same result (images resize
        # independently), a fraction of the per-call overhead.
        crops = torch.stack([x[:, :, y1:y2, x1:x2] for x1, y1, x2, y2 in arr.tolist()], 1)
        flat = global_view(crops.flatten(0, 1), (size, size))  # (B*T, C, size, size)
        out = flat.view(b, t, c, size, size)
    else:
        crops = [
            global_view(x[:, :, y1:y2, x1:x2], (size, size))  # (B, C, size, size)
            for x1, y1, x2, y2 in arr.tolist()
        ]
        out = torch.stack(crops, dim=1)  # (B, T, C, size, size)
    return out if image.ndim == 4 else out[0]
