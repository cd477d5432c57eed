"""Drawing primitives for `render_pasture`: random fields, stroke canvas, stamp, strip."""

from __future__ import annotations

import math

import cv2
import numpy as np


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Zero-mean, unit-sd smooth random field [h, w] float32 (bicubic upsampled noise)."""
    h, w = shape
    grid = rng.standard_normal((cells + 1, 2 * cells + 1)).astype(np.float32)
    f = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    f -= f.mean()
    return f / (f.std() + 1e-6)


def _uniform_noise(rng: np.random.Generator, shape: tuple[int, int], half: float) -> np.ndarray:
    """Zero-mean uniform noise in [-half, half) as float32 (sd = half / sqrt(3))."""
    noise = rng.random(shape, dtype=np.float32)
    noise -= 0.5
    noise *= 2 * half
    return noise


def _sample_positions(
    rng: np.random.Generator, density: np.ndarray, n: int, size: tuple[int, int]
) -> np.ndarray:
    """`n` points [n, 2] (x, y) in pixels, distributed proportionally to `density` [h, w]."""
    H, W = size
    h, w = density.shape
    p = density.ravel().astype(np.float64)
    idx = rng.choice(p.size, size=n, p=p / p.sum())
    u = rng.random((n, 2))
    x = (idx % w + u[:, 0]) * (W / w)
    y = (idx // w + u[:, 1]) * (H / h)
    return np.stack([x, y], 1).astype(np.float32)


class _Canvas:
    """Integer label image with a margin, so strokes crossing the border need no clipping.

    Every painted pixel stores ``stroke * LEVELS + level``: which stroke covers it (later
    strokes overwrite earlier ones, i.e. occlude them) and a shading level along that stroke
    (base to tip, rim to centre). Colours are looked up per pixel at the end from a small
    table, far cheaper than carrying an RGB value for each of the ~10^6 stroke samples.
    """

    LEVELS = 4

    def __init__(self, size: tuple[int, int], margin: int) -> None:
        self.H, self.W = size
        self.m = margin
        self.Wp = self.W + 2 * margin
        self.codes = np.full((self.H + 2 * margin) * self.Wp, -1, dtype=np.int32)

    def paint(self, x: np.ndarray, y: np.ndarray, levels: np.ndarray, first_stroke: int) -> None:
        """Paint samples x, y [n, k] of strokes ``first_stroke .. first_stroke + n - 1``.

        `levels` [k] int32 in ``[0, LEVELS)`` is the shading level of each sample position.
        """
        n, k = x.shape
        # floor(v + 0.5) of a positive number = round half up; the margin keeps it positive.
        xi = (x + (self.m + 0.5)).astype(np.int32)  # (n, k)
        yi = (y + (self.m + 0.5)).astype(np.int32)
        flat = yi * self.Wp + xi
        stroke = np.arange(first_stroke, first_stroke + n, dtype=np.int32)[:, None]
        # NumPy assigns repeated indices in order: the last stroke painted wins.
        self.codes[flat.ravel()] = (stroke * self.LEVELS + levels[None, :k]).ravel()

    def labels(self) -> np.ndarray:
        """Codes of the visible area [H, W] int32 (-1 = soil)."""
        full = self.codes.reshape(self.H + 2 * self.m, self.Wp)
        return full[self.m : self.m + self.H, self.m : self.m + self.W]


def _blade_samples(
    rng: np.random.Generator, centres: np.ndarray, length: float, width: int, bend: float
) -> tuple[np.ndarray, np.ndarray]:
    """Curved strokes (parabolic arcs) as pixel samples ``x, y`` [n, width * P].

    Sample ``j`` lies at ``t = (j % P) / (P - 1)`` along the stroke (0 = base, 1 = tip).
    """
    n = len(centres)
    theta = rng.uniform(0, np.pi, n).astype(np.float32)
    lengths = length * rng.uniform(0.6, 1.4, n).astype(np.float32)
    cos, sin = np.cos(theta), np.sin(theta)
    bow = lengths * rng.uniform(-bend, bend, n).astype(np.float32)
    P = _blade_steps(length)
    t = np.linspace(-0.5, 0.5, P, dtype=np.float32)[None, :]  # (1, P)
    # Along-axis offset u = t * L, sideways bow 4 * bow * (1/4 - t^2): a parabola.
    u = t * lengths[:, None]  # (n, P)
    v = (0.25 - t**2) * (4 * bow)[:, None]
    x = centres[:, 0:1] + u * cos[:, None] - v * sin[:, None]
    y = centres[:, 1:2] + u * sin[:, None] + v * cos[:, None]
    if width > 1:
        off = np.arange(width, dtype=np.float32) - (width - 1) / 2  # across the blade
        x = (x[:, None, :] - off[None, :, None] * sin[:, None, None]).reshape(n, -1)
        y = (y[:, None, :] + off[None, :, None] * cos[:, None, None]).reshape(n, -1)
    return x, y  # (n, width * P) each


def _blade_steps(length: float) -> int:
    # One sample per pixel of the longest stroke (1.4 x mean) plus the bow.
    return int(math.ceil(1.5 * length)) + 2


def _disc_offsets(radius: float) -> np.ndarray:
    r = max(radius, 0.5)
    k = int(math.ceil(r))
    dy, dx = np.mgrid[-k : k + 1, -k : k + 1]
    inside = dx**2 + dy**2 <= r**2 + 0.25
    return np.stack([dx[inside], dy[inside]], 1).astype(np.float32)  # (m, 2) (x, y)


def _draw_strip(img: np.ndarray, kind: str, rng: np.random.Generator) -> int:
    """Bottom artifact inside the default 10 % crop: shadow band, metal frame or tape."""
    H, W = img.shape[:2]
    rows = max(1, int(round(H * rng.uniform(0.03, 0.08))))
    y0 = H - rows
    if kind == "shadow":
        ramp = np.clip((np.arange(H, dtype=np.float32) - (y0 - 3)) / 4, 0, 1)
        img *= (1 - float(rng.uniform(0.5, 0.7)) * ramp)[:, None, None]
    elif kind == "frame":
        grey = float(rng.uniform(150, 190))
        band = np.array([grey, grey, grey + 6], np.float32)
        img[y0:] = band * (1 + 0.05 * rng.standard_normal((rows, W, 1)).astype(np.float32))
    elif kind == "tape":
        img[y0:] = np.array([212, 206, 188], np.float32)
        step = max(4, W // 40)
        img[y0 : y0 + max(1, rows // 2), ::step] = 40.0
    else:
        raise ValueError(f"unknown strip kind {kind!r}")
    return rows


def _draw_stamp(img: np.ndarray, text: str, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """Print `text` in saturated orange in the bottom-right corner; return its box."""
    H, W = img.shape[:2]
    font = cv2.FONT_HERSHEY_SIMPLEX
    (tw1, th1), _ = cv2.getTextSize(text, font, 1.0, 1)
    # Camera stamps are ~4.5 % of the image height; never below 7 px so they stay legible.
    target_h = max(0.045 * H, 7.0)
    # ...but never wider than 45 % of the image, so they stay in the right half.
    scale = min(target_h / th1, 0.45 * W / tw1)
    thick = max(2, int(round(scale * 2.2)))  # thin strokes lose their colour in JPEG
    (tw, th), base = cv2.getTextSize(text, font, scale, thick)
    x = W - tw - int(round(W * rng.uniform(0.02, 0.04)))
    # The baseline sits above the default 10 % bottom crop, so cropping alone cannot hide it.
    y = int(round(H * (1 - rng.uniform(0.09, 0.13))))
    # On tiny images the 7 px minimum could push the text out of the bottom quarter, where
    # real cameras (and `date_stamp_mask`) put it; keep it there.
    y = min(max(y, math.ceil(0.76 * H) + th + thick), H - base - 1)
    colour = (255, int(rng.integers(120, 170)), int(rng.integers(0, 30)))  # RGB orange
    cv2.putText(img, text, (x, y), font, scale, colour, thick, cv2.LINE_AA)
    return (max(y - th - thick, 0), max(x - thick, 0), min(y + base, H), min(x + tw + thick, W))
