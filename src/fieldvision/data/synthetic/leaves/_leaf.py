"""Rice-leaf blades: geometry, parallel veins, shading and the shadows they cast.

A `Blade` is a long, gently curved strip that enters the frame from outside and narrows to
a pointed tip. Pixels are mapped to blade coordinates ``(along, off)``: distance from the
base along the axis and signed offset from the (curved) centre line; shading across the
blade comes from a per-blade 1-D profile of ``off / halfwidth`` (midrib, major and minor
parallel veins, the fold along the midrib, the lighter margin and a specular sheen), so
the veins follow the blade's curve for the price of one table look-up per pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from fieldvision.data.synthetic.leaves._draw import Patch, region, smooth_noise
from fieldvision.data.synthetic.leaves._scene import SceneStyle

_PROFILE_BINS = 1024
MIN_COVER = 0.3  # blades cover at least this fraction of the frame


@dataclass(frozen=True)
class Blade:
    """Geometry and colour of one leaf blade (frame pixels).

    Attributes:
        origin: ``(x, y)`` of the base (outside the frame).
        angle: Direction from base to tip (radians).
        bend_at: Distance along the axis where the centre line crosses the axis.
        curvature: Centre-line offset is ``curvature * (along - bend_at) ** 2``.
        length: Distance from base to tip along the axis.
        width: Largest half-width.
        taper: Length over which the blade narrows to its tip.
        colour: RGB of the healthy tissue.
    """

    origin: tuple[float, float]
    angle: float
    bend_at: float
    curvature: float
    length: float
    width: float
    taper: float
    colour: tuple[float, float, float]

    def halfwidth(self, along: np.ndarray | float) -> np.ndarray | float:
        """Half-width at `along` (0 beyond base and tip)."""
        tip = np.clip((self.length - along) / self.taper, 0.0, 1.0)
        return self.width * (1.0 - 0.15 * along / self.length) * tip * (along >= 0)

    def local(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frame ``(x, y)`` to blade ``(along, off)`` (arrays broadcast)."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        dx, dy = x - self.origin[0], y - self.origin[1]
        along = dx * c + dy * s
        bent = along - self.bend_at
        return along, (dy * c - dx * s) - self.curvature * bent * bent

    def to_image(self, along: np.ndarray, off: np.ndarray) -> np.ndarray:
        """Blade ``(along, off)`` to frame points float[N, 2] ``(x, y)``."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        across = off + self.curvature * (along - self.bend_at) ** 2
        x = self.origin[0] + along * c - across * s
        y = self.origin[1] + along * s + across * c
        return np.stack([x, y], axis=-1)

    def outline(self, n: int = 48) -> np.ndarray:
        """Polygon of the blade edge, float[2n, 2] ``(x, y)``."""
        along = np.linspace(0.0, self.length, n)
        hw = self.halfwidth(along)
        return np.concatenate([self.to_image(along, hw), self.to_image(along, -hw)[::-1]])


@dataclass(frozen=True)
class LeafCanvas:
    """The scene under construction.

    Attributes:
        image: float32[3, H, W] planar RGB (background and blades; lesions and distractors
            are painted in place).
        alpha: float32[H, W] leaf coverage in [0, 1].
        top: int8[H, W] index of the visible blade (coverage >= 0.5), -1 on background.
        blades: The blades, bottom to top.
    """

    image: np.ndarray
    alpha: np.ndarray
    top: np.ndarray
    blades: tuple[Blade, ...]


def sample_blades(rng: np.random.Generator, h: int, w: int, style: SceneStyle) -> list[Blade]:
    """A main blade across the middle of the frame and 0–3 others, bottom to top.

    Blades are added until they cover at least `MIN_COVER` of the frame (at most 4).
    """
    s, diag, frame = math.sqrt(h * w), math.hypot(h, w), np.array([w, h])
    main_w = rng.uniform(0.16, 0.26) * s
    theta = rng.uniform(0.0, 2 * math.pi)
    centre = frame * (0.5 + rng.uniform(-0.15, 0.15, 2))
    blades = [_blade(rng, centre, theta, main_w, s, diag, style)]
    n_more = int(rng.random() < 0.5 + 0.4 * style.clutter) + int(rng.random() < 0.4)
    while len(blades) < 4 and (n_more > 0 or _coverage(blades, h, w) < MIN_COVER):
        n_more -= 1
        c = centre + rng.uniform(-0.45, 0.45, 2) * frame
        a = theta + rng.normal(0.0, 0.5) + (math.pi if rng.random() < 0.3 else 0.0)
        blade = _blade(rng, c, a, main_w * rng.uniform(0.55, 1.0), s, diag, style)
        blades.insert(len(blades) if rng.random() < 0.35 else 0, blade)
    return blades


def _coverage(blades: list[Blade], h: int, w: int) -> float:
    """Fraction of the frame the blades cover (rasterised at 1/8 of the resolution)."""
    low = np.zeros((max(16, h // 8), max(16, w // 8)), np.uint8)
    scale = (low.shape[1] / w, low.shape[0] / h)
    for b in blades:
        cv2.fillPoly(low, [np.round(b.outline(24) * scale * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
    return float(low.mean())


def _blade(
    rng: np.random.Generator,
    centre: np.ndarray,
    angle: float,
    width: float,
    s: float,
    diag: float,
    style: SceneStyle,
) -> Blade:
    back = 0.5 * diag + 0.3 * s + width  # the base lies outside the frame
    origin = centre - back * np.array([math.cos(angle), math.sin(angle)])
    colour = np.asarray(style.leaf_green) * rng.uniform(0.9, 1.1, 3)
    return Blade(
        origin=(float(origin[0]), float(origin[1])),
        angle=float(angle),
        bend_at=float(back),
        curvature=float(rng.uniform(-0.15, 0.15) / s),
        length=float(back + rng.uniform(0.3, 1.2) * s),
        width=float(width),
        taper=float(rng.uniform(0.3, 0.6) * s),
        colour=(float(colour[0]), float(colour[1]), float(colour[2])),
    )


def vein_profile(rng: np.random.Generator, halfwidth: float) -> np.ndarray:
    """Relative brightness across a blade, sampled over ``off / halfwidth`` in [-1, 1].

    Args:
        rng: Generator.
        halfwidth: Half-width in pixels (sets how many veins are resolvable).

    Returns:
        float32[_PROFILE_BINS] brightness offsets (about -0.2..0.3).
    """
    v = np.linspace(-1.0, 1.0, _PROFILE_BINS)
    px = 1.0 / max(halfwidth, 1.0)  # one pixel in profile units
    prof = rng.uniform(0.04, 0.12) * np.sign(v) - rng.uniform(0.05, 0.15) * v * v  # fold, roll
    prof += rng.uniform(0.12, 0.22) * np.exp(-0.5 * (v / max(0.03, 1.5 * px)) ** 2)  # midrib
    n_minor = int(np.clip(halfwidth / 3.5, 3, 40))
    major_every = int(rng.integers(3, 6))
    pos = (np.arange(1, n_minor + 1) + rng.uniform(-0.2, 0.2, n_minor)) / (n_minor + 1)
    for k, p in enumerate(pos):
        major = (k + 1) % major_every == 0
        amp = rng.uniform(0.06, 0.1) if major else rng.uniform(0.02, 0.045)
        sd = max(0.7 * px, 0.004) * (1.6 if major else 1.0)
        prof += amp * (np.exp(-0.5 * ((v - p) / sd) ** 2) + np.exp(-0.5 * ((v + p) / sd) ** 2))
    prof += rng.uniform(0.05, 0.12) * np.clip((np.abs(v) - (1 - 2.5 * px)) / (2.5 * px), 0, 1)
    sheen_at = rng.uniform(-0.6, 0.6)
    prof += rng.uniform(0.0, 0.18) * np.exp(-0.5 * ((v - sheen_at) / rng.uniform(0.1, 0.3)) ** 2)
    return prof.astype(np.float32)


def draw_leaves(
    scene: np.ndarray, blades: list[Blade], style: SceneStyle, rng: np.random.Generator
) -> LeafCanvas:
    """Composite the blades over the background, each casting a soft shadow below it.

    Args:
        scene: float32[3, H, W] planar background (modified in place).
        blades: Bottom to top.
        style: The image's style (tip yellowing, shadow darkness).
        rng: Generator of the image.

    Returns:
        The canvas with the leaf coverage and the visible-blade map.
    """
    h, w = scene.shape[1:]
    s = min(h, w)
    alpha_all = np.zeros((h, w), np.float32)
    top = np.full((h, w), -1, np.int8)
    mottle = (smooth_noise(rng, (h, w), int(rng.integers(6, 14))) - 0.5) * 0.16
    shadow_dir = style.light_angle + math.pi
    for idx, blade in enumerate(blades):
        lift = rng.uniform(0.01, 0.04) * s  # height above what lies below
        dx, dy = lift * math.cos(shadow_dir), lift * math.sin(shadow_dir)
        pad = int(0.05 * s + lift) + 2
        box = _bbox(blade.outline(), h, w, pad)
        if box is None:
            continue
        y0, x0, y1, x1 = box
        xs = np.arange(x0, x1, dtype=np.float32)[None, :]
        ys = np.arange(y0, y1, dtype=np.float32)[:, None]
        along, off = blade.local(xs, ys)
        hw = blade.halfwidth(along).astype(np.float32)
        alpha = np.clip(hw - np.abs(off) + 0.5, 0.0, 1.0)
        _cast_shadow(scene, alpha, box, dx, dy, style.shadow * rng.uniform(0.7, 1.0), 0.02 * s)
        v = off / np.maximum(hw, 0.5)
        profile = vein_profile(rng, blade.width)
        index = np.clip((v + 1.0) * (0.5 * (_PROFILE_BINS - 1)) + 0.5, 0, _PROFILE_BINS - 1)
        lit = alpha * (1.0 + profile[index.astype(np.int32)] + mottle[y0:y1, x0:x1])
        aged = np.clip(along * (1.0 / blade.length), 0.0, 1.0)
        aged *= aged * np.float32(rng.uniform(0.0, 0.35)) * lit
        base = np.asarray(blade.colour, np.float32)[:, None, None]
        yellow = np.array([150.0, 168.0, 70.0], np.float32)[:, None, None]
        # region = region (1 - alpha) + alpha shade (base + (yellow - base) aged), in place
        crop = scene[:, y0:y1, x0:x1]
        crop *= 1.0 - alpha
        crop += lit * base
        crop += aged * (yellow - base)
        a_region = alpha_all[y0:y1, x0:x1]
        a_region += (1.0 - a_region) * alpha
        top[y0:y1, x0:x1][alpha >= 0.5] = idx
    return LeafCanvas(scene, alpha_all, top, tuple(blades))


def _bbox(points: np.ndarray, h: int, w: int, pad: int) -> tuple[int, int, int, int] | None:
    x0 = max(0, int(points[:, 0].min()) - pad)
    y0 = max(0, int(points[:, 1].min()) - pad)
    x1 = min(w, int(points[:, 0].max()) + pad + 1)
    y1 = min(h, int(points[:, 1].max()) + pad + 1)
    return None if x1 <= x0 or y1 <= y0 else (y0, x0, y1, x1)


def _cast_shadow(
    scene: np.ndarray,
    alpha: np.ndarray,
    box: tuple[int, int, int, int],
    dx: float,
    dy: float,
    strength: float,
    sigma: float,
) -> None:
    """Darken `scene` under the blade's coverage shifted by ``(dx, dy)`` and blurred."""
    h, w = scene.shape[1:]
    ah, aw = alpha.shape
    low = cv2.resize(alpha, (max(2, aw // 4), max(2, ah // 4)), interpolation=cv2.INTER_AREA)
    low = cv2.GaussianBlur(low, (0, 0), max(0.5, sigma / 4))
    soft = cv2.resize(low, (aw, ah), interpolation=cv2.INTER_LINEAR)
    y0, x0 = box[0] + round(dy), box[1] + round(dx)
    ys, xs = max(0, -y0), max(0, -x0)  # part of the crop shifted off the frame
    ye, xe = min(ah, h - y0), min(aw, w - x0)
    if ye <= ys or xe <= xs:
        return
    patch = Patch(y0 + ys, x0 + xs, soft[ys:ye, xs:xe])
    region(scene, patch)[...] *= 1.0 - strength * patch.alpha


def sample_leaf_point(
    canvas: LeafCanvas,
    rng: np.random.Generator,
    across: tuple[float, float] = (0.0, 0.8),
    blade: int | None = None,
    tries: int = 60,
) -> tuple[int, float, float] | None:
    """A random visible point on the leaf, in blade coordinates.

    Args:
        canvas: The scene.
        rng: Generator.
        across: Range of ``|off| / halfwidth`` (0 = midrib, 1 = margin); the side is random.
        blade: Restrict to this blade (default: one drawn by visible area).
        tries: Rejection-sampling attempts before falling back to any visible pixel of the
            blade (whatever its ``across``).

    Returns:
        ``(blade index, along, off)``, or None when the blade is not visible at all.
    """
    h, w = canvas.top.shape
    if blade is None:
        counts = np.bincount(canvas.top.ravel().astype(np.int64) + 1, minlength=2)[1:]
        if counts.sum() == 0:
            return None
        blade = int(rng.choice(len(counts), p=counts / counts.sum()))
    b = canvas.blades[blade]
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], np.float64)
    along_c, _ = b.local(corners[:, 0], corners[:, 1])
    lo, hi = max(0.0, float(along_c.min())), min(b.length, float(along_c.max()))
    for _ in range(tries):
        along = rng.uniform(lo, hi)
        off = rng.uniform(*across) * b.halfwidth(along) * rng.choice((-1.0, 1.0))
        x, y = np.round(b.to_image(np.array([along]), np.array([off]))[0]).astype(int)
        if 0 <= x < w and 0 <= y < h and canvas.top[y, x] == blade:
            return blade, float(along), float(off)
    visible = np.flatnonzero(canvas.top == blade)
    if len(visible) == 0:
        return None
    y, x = divmod(int(rng.choice(visible)), w)
    along, off = b.local(np.array([float(x)]), np.array([float(y)]))
    return blade, float(along[0]), float(off[0])
