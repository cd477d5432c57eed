"""What surrounds the animal: background scenes, foliage occluders and lighting."""

from __future__ import annotations

import math

import cv2
import numpy as np

from fieldvision.data.synthetic.coats._draw import _smooth_noise
from fieldvision.seeding import numpy_rng


def _background(rng: np.random.Generator, h: int, w: int, home_seed: int | None) -> np.ndarray:
    """A gradient, blotchy-noise or grass-stripe scene: random, or the identity's home scene
    (fixed colours, kind and layout from `home_seed`) with a little per-image jitter."""
    scene = rng if home_seed is None else numpy_rng(home_seed)
    base = scene.uniform(20, 230, size=3).astype(np.float32)
    other = np.clip(base * scene.uniform(0.5, 1.4, size=3), 0, 255).astype(np.float32)
    kind = int(scene.integers(0, 3))
    angle = scene.uniform(0, 2 * math.pi)
    freq = scene.uniform(0.15, 0.45)
    grid = scene.random((int(scene.integers(3, 9)),) * 2).astype(np.float32)
    if home_seed is not None:  # the same place under another visit: small changes only
        base = base + rng.normal(0, 6, size=3).astype(np.float32)
        other = other + rng.normal(0, 6, size=3).astype(np.float32)
        angle += rng.normal(0, 0.1)
    if kind == 0:  # linear gradient
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        weight = (math.cos(angle) * xx / w + math.sin(angle) * yy / h + 1.0) / 2.0  # (H, W)
    elif kind == 1:  # blotchy low-frequency noise
        weight = np.clip(cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)
    else:  # grass-like stripes
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        a = 0.4 * math.sin(angle)
        weight = 0.5 + 0.5 * np.sin(freq * (xx * math.cos(a) + yy * math.sin(a)))
    bg = base[None, None, :] * (1 - weight[..., None]) + other[None, None, :] * weight[..., None]
    return bg + rng.normal(0, rng.uniform(2, 10), size=(h, w, 3)).astype(np.float32)


def _foliage(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """1–3 foliage bars: (occluder weight float32[H, W] in [0, 1], colour float32[H, W, 3])."""
    occ = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        x0, x1 = rng.uniform(-0.2, 1.2, size=2) * w
        y0, y1 = rng.uniform(0, 0.3) * h, rng.uniform(0.7, 1.0) * h
        if rng.random() < 0.5:  # horizontal-ish branch instead of a vertical stem
            x0, y0, x1, y1 = y0 * w / h, x0 * h / w, y1 * w / h, x1 * h / w
        thick = max(2, round(rng.uniform(0.03, 0.08) * w))
        cv2.line(occ, (round(x0), round(y0)), (round(x1), round(y1)), 255, thick, cv2.LINE_AA)
    green = np.array([rng.uniform(20, 80), rng.uniform(70, 150), rng.uniform(15, 60)], np.float32)
    colour = green[None, None, :] * (0.75 + 0.5 * _smooth_noise(rng, (h, w), 4)[..., None])
    return occ.astype(np.float32) / 255.0, colour


def _lighting(rng: np.random.Generator, image: np.ndarray, d: float) -> np.ndarray:
    """Global gain, colour cast, a directional light ramp and gamma."""
    h, w = image.shape[:2]
    gain = rng.uniform(1 - 0.25 * d, 1 + 0.2 * d)
    cast = 1 + rng.uniform(-0.08, 0.08, size=3).astype(np.float32) * d
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, 2 * math.pi)
    ramp = 1 + 0.25 * d * (math.cos(a) * (xx / w - 0.5) + math.sin(a) * (yy / h - 0.5)) * 2
    out = image * (gain * cast)[None, None, :] * ramp[..., None]
    gamma = rng.uniform(1 - 0.2 * d, 1 + 0.2 * d)
    return (np.clip(out, 0, 255) / 255.0) ** gamma * 255.0
