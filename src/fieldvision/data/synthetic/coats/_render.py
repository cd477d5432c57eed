"""One RGBA image of an identity: silhouette, coat placement, pose and the scene around it."""

from __future__ import annotations

import math

import cv2
import numpy as np

from fieldvision.data.synthetic.coats._draw import _ellipse
from fieldvision.data.synthetic.coats._identity import CoatIdentity
from fieldvision.data.synthetic.coats._scene import _background, _foliage, _lighting


def render_coat_image(
    identity: CoatIdentity,
    rng: np.random.Generator,
    size: tuple[int, int] = (128, 128),
    home_prob: float = 0.9,
    occlusion_prob: float = 0.35,
    difficulty: float = 1.0,
) -> np.ndarray:
    """Render one RGBA image of `identity`.

    Args:
        identity: The animal.
        rng: Generator for this image (use ``numpy_rng(seed, stream, identity, image)``).
        size: ``(H, W)`` of the output.
        home_prob: For a site-bound identity, probability that the image shows its home
            scene (other identities always get a random background).
        occlusion_prob: Probability of foliage bars in front of the animal.
        difficulty: Scales pose, lighting and texture-placement jitter (0 = canonical view).

    Returns:
        uint8[H, W, 4] RGBA; alpha is 255 on visible animal pixels, 0 elsewhere.
    """
    h, w = size
    d = float(difficulty)
    mask = _silhouette(rng, h, w, identity.body_aspect, d)  # (H, W) uint8
    coat = _place_coat(identity.coat, rng, h, w, d)  # (H, W, 3) float32
    # Fake volume: darker towards the silhouette edge (distance transform of the mask).
    dist = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
    dist = dist / max(float(dist.max()), 1.0)
    shade = 0.72 + 0.28 * np.sqrt(dist)  # (H, W)
    animal = np.dstack([coat * shade[..., None], mask.astype(np.float32)])  # (H, W, 4)

    # Pose: one homography (mirror, rotation, scale/crop, shift, perspective).
    warp = _pose_homography(rng, h, w, d)
    animal = cv2.warpPerspective(
        animal, warp, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )
    alpha = np.clip(animal[..., 3] / 255.0, 0.0, 1.0)  # (H, W)

    at_home = rng.random() < home_prob and identity.site_bound
    background = _background(rng, h, w, identity.home_seed if at_home else None)  # (H, W, 3)
    image = animal[..., :3] * alpha[..., None] + background * (1 - alpha[..., None])

    if rng.random() < occlusion_prob:
        occluder, colour = _foliage(rng, h, w)  # (H, W) float in [0, 1], (H, W, 3)
        image = image * (1 - occluder[..., None]) + colour * occluder[..., None]
        alpha = alpha * (1 - occluder)

    image = _lighting(rng, image, d)
    sigma = rng.uniform(0.0, 0.8 * d) * max(h, w) / 128.0
    if sigma > 0.3:
        image = cv2.GaussianBlur(image, (0, 0), sigma)
    image = image + rng.normal(0.0, rng.uniform(0.0, 5.0), size=image.shape).astype(np.float32)
    rgba = np.dstack([np.clip(image, 0, 255), np.round(alpha * 255.0)])
    return rgba.astype(np.uint8)


def _silhouette(rng: np.random.Generator, h: int, w: int, aspect: float, d: float) -> np.ndarray:
    """Animal mask facing right in the canonical frame: body, head, ears, legs, tail."""
    mask = np.zeros((h, w), np.uint8)
    j = lambda s: rng.uniform(-s, s) * d  # noqa: E731 (tiny local jitter helper)
    bx, by = 0.5 * w, 0.47 * h
    blen = 0.34 * w * (1 + j(0.05))
    bh = blen * aspect
    _ellipse(mask, bx, by, blen, bh, j(4))
    # Legs: thick slanted strokes from the belly down; their angle is the gait.
    for k, fx in enumerate((-0.62, -0.38, 0.42, 0.66)):
        x0, y0 = bx + fx * blen, by + 0.55 * bh
        swing = j(0.18) + (0.08 if k % 2 else -0.08)
        x1, y1 = x0 + swing * h, y0 + (0.28 + j(0.03)) * h
        cv2.line(
            mask,
            (round(x0), round(y0)),
            (round(x1), round(y1)),
            255,
            max(2, round(0.075 * w)),
            cv2.LINE_AA,
        )
    # Head and ears.
    hx, hy = bx + 1.02 * blen, by - (0.55 + j(0.15)) * bh
    hr = 0.13 * w
    _ellipse(mask, hx, hy, 1.1 * hr, 0.9 * hr, j(15))
    cv2.line(
        mask,
        (round(bx + 0.7 * blen), round(by - 0.2 * bh)),
        (round(hx), round(hy)),
        255,
        max(2, round(0.14 * w)),
        cv2.LINE_AA,
    )
    for ex in (-0.45, 0.25):
        _ellipse(mask, hx + ex * hr, hy - 0.85 * hr, 0.3 * hr, 0.35 * hr, 0)
    # Tail: a curved polyline from the rump.
    t = np.linspace(0.0, 1.0, 8)
    curl = j(0.5) + 0.3
    tx = bx - blen * (0.95 + 0.7 * t)
    ty = by - 0.1 * bh + (curl * np.sin(t * math.pi) + 0.9 * t) * bh
    pts = np.stack([tx, ty], axis=1).round().astype(np.int32)
    cv2.polylines(mask, [pts], False, 255, max(2, round(0.04 * w)), cv2.LINE_AA)
    return mask


def _place_coat(coat: np.ndarray, rng: np.random.Generator, h: int, w: int, d: float) -> np.ndarray:
    """Map the coat texture onto the canonical frame with a small per-image jitter.

    The texture's centre lands on the body centre so that every image shows roughly the
    same part of the coat (like photos of the same flank); the jitter is what the model
    must become invariant to.
    """
    t = coat.shape[0]
    s = (0.95 * w / t) * (1 + rng.uniform(-0.08, 0.08) * d)  # texture px -> image px
    a = math.radians(rng.uniform(-8, 8) * d)
    shift = rng.uniform(-0.04, 0.04, size=2) * t * d
    cos, sin = s * math.cos(a), s * math.sin(a)
    cx, cy = t / 2 + shift[0], t / 2 + shift[1]
    ox, oy = 0.5 * w, 0.45 * h
    mat = np.array(
        [[cos, -sin, ox - cos * cx + sin * cy], [sin, cos, oy - sin * cx - cos * cy]], np.float32
    )
    return cv2.warpAffine(
        coat.astype(np.float32),
        mat,
        (w, h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT,
    )


def _pose_homography(rng: np.random.Generator, h: int, w: int, d: float) -> np.ndarray:
    """3×3 homography: mirror, rotate, scale (crop), shift and a mild perspective."""
    flip = rng.random() < 0.5
    a = math.radians(rng.uniform(-15, 15) * d)
    s = rng.uniform(1.0 - 0.25 * d, 1.0 + 0.1 * d)
    tx, ty = rng.uniform(-0.1, 0.1, size=2) * d * np.array([w, h])
    c = np.array([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1]], np.float64)
    m = np.diag([-1.0 if flip else 1.0, 1.0, 1.0])
    r = np.array(
        [[s * math.cos(a), -s * math.sin(a), 0], [s * math.sin(a), s * math.cos(a), 0], [0, 0, 1]]
    )
    back = np.array([[1, 0, w / 2 + tx], [0, 1, h / 2 + ty], [0, 0, 1]], np.float64)
    p = np.eye(3)
    p[2, :2] = rng.uniform(-0.35, 0.35, size=2) * d / np.array([w, h])  # perspective
    return (back @ p @ r @ m @ c).astype(np.float64)
