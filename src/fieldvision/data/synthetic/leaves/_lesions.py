"""Disease lesions: three distinct looks, placed on the leaf, with an exact area budget.

* ``blast``: spindle (diamond) lesions along the blade, grey-white centre, brown margin
  and a faint yellowish halo;
* ``brown_spot``: small round / oval dark-brown spots in a yellow halo;
* ``blight``: long wavy yellow-orange streaks along the margin or a vein, with a dried
  straw-coloured centre.

A diseased image carries 1–4 lesions covering 0.2–3 % of the frame together (drawn
log-uniformly per image). Shapes are built in blade coordinates, so they follow the
blade's axis and curve; each lesion is clipped to the blade it sits on, and all lesions are
re-scaled until the union of their masks hits the drawn area.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fieldvision.data.synthetic.leaves._draw import (
    Patch,
    paint,
    polygon_area,
    polygon_patch,
    region,
    smooth_noise,
)
from fieldvision.data.synthetic.leaves._leaf import LeafCanvas, sample_leaf_point

LEAF_CLASSES: tuple[str, ...] = ("healthy", "blast", "brown_spot", "blight")
LESION_FRACTION = (0.002, 0.03)  # total lesion area / frame area of a diseased image
_TARGET = (0.0024, 0.027)  # drawn inside LESION_FRACTION, leaving room for rasterisation


@dataclass(frozen=True)
class _Layer:
    """A painted layer: unit-scale polygon in blade coordinates, colour, opacity, softness."""

    shape: np.ndarray  # float[N, 2] (along, off) offsets for a mask of area 1
    colour: np.ndarray  # float32[3]
    opacity: float
    blur: float  # edge softness, in units of the lesion's size (sqrt of its area)


@dataclass(frozen=True)
class _Lesion:
    blade: int
    along: float
    off: float
    outline: np.ndarray  # the mask polygon, area 1 at scale 1
    layers: tuple[_Layer, ...]


def _unit(points: np.ndarray) -> np.ndarray:
    return points / math.sqrt(polygon_area(points))


def _spindle(aspect: float, sharp: float = 1.5, n: int = 16) -> np.ndarray:
    t = np.linspace(-1.0, 1.0, n + 1)
    hw = (1.0 - np.abs(t) ** sharp) ** 0.9 / aspect
    return np.concatenate([np.stack([t, hw], 1), np.stack([t, -hw], 1)[::-1][1:-1]])


def _ellipse(aspect: float, n: int = 20) -> np.ndarray:
    a = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    return np.stack([math.sqrt(aspect) * np.cos(a), np.sin(a) / math.sqrt(aspect)], 1)


def _streak(rng: np.random.Generator, aspect: float, n: int = 32) -> np.ndarray:
    t = np.linspace(-1.0, 1.0, n + 1)
    env = np.sqrt(np.clip(1.0 - np.abs(t) ** 4, 0.0, 1.0)) / aspect
    sides = []
    for sign in (1.0, -1.0):
        f, p = rng.uniform(2.0, 6.0, 2), rng.uniform(0, 2 * math.pi, 2)
        wavy = 1.0 + 0.3 * np.sin(f[0] * math.pi * t + p[0]) + 0.15 * np.sin(f[1] * 7 * t + p[1])
        sides.append(np.stack([t, sign * env * wavy], 1))
    return np.concatenate([sides[0], sides[1][::-1][1:-1]])


def _roughen(points: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """Irregular margins: scale each vertex by a smoothed random factor around 1."""
    noise = rng.normal(0.0, 1.0, len(points))
    noise = (noise + np.roll(noise, 1) + np.roll(noise, -1)) / 3.0
    return _unit(points * (1.0 + amount * np.clip(noise, -2, 2))[:, None])


def _rotate(points: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return points @ np.array([[c, s], [-s, c]])


def _tone(rng: np.random.Generator, rgb: tuple[float, ...], spread: float = 0.08) -> np.ndarray:
    """float32[3]: `rgb` with a per-lesion, per-channel jitter of ±`spread`."""
    jittered = np.asarray(rgb) * rng.uniform(1 - spread, 1 + spread, 3)
    return np.clip(jittered, 0, 255).astype(np.float32)


def _design(label: str, rng: np.random.Generator) -> tuple[np.ndarray, tuple[_Layer, ...]]:
    """Outline (the mask) and painted layers of one lesion of class `label`."""
    if label == "blast":
        body = _rotate(_roughen(_spindle(rng.uniform(2.5, 5.0)), rng, 0.12), rng.normal(0, 0.12))
        return body, (
            _Layer(body * 1.45, _tone(rng, (165, 150, 75)), rng.uniform(0.25, 0.45), 0.25),
            _Layer(body, _tone(rng, (135, 80, 45)), 1.0, 0.03),
            _Layer(body * (0.78, 0.6), _tone(rng, (205, 200, 184), 0.05), 0.95, 0.04),
        )
    if label == "brown_spot":
        body = _rotate(_roughen(_ellipse(rng.uniform(1.0, 1.6)), rng, 0.1), rng.normal(0, 0.3))
        layers = [
            _Layer(body * 1.5, _tone(rng, (195, 180, 70)), rng.uniform(0.5, 0.75), 0.2),
            _Layer(body, _tone(rng, (200, 185, 70)), 0.85, 0.06),
            _Layer(body * 0.78, _tone(rng, (95, 55, 30)), 1.0, 0.03),
        ]
        if rng.random() < 0.4:  # older spots get a paler, greyish centre
            layers.append(_Layer(body * 0.35, _tone(rng, (150, 120, 90)), 0.8, 0.05))
        return body, tuple(layers)
    if label == "blight":
        body = _unit(_streak(rng, rng.uniform(6.0, 14.0)))
        return body, (
            _Layer(body * (1.05, 1.35), _tone(rng, (170, 175, 70)), 0.5, 0.03),
            _Layer(body, _tone(rng, (215, 165, 55)), 0.95, 0.015),
            _Layer(body * (0.85, 0.45), _tone(rng, (212, 196, 140)), 0.7, 0.02),
        )
    raise ValueError(f"unknown disease {label!r}")


def _place(canvas: LeafCanvas, label: str, rng: np.random.Generator) -> _Lesion | None:
    edge = label == "blight" and rng.random() < 0.7  # blight runs along the margin mostly
    across = (0.55, 0.85) if edge else (0.0, 0.7)
    point = sample_leaf_point(canvas, rng, across=across)
    if point is None:
        return None
    outline, layers = _design(label, rng)
    return _Lesion(point[0], point[1], point[2], outline, layers)


def _points(canvas: LeafCanvas, lesion: _Lesion, shape: np.ndarray, scale: float) -> np.ndarray:
    blade = canvas.blades[lesion.blade]
    return blade.to_image(lesion.along + scale * shape[:, 0], lesion.off + scale * shape[:, 1])


def _mask(canvas: LeafCanvas, lesions: list[_Lesion], scales: np.ndarray) -> np.ndarray:
    """bool[H, W] union of the lesions' outlines, each clipped to its own visible blade."""
    mask = np.zeros(canvas.top.shape, bool)
    for lesion, scale in zip(lesions, scales, strict=True):
        patch = polygon_patch(_points(canvas, lesion, lesion.outline, scale), mask.shape, 0, False)
        if patch is not None:
            mask[patch.slices] |= (patch.alpha > 0.5) & (canvas.top[patch.slices] == lesion.blade)
    return mask


def add_lesions(canvas: LeafCanvas, label: str, rng: np.random.Generator) -> np.ndarray:
    """Paint the lesions of class `label` onto the canvas (in place).

    Args:
        canvas: The scene; its image is modified.
        label: One of `LEAF_CLASSES` (``"healthy"`` paints nothing).
        rng: Generator of the image.

    Returns:
        uint8[H, W] lesion mask, 255 on lesion pixels.
    """
    h, w = canvas.top.shape
    if label == "healthy":
        return np.zeros((h, w), np.uint8)
    if label not in LEAF_CLASSES:
        raise ValueError(f"unknown class {label!r}; expected one of {LEAF_CLASSES}")
    frame = h * w
    target = math.exp(rng.uniform(math.log(_TARGET[0]), math.log(_TARGET[1]))) * frame
    k = int(rng.integers(1, 5))
    lesions = [les for les in (_place(canvas, label, rng) for _ in range(k)) if les is not None]
    if not lesions:
        return np.zeros((h, w), np.uint8)
    scales = np.sqrt(target * rng.dirichlet(np.full(len(lesions), 2.0)))
    lo, hi = LESION_FRACTION[0] * frame * 1.03, LESION_FRACTION[1] * frame * 0.97
    for _ in range(10):  # clipping and overlaps change the area: re-scale until it fits
        mask = _mask(canvas, lesions, scales)
        area = int(mask.sum())
        if lo <= area <= hi and abs(area / target - 1.0) < 0.2:
            break
        scales = scales * float(np.clip(math.sqrt(target / max(area, 1)), 0.6, 2.0))
    for lesion, scale in zip(lesions, scales, strict=True):
        _paint_lesion(canvas, lesion, scale, rng)
    return mask.astype(np.uint8) * 255


def _paint_lesion(
    canvas: LeafCanvas, lesion: _Lesion, scale: float, rng: np.random.Generator
) -> None:
    """Composite a lesion's layers, keeping the leaf's vein texture under the colour."""
    frame = canvas.top.shape
    for layer in lesion.layers:
        points = _points(canvas, lesion, layer.shape, scale)
        patch = polygon_patch(points, frame, max(0.4, layer.blur * scale))
        if patch is None:
            continue
        lum = region(canvas.image, patch).mean(axis=0)
        texture = np.clip(lum / max(float(lum.mean()), 1.0), 0.8, 1.2) ** 0.6
        grain = 0.88 + 0.24 * smooth_noise(rng, lum.shape, 4)  # blotchy necrotic tissue
        on_blade = (canvas.top[patch.slices] == lesion.blade).astype(np.float32)
        patch = Patch(patch.y0, patch.x0, patch.alpha * on_blade)
        paint(canvas.image, patch, layer.colour[:, None, None] * (texture * grain), layer.opacity)
