"""Heatmaps of where people stand: presence (unique people per cell) and dwell (seconds).

Both are built from foot points on a grid of ``cell`` x ``cell`` pixel cells, from either
`Tracks` (every tracked frame) or plain ``(N, 2)`` points with their track ids (e.g. the
foot points of stored `EventType.POSITION` samples): one small core, `cell_index`, maps
points to cells for both. The last row/column of cells is partial when the image size is
not a multiple of ``cell``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fieldvision.tracking.detections import Tracks

__all__ = ["cell_index", "dwell_heatmap", "grid_shape", "presence_heatmap", "render_heatmap"]


def grid_shape(image_size: tuple[int, int], cell: int) -> tuple[int, int]:
    """``(H_cells, W_cells)`` for an image of ``(width, height)`` pixels."""
    width, height = (int(v) for v in image_size)
    if width <= 0 or height <= 0:
        raise ValueError(f"image_size must be positive (width, height), got {image_size}")
    if int(cell) <= 0:
        raise ValueError(f"cell must be a positive number of pixels, got {cell}")
    return -(-height // int(cell)), -(-width // int(cell))


def cell_index(points: np.ndarray, image_size: tuple[int, int], cell: int) -> np.ndarray:
    """Flat (row-major) cell of each point, -1 for points outside the image.

    A point on the right or bottom border (a box touching the image edge) belongs to the
    last cell, not outside.

    Args:
        points: ``(N, 2)`` ``x, y`` pixels.
        image_size: ``(width, height)``.
        cell: Cell side in pixels.

    Returns:
        ``(N,)`` int64 in ``[-1, H_cells * W_cells)``.
    """
    h_cells, w_cells = grid_shape(image_size, cell)
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    x, y = pts[:, 0], pts[:, 1]
    width, height = image_size
    ok = (x >= 0) & (x <= width) & (y >= 0) & (y <= height)  # NaN fails every test
    col = np.minimum(np.floor(np.where(ok, x, 0) / cell).astype(np.int64), w_cells - 1)
    row = np.minimum(np.floor(np.where(ok, y, 0) / cell).astype(np.int64), h_cells - 1)
    return np.where(ok, row * w_cells + col, -1)


def _foot_points(
    data: Tracks | np.ndarray, ids: Any, frames: tuple[int, int] | None
) -> tuple[np.ndarray, np.ndarray | None]:
    if isinstance(data, Tracks):
        if ids is not None:
            raise ValueError("ids come from the tracks; pass ids only with plain points")
        rows = data
        if frames is not None:
            rows = data[(data.frame >= frames[0]) & (data.frame <= frames[1])]
        return rows.bottom_center, rows.track_id
    if frames is not None:
        raise ValueError("frames filters Tracks only; select the points before the call")
    pts = np.asarray(data, dtype=np.float64).reshape(-1, 2)
    if ids is None:
        return pts, None
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    if ids.shape[0] != pts.shape[0]:
        raise ValueError(f"{ids.shape[0]} ids for {pts.shape[0]} points")
    return pts, ids


def presence_heatmap(
    data: Tracks | np.ndarray,
    image_size: tuple[int, int],
    cell: int = 16,
    *,
    ids: Any = None,
    frames: tuple[int, int] | None = None,
) -> np.ndarray:
    """How many different tracks ever stood in each cell.

    A person standing still for an hour counts 1 in their cell; a person walking across
    counts 1 in every cell they crossed.

    Args:
        data: `Tracks`, or ``(N, 2)`` foot points (then `ids` is required).
        image_size: ``(width, height)`` in pixels.
        cell: Cell side in pixels.
        ids: ``(N,)`` track id of each point, with plain points only.
        frames: Inclusive ``(first, last)`` frame range, with `Tracks` only.

    Returns:
        ``(H_cells, W_cells)`` int64 counts.
    """
    if not isinstance(data, Tracks) and ids is None:
        raise ValueError("presence needs the track id of every point (ids=...)")
    points, track_ids = _foot_points(data, ids, frames)
    shape = grid_shape(image_size, cell)
    cells = cell_index(points, image_size, cell)
    ok = cells >= 0
    pairs = np.unique(np.stack([cells[ok], track_ids[ok]], axis=1), axis=0)  # type: ignore[index]
    return np.bincount(pairs[:, 0], minlength=shape[0] * shape[1]).reshape(shape)


def dwell_heatmap(
    data: Tracks | np.ndarray,
    image_size: tuple[int, int],
    fps: float,
    cell: int = 16,
    *,
    frames: tuple[int, int] | None = None,
) -> np.ndarray:
    """Seconds spent in each cell, summed over tracks (two people for 1 s → 2 s).

    Each foot point stands for ``1 / fps`` seconds: for `Tracks` the video frame rate; for
    points sampled every ``sample_s`` seconds (POSITION events) pass ``fps=1 / sample_s``.

    Args:
        data: `Tracks`, or ``(N, 2)`` foot points.
        image_size: ``(width, height)`` in pixels.
        fps: Samples per second.
        cell: Cell side in pixels.
        frames: Inclusive ``(first, last)`` frame range, with `Tracks` only.

    Returns:
        ``(H_cells, W_cells)`` float64 seconds.
    """
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    points, _ = _foot_points(data, None, frames)
    shape = grid_shape(image_size, cell)
    cells = cell_index(points, image_size, cell)
    counts = np.bincount(cells[cells >= 0], minlength=shape[0] * shape[1])
    return (counts / float(fps)).reshape(shape)


def render_heatmap(
    grid: np.ndarray,
    image_size: tuple[int, int],
    *,
    background: np.ndarray | None = None,
    cell: int | None = None,
    cmap: str = "inferno",
    alpha: float = 0.6,
) -> np.ndarray:
    """Colour a heatmap at image resolution, optionally over a camera frame.

    Values are scaled by the grid's maximum; empty cells stay black, or show the
    background untouched.

    Args:
        grid: ``(H_cells, W_cells)`` from `presence_heatmap` or `dwell_heatmap`.
        image_size: ``(width, height)`` of the output.
        background: Optional ``(height, width, 3)`` uint8 RGB frame to blend over.
        cell: The grid's cell size, for exact alignment; ``None`` stretches the grid
            evenly over the image (exact when the image size is a multiple of the cell).
        cmap: A matplotlib colormap name.
        alpha: Opacity of the colours over the background.

    Returns:
        ``(height, width, 3)`` uint8 RGB, ready for PNG.
    """
    from matplotlib import colormaps

    grid = np.asarray(grid, dtype=np.float64)
    width, height = (int(v) for v in image_size)
    if grid.ndim != 2 or not grid.size:
        raise ValueError(f"grid must be a non-empty 2-D array, got shape {grid.shape}")
    if cell is None:
        rows = np.arange(height) * grid.shape[0] // height
        cols = np.arange(width) * grid.shape[1] // width
    else:
        if grid_shape((width, height), cell) != grid.shape:
            raise ValueError(f"grid {grid.shape} does not match {image_size} with cell {cell}")
        rows, cols = np.arange(height) // cell, np.arange(width) // cell
    peak = float(np.nanmax(grid)) if np.isfinite(grid).any() else 0.0
    scaled = np.nan_to_num(grid / peak) if peak > 0 else np.zeros_like(grid)
    colours = colormaps[cmap](scaled)[..., :3]  # (H_cells, W_cells, 3) floats in [0, 1]
    big = colours[rows[:, None], cols[None, :]]
    filled = (grid > 0)[rows[:, None], cols[None, :]]
    if background is None:
        out = np.where(filled[..., None], big, 0.0)
    else:
        bg = np.asarray(background)
        if bg.shape != (height, width, 3):
            raise ValueError(f"background must be ({height}, {width}, 3), got {bg.shape}")
        bg = bg.astype(np.float64) / 255.0
        out = np.where(filled[..., None], (1 - alpha) * bg + alpha * big, bg)
    return np.clip(np.round(out * 255), 0, 255).astype(np.uint8)
