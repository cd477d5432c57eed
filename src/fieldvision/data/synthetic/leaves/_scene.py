"""The field around the leaf: a per-plot `SceneStyle` and out-of-focus backgrounds.

A style fixes what one field plot looks like (ground kind and colours, leaf green, light
direction and colour, camera blur, noise and JPEG quality); every image of the plot draws a
slightly jittered copy, so images of one group resemble each other and grouped folds are
meaningful. Backgrounds are drawn at a quarter of the resolution and blurred (they are out
of the depth of field), which also keeps them cheap.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import cv2
import numpy as np

from fieldvision.data.synthetic.leaves._draw import smooth_noise

BACKGROUND_KINDS = ("soil", "water", "foliage", "mixed")
_LOW = 4  # backgrounds are drawn at 1/_LOW of the resolution


@dataclass(frozen=True)
class SceneStyle:
    """What the images of one field plot share.

    Attributes:
        kind: Background kind, one of `BACKGROUND_KINDS`.
        ground: RGB of the soil (or of the muddy water bottom).
        water: RGB of the water surface (sky reflection).
        foliage: RGB of the out-of-focus vegetation.
        clutter: 0..1, how many background blades and straws are drawn.
        leaf_green: RGB of the healthy leaf.
        light_angle: Direction of the illumination gradient (radians).
        light_ramp: Relative brightness change across the frame.
        gain: Global exposure factor.
        cast: RGB colour-temperature multipliers.
        dapple: 0..1, strength of the patchy canopy shadows.
        shadow: 0..1, darkness of the shadows the blades cast below them.
        blur: Lens blur sigma in pixels at 512 px.
        noise: Sensor noise sigma (grey levels).
        jpeg_quality: Quality of the JPEG round trip (softness, block artefacts).
    """

    kind: str
    ground: tuple[float, float, float]
    water: tuple[float, float, float]
    foliage: tuple[float, float, float]
    clutter: float
    leaf_green: tuple[float, float, float]
    light_angle: float
    light_ramp: float
    gain: float
    cast: tuple[float, float, float]
    dapple: float
    shadow: float
    blur: float
    noise: float
    jpeg_quality: int


def _rgb(values: np.ndarray) -> tuple[float, float, float]:
    r, g, b = np.clip(values, 0.0, 255.0)
    return float(r), float(g), float(b)


def make_style(rng: np.random.Generator) -> SceneStyle:
    """Draw the style of one field plot.

    Args:
        rng: Generator of the plot (``numpy_rng(seed, stream, group)``) or of one image.
    """
    moist = rng.uniform(0.0, 1.0)  # dry pale soil .. wet dark mud
    ground = np.array([150 - 60 * moist, 118 - 50 * moist, 85 - 40 * moist])
    ground = ground * rng.uniform(0.9, 1.1, 3)
    sky = rng.uniform(0.0, 1.0)
    water = np.array([120 + 60 * sky, 135 + 55 * sky, 130 + 70 * sky]) * rng.uniform(0.9, 1.1, 3)
    foliage = np.array([rng.uniform(30, 80), rng.uniform(70, 130), rng.uniform(20, 55)])
    lush = rng.uniform(0.0, 1.0)  # pale yellow-green .. deep green
    leaf = np.array([115 - 55 * lush, 165 - 35 * lush, 70 - 35 * lush]) * rng.uniform(0.94, 1.06, 3)
    warm = rng.uniform(-1.0, 1.0)  # cool overcast .. warm evening light
    cast = (1.0 + 0.07 * warm, 1.0, 1.0 - 0.07 * warm)
    return SceneStyle(
        kind=str(BACKGROUND_KINDS[int(rng.integers(0, len(BACKGROUND_KINDS)))]),
        ground=_rgb(ground),
        water=_rgb(water),
        foliage=_rgb(foliage),
        clutter=float(rng.uniform(0.2, 1.0)),
        leaf_green=_rgb(leaf),
        light_angle=float(rng.uniform(0.0, 2 * math.pi)),
        light_ramp=float(rng.uniform(0.1, 0.45)),
        gain=float(rng.uniform(0.85, 1.12)),
        cast=cast,
        dapple=float(rng.uniform(0.0, 0.45)),
        shadow=float(rng.uniform(0.2, 0.6)),
        blur=float(rng.uniform(0.3, 1.1)),
        noise=float(rng.uniform(1.0, 5.0)),
        jpeg_quality=int(rng.integers(72, 95)),
    )


def jitter_style(style: SceneStyle, rng: np.random.Generator) -> SceneStyle:
    """Another photo of the same plot: small changes of colours, light and camera."""

    def shift(rgb: tuple[float, float, float], sd: float) -> tuple[float, float, float]:
        return _rgb(np.asarray(rgb) * (1.0 + rng.normal(0.0, sd, 3)))

    return dataclasses.replace(
        style,
        ground=shift(style.ground, 0.04),
        water=shift(style.water, 0.04),
        foliage=shift(style.foliage, 0.05),
        leaf_green=shift(style.leaf_green, 0.03),
        light_angle=float(style.light_angle + rng.normal(0.0, 0.35)),
        light_ramp=float(np.clip(style.light_ramp * rng.uniform(0.8, 1.2), 0.05, 0.5)),
        gain=float(style.gain * rng.uniform(0.93, 1.07)),
        dapple=float(np.clip(style.dapple + rng.normal(0.0, 0.05), 0.0, 0.5)),
        blur=float(np.clip(style.blur * rng.uniform(0.8, 1.25), 0.2, 1.4)),
    )


def _strokes(
    canvas: np.ndarray, rng: np.random.Generator, count: int, colour: np.ndarray, width: float
) -> None:
    """Long, thick, slightly curved strokes (out-of-focus blades or straw) in place."""
    h, w = canvas.shape[:2]
    s = min(h, w)
    for _ in range(count):
        x0, y0 = rng.uniform(-0.2, 1.2) * w, rng.uniform(-0.2, 1.2) * h
        a = rng.uniform(0, 2 * math.pi)
        length = rng.uniform(0.4, 1.3) * s
        bend = rng.uniform(-0.25, 0.25) * length
        t = np.linspace(0.0, 1.0, 8)
        xs = x0 + math.cos(a) * length * t - math.sin(a) * bend * t * t
        ys = y0 + math.sin(a) * length * t + math.cos(a) * bend * t * t
        pts = np.round(np.stack([xs, ys], 1) * 16).astype(np.int32)
        tone = np.clip(colour * rng.uniform(0.65, 1.3, 3), 0, 255)
        thick = max(1, round(width * s * rng.uniform(0.5, 1.5)))
        cv2.polylines(canvas, [pts], False, tone.tolist(), thick, cv2.LINE_AA, 4)


def background(style: SceneStyle, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """An out-of-focus field background: soil, paddy water, foliage or a mix.

    Args:
        style: The plot's style.
        rng: Generator of the image.
        h: Frame height.
        w: Frame width.

    Returns:
        float32[3, H, W] planar RGB in 0..255.
    """
    lh, lw = max(8, h // _LOW), max(8, w // _LOW)
    ground = np.asarray(style.ground, np.float32)
    blotch = smooth_noise(rng, (lh, lw), int(rng.integers(4, 9)))[..., None]
    img = ground * (0.7 + 0.6 * blotch)  # (lh, lw, 3)
    for _ in range(int(rng.integers(10, 40))):  # clods and pebbles
        cx, cy = rng.uniform(0, lw), rng.uniform(0, lh)
        r = rng.uniform(0.004, 0.025) * min(lh, lw)
        tone = np.clip(ground * rng.uniform(0.55, 1.35), 0, 255).tolist()
        cv2.circle(img, (round(cx), round(cy)), max(1, round(r)), tone, -1, cv2.LINE_AA)
    if style.kind in ("water", "mixed"):
        yy = np.linspace(0.0, 1.0, lh, dtype=np.float32)[:, None]
        xx = np.linspace(0.0, 1.0, lw, dtype=np.float32)[None, :]
        a, k = rng.uniform(0, math.pi), rng.uniform(20, 60)
        warp = 4.0 * smooth_noise(rng, (lh, lw), 5)
        ripple = 0.5 + 0.5 * np.sin(k * (math.cos(a) * xx + math.sin(a) * yy) + warp)
        sky = (0.25 + 0.5 * yy + 0.25 * ripple)[..., None]  # (lh, lw, 1)
        surface = np.asarray(style.water, np.float32) * (0.8 + 0.3 * sky)
        wet = np.ones((lh, lw, 1), np.float32)
        if style.kind == "mixed":  # puddles between the soil
            puddle = smooth_noise(rng, (lh, lw), 5)
            wet = np.clip((puddle - 0.5) * 6.0 + 0.5, 0.0, 1.0)[..., None]
        img = img * (1 - 0.85 * wet) + surface * 0.85 * wet
    n = int(round(style.clutter * rng.uniform(4, 14)))
    if style.kind in ("foliage", "mixed"):
        n += int(rng.integers(8, 20))
    _strokes(img, rng, n, np.asarray(style.foliage, np.float32), 0.05)
    straw = np.array([175, 150, 100], np.float32)
    _strokes(img, rng, int(round(style.clutter * rng.uniform(1, 6))), straw, 0.012)
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.8, 2.2))
    out = np.empty((3, h, w), np.float32)
    for c in range(3):
        cv2.resize(
            np.ascontiguousarray(img[..., c]), (w, h), out[c], interpolation=cv2.INTER_LINEAR
        )
    return out
