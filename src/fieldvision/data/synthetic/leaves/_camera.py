"""Light and camera: illumination gradient, canopy shadows, lens blur, noise and JPEG.

`expose` turns the composited scene (linear-ish float RGB) into the uint8 photo: a smooth
illumination field (directional gradient, vignette, dappled shadows of the canopy above)
with the plot's colour cast, lens blur, sensor noise, gamma and a JPEG round trip for the
softness and block artefacts of real field photos.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from fieldvision.data.synthetic.leaves._draw import smooth_noise
from fieldvision.data.synthetic.leaves._scene import SceneStyle

_LOW = 8  # the illumination field is smooth: drawn at 1/_LOW of the resolution


def illumination(style: SceneStyle, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Multiplicative brightness field: gradient, vignette and dappled canopy shadows.

    Returns:
        float32[H, W], around ``style.gain``.
    """
    lh, lw = max(4, h // _LOW), max(4, w // _LOW)
    yy = np.linspace(-0.5, 0.5, lh, dtype=np.float32)[:, None]
    xx = np.linspace(-0.5, 0.5, lw, dtype=np.float32)[None, :]
    a = style.light_angle
    ramp = 1.0 + 2.0 * style.light_ramp * (math.cos(a) * xx + math.sin(a) * yy)
    vignette = 1.0 - rng.uniform(0.05, 0.25) * (xx * xx + yy * yy) * 2.0
    field = ramp * vignette  # (lh, lw)
    if style.dapple > 0.01:
        blobs = smooth_noise(rng, (lh, lw), int(rng.integers(3, 7)))
        dark = np.clip((blobs - rng.uniform(0.35, 0.6)) * 5.0, 0.0, 1.0)
        field = field * (1.0 - style.dapple * dark)
    if rng.random() < 0.35:  # the soft shadow of a leaf above the frame, a band across it
        t = rng.uniform(0, math.pi)
        c, s = math.cos(t), math.sin(t)
        dist = np.abs(c * xx + s * yy - rng.uniform(-0.4, 0.4))
        band = np.clip((rng.uniform(0.05, 0.15) - dist) * 12.0, 0.0, 1.0)
        field = field * (1.0 - rng.uniform(0.2, 0.45) * band)
    field = field * np.float32(style.gain)
    return cv2.resize(field.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)


def expose(scene: np.ndarray, style: SceneStyle, rng: np.random.Generator) -> np.ndarray:
    """Photograph the scene: light, blur, noise, gamma and a JPEG round trip.

    Args:
        scene: float32[3, H, W] planar RGB in about 0..255 (modified in place).
        style: The plot's style (this image's jittered copy).
        rng: Generator of the image.

    Returns:
        uint8[H, W, 3] RGB.
    """
    h, w = scene.shape[1:]
    scene *= illumination(style, rng, h, w)
    scene *= np.asarray(style.cast, np.float32)[:, None, None]
    sigma = style.blur * min(h, w) / 512.0
    # Sensor noise: mostly luminance (the JPEG chroma subsampling smooths the rest).
    noise = rng.standard_normal((h, w), dtype=np.float32) * np.float32(style.noise)
    planes = []
    for plane in scene:
        if sigma > 0.25:
            plane = cv2.GaussianBlur(plane, (0, 0), sigma)
        plane += noise
        planes.append(np.clip(plane, 0.0, 255.0, out=plane).astype(np.uint8))
    gamma = rng.uniform(0.85, 1.15)
    table = np.round(255.0 * (np.arange(256) / 255.0) ** gamma).astype(np.uint8)
    bgr = cv2.LUT(cv2.merge(planes[::-1]), table)
    quality = int(np.clip(style.jpeg_quality + rng.integers(-4, 5), 60, 98))
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV always encodes uint8 images
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
