"""PNG of a presence heatmap for the dashboard: the grid drawn in camera pixels, with axes
and a colour bar, so a count can be read off the image.

The grid itself comes from `fieldvision.tracking.heatmaps.presence_heatmap`: distinct tracks
per cell, so one person who waits a minute does not outweigh sixty who walk past.
"""

from __future__ import annotations

import io

import numpy as np

__all__ = ["render_png"]


def render_png(grid: np.ndarray, width: int, height: int, title: str) -> bytes:
    """The grid as a PNG in the camera's pixel coordinates, with a colour bar."""
    # Figure + Agg canvas, not pyplot: pyplot keeps global state and is not thread-safe, and
    # the service renders in worker threads.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    aspect = height / max(width, 1)
    fig = Figure(figsize=(6.4, max(2.0, 6.4 * aspect * 0.9 + 0.6)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(
        grid,
        extent=(0, width, height, 0),
        cmap="inferno",
        interpolation="nearest",
        vmin=0,
        vmax=max(int(grid.max(initial=0)), 1),
    )
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("x (px)", fontsize=8)
    ax.set_ylabel("y (px)", fontsize=8)
    ax.tick_params(labelsize=7)
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
    bar.set_label("distinct tracks per cell", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
