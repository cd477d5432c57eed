"""`render_pasture`: one procedural top-down quadrat photo from its biomass components."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from fieldvision.data.synthetic.pasture._draw import (
    _blade_samples,
    _blade_steps,
    _Canvas,
    _disc_offsets,
    _draw_stamp,
    _draw_strip,
    _sample_positions,
    _smooth_field,
    _uniform_noise,
)

# Soil colour (RGB) by state: dark Tasmanian loam ... pale sandy WA soils. Saturation is kept
# below ~0.5 so no soil pixel looks like an orange date stamp.
_SOIL = {
    "Tas": (70, 56, 44),
    "Vic": (98, 82, 64),
    "NSW": (120, 90, 68),
    "WA": (150, 110, 80),  # red-brown sandy loam
}
_SOIL_DEFAULT = (100, 84, 66)


@dataclass(frozen=True)
class RenderInfo:
    """What `render_pasture` drew (for the manifest and tests)."""

    cover: float  # fraction of pixels covered by any vegetation
    visible: tuple[float, float, float]  # fraction of pixels showing green, dead, clover
    strokes: tuple[int, int, int]  # green blades, dead straws, clover leaves
    has_stamp: bool
    stamp_box: tuple[int, int, int, int] | None  # (y0, x0, y1, x1) in pixels
    strip: str  # "", "shadow", "frame" or "tape"
    strip_rows: int


def _season_yellowness(month: int) -> float:
    """0 in late winter / spring (lush), 1 in late summer (dry), southern hemisphere."""
    return 0.5 + 0.5 * math.cos(2 * math.pi * (month - 2) / 12)


def _lerp(a: Sequence[float], b: Sequence[float], t: float) -> np.ndarray:
    return (1 - t) * np.asarray(a, np.float32) + t * np.asarray(b, np.float32)


def render_pasture(
    green: float,
    dead: float,
    clover: float,
    height: float,
    month: int,
    state: str,
    *,
    size: tuple[int, int] = (256, 512),
    rng: np.random.Generator,
    stamp_text: str | None = None,
    strip: str = "",
) -> tuple[np.ndarray, RenderInfo]:
    """Render one top-down quadrat photo.

    Args:
        green: Green grass biomass (g) in the quadrat.
        dead: Dead material (g).
        clover: Clover (g).
        height: Sward height (cm): longer blades, more mass per visible area.
        month: 1..12; shifts colours with the season.
        state: Australian state; picks the soil colour.
        size: ``(H, W)`` of the image.
        rng: Random generator (all randomness comes from it).
        stamp_text: Date text printed in orange in the bottom-right corner, or None.
        strip: Bottom artifact: ``""`` (none), ``"shadow"``, ``"frame"`` or ``"tape"``.

    Returns:
        ``(image, info)``: np.ndarray[H, W, 3] uint8 RGB and a `RenderInfo`.
    """
    H, W = size
    s = W / 512.0  # geometry is designed at 512 px width and scaled
    area = float(H * W)
    yellow = _season_yellowness(month)

    # --- density fields on a coarse grid: shared patchiness + per-component detail
    coarse = (max(H // 4, 4), max(W // 4, 8))
    cells = int(rng.integers(2, 6))
    common = _smooth_field(rng, coarse, cells)
    patchiness = float(rng.uniform(0.35, 0.95))
    densities = []
    for _ in range(3):
        z = 0.65 * common + math.sqrt(1 - 0.65**2) * _smooth_field(rng, coarse, cells + 1)
        d = np.exp(patchiness * z)
        densities.append(d / d.mean())

    # --- cover depth lambda = grams / K; tall swards hide more mass per visible area
    k_green = 30.0 * (max(height, 1.0) / 4.0) ** 0.35
    k_dead, k_clover = 24.0, 16.0
    depth = (green / k_green, dead / k_dead, clover / k_clover)

    # --- geometry (pixels)
    blade_len = 512 * s * (0.010 + 0.0075 * math.log1p(max(height, 0.0)))
    blade_w = max(1, round(2 * s))
    straw_len, straw_w = 1.4 * blade_len, max(1, round(1.3 * s))
    leaf_r = 3.4 * s * float(rng.uniform(0.8, 1.25))
    disc = _disc_offsets(leaf_r)  # (m, 2)
    stroke_area = (blade_len * blade_w, straw_len * straw_w, 3 * len(disc) * 0.85)
    counts = [
        int(min(rng.poisson(d * area / a), 12 * area / a)) if d > 0 else 0
        for d, a in zip(depth, stroke_area, strict=True)
    ]
    n_green, n_dead, n_clover = counts

    # --- paint stroke codes. Most dead straw lies underneath the living sward and is
    # painted first; the rest, the clover and the grass interleave in chunks so no layer
    # systematically hides another.
    L = _Canvas.LEVELS
    p_blade, p_straw = _blade_steps(blade_len), _blade_steps(straw_len)
    # Shading level per sample position: along blades (base -> tip), leaflet rim -> centre.
    blade_lv = np.tile(np.arange(p_blade) * L // p_blade, blade_w).astype(np.int32)
    straw_lv = np.tile(np.arange(p_straw) * L // p_straw, straw_w).astype(np.int32)
    radial = np.linalg.norm(disc, axis=1) / (np.linalg.norm(disc, axis=1).max() + 1e-6)
    leaf_lv = np.tile(np.minimum((1 - radial) * L, L - 1).astype(np.int32), 3)
    margin = int(math.ceil(max(1.6 * straw_len, 2.2 * leaf_r + 2, 1.6 * blade_len))) + 2
    canvas = _Canvas((H, W), margin)
    first = {"dead": 0, "clover": n_dead, "green": n_dead + n_clover}
    dead_xy = clover_xy = green_xy = None
    if n_dead:
        c = _sample_positions(rng, densities[1], n_dead, size)
        dead_xy = _blade_samples(rng, c, straw_len, straw_w, bend=0.08)
    if n_clover:
        c = _sample_positions(rng, densities[2], n_clover, size)
        phi = rng.uniform(0, 2 * np.pi, n_clover).astype(np.float32)
        ang = phi[:, None] + np.array([0, 2 * np.pi / 3, 4 * np.pi / 3], np.float32)  # (n, 3)
        lx = c[:, 0:1] + 1.05 * leaf_r * np.cos(ang)  # (n, 3) leaflet centres
        ly = c[:, 1:2] + 1.05 * leaf_r * np.sin(ang)
        clover_xy = (
            (lx[:, :, None] + disc[None, None, :, 0]).reshape(n_clover, -1),  # (n, 3 * m)
            (ly[:, :, None] + disc[None, None, :, 1]).reshape(n_clover, -1),
        )
    if n_green:
        c = _sample_positions(rng, densities[0], n_green, size)
        green_xy = _blade_samples(rng, c, blade_len, blade_w, bend=0.15)
    n_under = int(round(0.75 * n_dead))
    if dead_xy is not None and n_under:
        canvas.paint(dead_xy[0][:n_under], dead_xy[1][:n_under], straw_lv, first["dead"])
    top = (
        ("dead", dead_xy, straw_lv, n_under, n_dead),
        ("clover", clover_xy, leaf_lv, 0, n_clover),
        ("green", green_xy, blade_lv, 0, n_green),
    )
    parts = 6
    for k in range(parts):
        for name, xy, lv, lo, hi in top:
            a, b = (int(v) for v in np.linspace(lo, hi, parts + 1).astype(int)[k : k + 2])
            if xy is not None and b > a:
                canvas.paint(xy[0][a:b], xy[1][a:b], lv, first[name] + a)
    labels = canvas.labels()  # (H, W)

    # --- colours: per stroke (season base x random shade) x per-level brightness
    green_col = _lerp((52, 122, 40), (128, 136, 58), 0.8 * yellow)
    dead_col = _lerp((150, 132, 100), (196, 178, 126), yellow)  # lighter than any soil
    clover_col = _lerp((52, 112, 86), (88, 120, 72), 0.35 * yellow)
    base = [c * rng.normal(1.0, 0.05, 3).astype(np.float32) for c in (dead_col, clover_col)]
    base.append(green_col * rng.normal(1.0, 0.05, 3).astype(np.float32))
    n_total = n_dead + n_clover + n_green
    stroke_col = np.concatenate(
        [
            np.repeat(base[0][None], n_dead, 0) * rng.uniform(0.7, 1.2, (n_dead, 1)),
            np.repeat(base[1][None], n_clover, 0) * rng.uniform(0.75, 1.2, (n_clover, 1)),
            np.repeat(base[2][None], n_green, 0) * rng.uniform(0.7, 1.25, (n_green, 1)),
        ]
    ).astype(np.float32)  # (n_total, 3)
    # Brightness of each shading level: straw and blades lighter at the tip, leaflets at
    # the centre (the pale clover "watermark").
    level_gain = np.array(
        [
            0.92 + 0.16 * (np.arange(L) + 0.5) / L,
            1.12 - 0.25 * (1 - (np.arange(L) + 0.5) / L),
            0.85 + 0.30 * (np.arange(L) + 0.5) / L,
        ],
        np.float32,
    )  # (3, L): dead, clover, green
    kind = np.repeat(np.arange(3), (n_dead, n_clover, n_green))
    table = stroke_col[:, None, :] * level_gain[kind][:, :, None]  # (n_total, L, 3)
    # Soil pixels hold -1, which indexes the appended last (unused) row.
    table = np.concatenate([table.reshape(-1, 3), np.zeros((1, 3), np.float32)])

    soil = np.asarray(_SOIL.get(state, _SOIL_DEFAULT), np.float32)
    soil = soil * rng.normal(1.0, 0.05, 3).astype(np.float32)
    soil_tex = 1 + 0.12 * _smooth_field(rng, coarse, int(rng.integers(6, 14)))
    soil_tex = cv2.resize(soil_tex, (W, H), interpolation=cv2.INTER_LINEAR)
    # Uniform noise (sd = half-width / sqrt(3)) is several times cheaper than Gaussian.
    grain = _uniform_noise(rng, (H, W), 12.0)  # soil grain, sd 7
    img = soil[None, None, :] * soil_tex[..., None] + grain[..., None]  # (H, W, 3)
    covered = labels >= 0
    # Which kind each pixel shows: stroke ids are ordered dead, clover, green.
    shown = np.bincount(
        np.searchsorted([n_dead, n_dead + n_clover], labels[covered] // L, side="right"),
        minlength=3,
    ) / float(H * W)
    if n_total:
        veg = np.take(table, labels, axis=0)  # (H, W, 3)
        img = np.where(covered[..., None], veg, img)

    # --- canopy self-shading, lighting, optics, sensor noise
    local_depth = sum(lam * d for lam, d in zip(depth, densities, strict=True))
    shading = 1 - 0.3 * (1 - np.exp(-np.asarray(local_depth, np.float32) / 3))
    light = np.exp(0.12 * _smooth_field(rng, coarse, 2))
    gx, gy = (float(v) for v in rng.uniform(-0.25, 0.25, 2))
    ramp_x = 1 + gx * (np.linspace(0, 1, coarse[1], dtype=np.float32) - 0.5)
    ramp_y = 1 + gy * (np.linspace(0, 1, coarse[0], dtype=np.float32) - 0.5)
    light *= ramp_y[:, None] * ramp_x[None, :] * float(rng.uniform(0.85, 1.15))
    gain = cv2.resize((shading * light).astype(np.float32), (W, H), interpolation=cv2.INTER_LINEAR)
    img *= gain[..., None]
    strip_rows = _draw_strip(img, strip, rng) if strip else 0
    img = cv2.GaussianBlur(img, (0, 0), sigmaX=0.6 * max(s, 0.5))
    img += _uniform_noise(rng, (H, W), 5.2)[..., None]  # sensor noise, sd 3
    out = np.clip(img, 0, 255).astype(np.uint8)

    box = _draw_stamp(out, stamp_text, rng) if stamp_text else None
    info = RenderInfo(
        cover=float(covered.mean()),
        visible=(float(shown[2]), float(shown[0]), float(shown[1])),
        strokes=(n_green, n_dead, n_clover),
        has_stamp=box is not None,
        stamp_box=box,
        strip=strip,
        strip_rows=strip_rows,
    )
    return out, info
