"""Hard negatives: lesion-like marks that are not disease and never enter the lesion mask.

Every class (healthy included) gets them at the same rate, so they are no shortcut:

* ``soil_speck``: dark-brown splashes of mud, like brown spots without the yellow halo;
* ``droplet``: water drops, bright and grey with a dark rim and a glint, like blast centres;
* ``glare``: an elongated specular streak along the blade, like a pale blast spindle;
* ``debris``: straw fragments, dead-leaf bits, empty husks and yellowed weed leaflets;
* ``dead_tip``: senescent yellow-to-straw browning of a visible tip, like blight.

``rate`` is the probability that an image has any (then ``1 + Poisson(1.5 rate)`` of them).
"""

from __future__ import annotations

import math

import numpy as np

from fieldvision.data.synthetic.leaves._draw import (
    Patch,
    blob_points,
    ellipse_points,
    paint,
    polygon_patch,
    region,
)
from fieldvision.data.synthetic.leaves._leaf import LeafCanvas, sample_leaf_point
from fieldvision.data.synthetic.leaves._scene import SceneStyle

DISTRACTOR_KINDS = ("soil_speck", "droplet", "glare", "debris", "dead_tip")
_WEIGHTS = np.array([0.25, 0.25, 0.1, 0.2, 0.2])
_Point = tuple[int, float, float]  # (blade index, along, off), see `sample_leaf_point`


def add_distractors(
    canvas: LeafCanvas, style: SceneStyle, rng: np.random.Generator, rate: float
) -> np.ndarray:
    """Paint 0 or more distractors onto the canvas (in place).

    Args:
        canvas: The scene; its image is modified.
        style: The image's style (soil colour, light direction).
        rng: Generator of the image.
        rate: Probability in [0, 1] that the image gets at least one.

    Returns:
        bool[H, W], True where a distractor covers at least half a pixel.
    """
    covered = np.zeros(canvas.top.shape, bool)
    if rate <= 0.0 or rng.random() >= rate:
        return covered
    for _ in range(1 + int(rng.poisson(1.5 * rate))):
        tip = _visible_tip(canvas)
        weights = _WEIGHTS.copy()
        if tip is None:
            weights[DISTRACTOR_KINDS.index("dead_tip")] = 0.0
        kind = DISTRACTOR_KINDS[int(rng.choice(len(weights), p=weights / weights.sum()))]
        if kind == "dead_tip" and tip is not None:
            patches = _dead_tip(canvas, rng, tip)
        else:
            point = sample_leaf_point(canvas, rng, across=(0.0, 0.9))
            if point is None:
                continue
            patches = _DRAW[kind](canvas, style, rng, point)
        for patch in patches:
            covered[patch.slices] |= patch.alpha >= 0.5
    return covered


def _frame_point(canvas: LeafCanvas, point: _Point) -> tuple[float, float, float]:
    """``(x, y, local axis angle)`` of a blade point."""
    blade = canvas.blades[point[0]]
    (x, y), (x2, y2) = blade.to_image(np.array([point[1], point[1] + 1.0]), np.full(2, point[2]))
    return float(x), float(y), math.atan2(y2 - y, x2 - x)


def _size(canvas: LeafCanvas) -> float:
    return float(min(canvas.top.shape))


def _soil_speck(
    canvas: LeafCanvas, style: SceneStyle, rng: np.random.Generator, point: _Point
) -> list[Patch]:
    x, y, _ = _frame_point(canvas, point)
    s, out = _size(canvas), []
    dry = rng.random() < 0.3  # dried mud is paler
    for _ in range(int(rng.integers(1, 6))):
        r = s * rng.uniform(0.004, 0.018)
        cx, cy = x + rng.normal(0, 2.5 * r), y + rng.normal(0, 2.5 * r)
        patch = polygon_patch(blob_points(rng, cx, cy, r, 0.35), canvas.top.shape, 0.5)
        if patch is None:
            continue
        tone = np.asarray(style.ground) * (rng.uniform(0.8, 1.0) if dry else rng.uniform(0.35, 0.7))
        paint(canvas.image, patch, tone * rng.uniform(0.92, 1.08, 3), rng.uniform(0.85, 1.0))
        out.append(patch)
    return out


def _droplet(
    canvas: LeafCanvas, style: SceneStyle, rng: np.random.Generator, point: _Point
) -> list[Patch]:
    x, y, axis = _frame_point(canvas, point)
    s, out = _size(canvas), []
    lx, ly = -math.cos(style.light_angle), -math.sin(style.light_angle)  # towards the light
    for k in range(int(rng.integers(1, 6))):
        r = s * rng.uniform(0.006, 0.025) * (1.0 if k == 0 else rng.uniform(0.4, 0.9))
        cx, cy = (x, y) if k == 0 else (x + rng.normal(0, 5 * r), y + rng.normal(0, 2 * r))
        ar = rng.uniform(1.0, 1.5)
        body = polygon_patch(ellipse_points(cx, cy, r * ar, r, axis), canvas.top.shape, 0.5)
        if body is None:
            continue
        under = region(canvas.image, body)
        lum = under.mean(axis=0, keepdims=True)
        paint(canvas.image, body, 0.8 * lum + 0.2 * under + rng.uniform(30, 60), 0.9)
        rim = polygon_patch(
            ellipse_points(cx - 0.3 * r * lx, cy - 0.3 * r * ly, r * ar, r, axis),
            canvas.top.shape,
            0.5,
        )
        if rim is not None:  # the shadow side of the drop: a dark crescent
            dark = Patch(rim.y0, rim.x0, np.clip(rim.alpha - _crop(body, rim), 0, 1))
            paint(canvas.image, dark, region(canvas.image, rim) * 0.5, 0.7)
        glint = polygon_patch(
            ellipse_points(cx + 0.4 * r * lx, cy + 0.4 * r * ly, 0.35 * r, 0.25 * r, axis),
            canvas.top.shape,
            max(0.4, 0.1 * r),
        )
        if glint is not None:
            paint(canvas.image, glint, np.array([252.0, 252.0, 248.0]), 0.9)
        out.append(body)
    return out


def _crop(src: Patch, like: Patch) -> np.ndarray:
    """`src`'s alpha resampled onto `like`'s crop (zero where they do not overlap)."""
    out = np.zeros_like(like.alpha)
    (ys, xs), (yl, xl) = src.slices, like.slices
    y0, y1 = max(ys.start, yl.start), min(ys.stop, yl.stop)
    x0, x1 = max(xs.start, xl.start), min(xs.stop, xl.stop)
    if y1 > y0 and x1 > x0:
        out[y0 - like.y0 : y1 - like.y0, x0 - like.x0 : x1 - like.x0] = src.alpha[
            y0 - src.y0 : y1 - src.y0, x0 - src.x0 : x1 - src.x0
        ]
    return out


def _spindle(x: float, y: float, axis: float, length: float, width: float) -> np.ndarray:
    """A pointed, elongated polygon centred on ``(x, y)`` along `axis` (frame points)."""
    t = np.linspace(-1, 1, 17)
    hw = width * (1 - np.abs(t) ** 1.5)
    local = np.concatenate([np.stack([t * length, hw], 1), np.stack([t * length, -hw], 1)[::-1]])
    c, s = math.cos(axis), math.sin(axis)
    return np.stack(
        [x + local[:, 0] * c - local[:, 1] * s, y + local[:, 0] * s + local[:, 1] * c], 1
    )


def _glare(
    canvas: LeafCanvas, style: SceneStyle, rng: np.random.Generator, point: _Point
) -> list[Patch]:
    x, y, axis = _frame_point(canvas, point)
    length = _size(canvas) * rng.uniform(0.03, 0.12)
    width = length / rng.uniform(3.0, 8.0)
    out = []
    for grow, opacity in ((1.0, rng.uniform(0.45, 0.7)), (0.55, rng.uniform(0.8, 0.95))):
        pts = _spindle(x, y, axis, length * grow, width * grow)
        patch = polygon_patch(pts, canvas.top.shape, max(0.5, 0.3 * width * grow))
        if patch is not None:  # a soft sheen around a near-white core
            paint(canvas.image, patch, np.array([238.0, 240.0, 232.0]), opacity)
            out.append(patch)
    return out


def _debris(
    canvas: LeafCanvas, style: SceneStyle, rng: np.random.Generator, point: _Point
) -> list[Patch]:
    x, y, axis = _frame_point(canvas, point)
    s, frame = _size(canvas), canvas.top.shape
    kind = int(rng.choice(4))
    if kind == 0:  # a straw fragment: a thin, slightly bent strip
        length, width = s * rng.uniform(0.03, 0.12), s * rng.uniform(0.003, 0.01)
        a = axis + rng.normal(0, 0.8)
        t = np.linspace(-0.5, 0.5, 6)
        bend = rng.uniform(-0.1, 0.1) * length * (t * t - 0.25)
        cx, cy = x + length * t * math.cos(a), y + length * t * math.sin(a)
        nx, ny = -math.sin(a), math.cos(a)
        top = np.stack([cx + (bend + width) * nx, cy + (bend + width) * ny], 1)
        bottom = np.stack([cx + (bend - width) * nx, cy + (bend - width) * ny], 1)
        pts, tone = np.concatenate([top, bottom[::-1]]), (185.0, 160.0, 105.0)
    elif kind == 1:  # a dead-leaf bit
        pts = blob_points(rng, x, y, s * rng.uniform(0.008, 0.025), 0.45, 9)
        tone = (125.0, 85.0, 45.0)
    else:  # an empty husk (straw oval with a dark ridge) or a yellowed weed leaflet
        r, tilt = s * rng.uniform(0.006, 0.02), axis + rng.normal(0, 1.0)
        pts = ellipse_points(x, y, 2.3 * r, (1.0 if kind == 2 else 0.8) * r, tilt)
        tone = (180.0, 150.0, 80.0) if kind == 2 else (172.0, 158.0, 62.0)
    patch = polygon_patch(pts, frame, 0.5)
    if patch is None:
        return []
    paint(canvas.image, patch, np.asarray(tone) * rng.uniform(0.85, 1.15, 3), rng.uniform(0.85, 1))
    if kind == 2:
        ridge = polygon_patch(ellipse_points(x, y, 1.8 * r, 0.3 * r, tilt), frame, 0.5)
        if ridge is not None:
            paint(canvas.image, ridge, np.array([120.0, 85.0, 45.0]), 0.8)
    return [patch]


def _visible_tip(canvas: LeafCanvas) -> int | None:
    """Index of the topmost blade whose tip is visible in the frame, or None."""
    h, w = canvas.top.shape
    for idx in range(len(canvas.blades) - 1, -1, -1):
        b = canvas.blades[idx]
        x, y = b.to_image(np.array([b.length - 0.03 * b.taper]), np.zeros(1))[0]
        if 0 <= x < w and 0 <= y < h and canvas.top[int(y), int(x)] == idx:
            return idx
    return None


def _dead_tip(canvas: LeafCanvas, rng: np.random.Generator, idx: int) -> list[Patch]:
    b, frame = canvas.blades[idx], canvas.top.shape
    depth = min(b.length, _size(canvas) * rng.uniform(0.08, 0.3))
    on_blade = canvas.top == idx
    out = []
    for frac, tone in ((1.0, (205, 182, 85)), (rng.uniform(0.3, 0.7), (168, 140, 92))):
        off = np.linspace(-1.1, 1.1, 13)
        start = b.length - frac * depth * (
            1 + 0.15 * np.sin(rng.uniform(2, 6) * off + rng.uniform(0, 6))
        )
        edge = b.to_image(start, off * b.halfwidth(start))
        tip = b.to_image(np.full(2, b.length + 2.0), np.array([1.0, -1.0]) * 2.0)
        patch = polygon_patch(np.concatenate([edge, tip]), frame, 0.02 * _size(canvas))
        if patch is None:
            continue
        patch = Patch(patch.y0, patch.x0, patch.alpha * on_blade[patch.slices])
        paint(canvas.image, patch, np.asarray(tone, np.float32) * rng.uniform(0.9, 1.1, 3), 0.95)
        out.append(patch)
    return out


_DRAW = {"soil_speck": _soil_speck, "droplet": _droplet, "glare": _glare, "debris": _debris}
