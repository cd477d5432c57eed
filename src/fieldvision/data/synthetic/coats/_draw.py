"""Drawing primitives of the coat generator: sub-pixel ellipses and smooth noise."""

from __future__ import annotations

import cv2
import numpy as np


def _ellipse(canvas: np.ndarray, cx: float, cy: float, ax: float, ay: float, angle: float) -> None:
    # Sub-pixel ellipse: OpenCV takes fixed-point coordinates with `shift` fractional bits.
    f = 16
    cv2.ellipse(
        canvas,
        (round(cx * f), round(cy * f)),
        (max(1, round(ax * f)), max(1, round(ay * f))),
        angle,
        0,
        360,
        255,
        -1,
        cv2.LINE_AA,
        4,
    )


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Smooth noise in [0, 1]: a small random grid upsampled with bicubic interpolation."""
    grid = rng.random((cells, cells)).astype(np.float32)
    out = cv2.resize(grid, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    return np.clip(out, 0.0, 1.0)
