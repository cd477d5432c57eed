"""Drawing primitives of the leaf generator: smooth noise and sub-pixel polygons in crops.

Lesions and distractors are small, so everything about them is drawn and composited in a
crop around their bounding box (a `Patch`) instead of on full-frame canvases.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

_SHIFT = 4  # fractional bits of OpenCV's fixed-point polygon coordinates
_ONE = 1 << _SHIFT


@dataclass(frozen=True)
class Patch:
    """A crop of the frame and a weight map over it.

    Attributes:
        y0: Top row of the crop in the frame.
        x0: Left column of the crop in the frame.
        alpha: float32[h, w] weights in [0, 1] (coverage of the drawn shape).
    """

    y0: int
    x0: int
    alpha: np.ndarray

    @property
    def slices(self) -> tuple[slice, slice]:
        """``(rows, cols)`` of the crop in the frame."""
        h, w = self.alpha.shape
        return slice(self.y0, self.y0 + h), slice(self.x0, self.x0 + w)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Smooth noise in [0, 1]: a random ``cells``-grid upsampled bicubically.

    Returns:
        float32[H, W].
    """
    grid = rng.random((cells, max(2, round(cells * shape[1] / shape[0])))).astype(np.float32)
    out = cv2.resize(grid, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    return np.clip(out, 0.0, 1.0)


def polygon_patch(
    points: np.ndarray,
    frame: tuple[int, int],
    blur: float = 0.0,
    antialias: bool = True,
) -> Patch | None:
    """Rasterise a filled polygon into a crop of the frame.

    Args:
        points: float[N, 2] vertices ``(x, y)`` in frame pixels (sub-pixel precision).
        frame: ``(H, W)`` of the frame the crop is clipped to.
        blur: Gaussian sigma in pixels of a soft edge (the crop is padded to fit it).
        antialias: Anti-aliased edge; False gives a hard 0/1 coverage (for masks).

    Returns:
        The patch, or None when the polygon lies outside the frame.
    """
    h, w = frame
    pad = int(math.ceil(3 * blur)) + 2
    x0 = max(0, int(math.floor(points[:, 0].min())) - pad)
    y0 = max(0, int(math.floor(points[:, 1].min())) - pad)
    x1 = min(w, int(math.ceil(points[:, 0].max())) + pad + 1)
    y1 = min(h, int(math.ceil(points[:, 1].max())) + pad + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    canvas = np.zeros((y1 - y0, x1 - x0), np.uint8)
    fixed = np.round((points - (x0, y0)) * _ONE).astype(np.int32)
    cv2.fillPoly(canvas, [fixed], 255, cv2.LINE_AA if antialias else cv2.LINE_8, _SHIFT)
    alpha = canvas.astype(np.float32) * (1.0 / 255.0)
    if blur > 0.3:
        alpha = cv2.GaussianBlur(alpha, (0, 0), blur)
    return Patch(y0, x0, alpha)


def region(image: np.ndarray, patch: Patch) -> np.ndarray:
    """The patch's crop of a planar image: a float32[3, h, w] view."""
    rows, cols = patch.slices
    return image[:, rows, cols]


def paint(image: np.ndarray, patch: Patch, colour: np.ndarray, weight: float = 1.0) -> None:
    """Composite `colour` over `image` in place, with the patch's alpha times `weight`.

    Images are planar (channels first) while they are composed: per-channel arithmetic on
    contiguous planes is several times faster than on interleaved RGB.

    Args:
        image: float32[3, H, W] planar RGB frame.
        patch: Where and how strongly to paint.
        colour: float[3] RGB, or float32[3, h, w] for the crop.
        weight: Opacity multiplier.
    """
    crop = region(image, patch)
    colour = np.asarray(colour, np.float32)
    if colour.ndim == 1:
        colour = colour[:, None, None]
    crop += (colour - crop) * (patch.alpha * np.float32(weight))


def ellipse_points(
    cx: float, cy: float, ax: float, ay: float, angle: float = 0.0, n: int = 24
) -> np.ndarray:
    """Vertices of an ellipse.

    Args:
        cx: Centre x.
        cy: Centre y.
        ax: Semi-axis along the rotated x axis.
        ay: Semi-axis along the rotated y axis.
        angle: Rotation in radians.
        n: Number of vertices.

    Returns:
        float64[n, 2] ``(x, y)``.
    """
    t = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    x, y = ax * np.cos(t), ay * np.sin(t)
    c, s = math.cos(angle), math.sin(angle)
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], axis=1)


def blob_points(
    rng: np.random.Generator, cx: float, cy: float, r: float, roughness: float = 0.3, n: int = 12
) -> np.ndarray:
    """An irregular round blob (a polygon with jittered radii), e.g. a speck of soil.

    Returns:
        float64[n, 2] ``(x, y)``.
    """
    t = np.sort(rng.uniform(0.0, 2 * math.pi, n))
    radii = r * (1.0 + roughness * rng.uniform(-1.0, 1.0, n))
    return np.stack([cx + radii * np.cos(t), cy + radii * np.sin(t)], axis=1)


def polygon_area(points: np.ndarray) -> float:
    """Area of a simple polygon (shoelace formula), in squared units of `points`."""
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
