"""Procedural "rosette-coat" animals for re-identification demos and tests.

Each identity owns a fixed coat texture: a tawny ground with rosettes (rings of dark spots
around a slightly darker centre) and solid spots, like a jaguar's flank. Every image of
that identity shows the same coat on an animal-like silhouette (ellipse body, head, legs,
tail) under a new pose (affine + perspective warp, mirror), crop and scale, lighting,
blur, sensor noise, partial occlusion by foliage bars and a new background. Images are
RGBA: the alpha channel is the animal mask (occluded parts excluded), like the cut-outs of
the Kaggle Jaguar Re-ID data.

``background_leak`` is the fraction of identities that are *site-bound*: most of their
images (``home_prob``) show the same "home" scene (with jitter), the shortcut real
camera-trap data has (one animal, one site). The background-reliance diagnostic of the
pipeline is meant to find it.

Everything is deterministic in ``(seed, identity, image)`` and vectorised with OpenCV; a
128×128 image takes a few milliseconds.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from fieldvision.io import write_csv, write_json
from fieldvision.seeding import numpy_rng

__all__ = [
    "CoatIdentity",
    "SynthReIDSummary",
    "generate_coat_dataset",
    "image_counts",
    "make_identity",
    "render_coat_image",
]

# Stream ids for numpy_rng so identities, images and counts never share random numbers.
_IDENTITY_STREAM = 1
_IMAGE_STREAM = 2
_COUNT_STREAM = 3
_SPLIT_STREAM = 4


@dataclass(frozen=True)
class CoatIdentity:
    """One synthetic individual.

    Attributes:
        name: Identity label, e.g. ``"coat_007"``.
        coat: uint8[T, T, 3] RGB coat texture (rosettes and spots on a tawny ground).
        body_aspect: Body height / length of the silhouette (small per-animal variation).
        site_bound: Whether the identity is mostly photographed at its home site.
        home_seed: Seed of the home scene (its colours, kind and layout).
    """

    name: str
    coat: np.ndarray
    body_aspect: float
    site_bound: bool
    home_seed: int


@dataclass(frozen=True)
class SynthReIDSummary:
    """What `generate_coat_dataset` wrote."""

    root: Path
    n_identities: int
    n_train_images: int
    n_test_images: int
    n_pairs: int
    images_per_identity: dict[str, int]


def make_identity(
    index: int, seed: int = 0, texture_size: int = 160, background_leak: float = 0.0
) -> CoatIdentity:
    """Create identity number `index` of the population drawn with `seed`.

    Args:
        index: Identity number (0-based); the name is ``coat_{index:03d}``.
        seed: Population seed.
        texture_size: Side ``T`` of the square coat texture in pixels.
        background_leak: Probability that the identity is site-bound (the coat does not
            depend on it).

    Returns:
        The identity, with its coat texture uint8[T, T, 3].
    """
    rng = numpy_rng(seed, _IDENTITY_STREAM, index)
    t = texture_size
    # Ground colour from pale straw to deep rust: the tone is a (weak) identity cue, as real
    # coats differ in tone too; the rosette layout is the strong one.
    tone = rng.uniform(0.0, 1.0)
    ground = np.array([235 - 45 * tone, 185 - 75 * tone, 110 - 70 * tone], np.float32)
    ground = ground * rng.uniform(0.92, 1.08, size=3).astype(np.float32)
    centre_tone = ground * rng.uniform(0.7, 0.85)
    # Spots from near-black to dark brown.
    brown = rng.uniform(0.0, 1.0)
    spot_tone = rng.uniform(15, 40) * np.array([1 + 0.9 * brown, 1 + 0.4 * brown, 1.0], np.float32)
    fur = _smooth_noise(rng, (t, t), cells=6) * 0.16 + 0.92  # (T, T) ~[0.92, 1.08]
    coat = ground[None, None, :] * fur[..., None]  # (T, T, 3)

    centres = np.zeros((t, t), np.uint8)  # rosette centres (mid-tone)
    spots = np.zeros((t, t), np.uint8)  # dark spots
    # Rosettes on a jittered grid (even coverage, individual layout). Their size, spacing,
    # ring thickness and how often they carry a central dot are per-animal traits.
    r_mean = t * rng.uniform(0.045, 0.07)
    step = rng.uniform(2.3, 3.2) * r_mean
    style = (rng.uniform(0.4, 0.8), rng.uniform(0.0, 0.8))  # (ring thickness, dot chance)
    n_side = int(math.ceil(t / step)) + 1
    for gy in range(n_side):
        for gx in range(n_side):
            if rng.random() < 0.2:
                continue  # gaps make layouts more individual
            cx = (gx + rng.uniform(-0.3, 0.3) + 0.5 * (gy % 2)) * step
            cy = (gy + rng.uniform(-0.3, 0.3)) * step
            _draw_rosette(spots, centres, rng, cx, cy, r_mean * rng.uniform(0.7, 1.3), *style)
    for _ in range(int(rng.integers(4, 30))):  # solid spots between the rosettes
        cx, cy = rng.uniform(0, t, size=2)
        ax = t * rng.uniform(0.008, 0.02)
        _ellipse(spots, cx, cy, ax, ax * rng.uniform(0.6, 1.0), rng.uniform(0, 180))
    for _ in range(int(rng.integers(1, 4))):  # a few bold blotches: memorable marks
        cx, cy = rng.uniform(0.2 * t, 0.8 * t, size=2)
        ax = t * rng.uniform(0.025, 0.045)
        _ellipse(spots, cx, cy, ax, ax * rng.uniform(0.4, 0.8), rng.uniform(0, 180))
    c = centres.astype(np.float32)[..., None] / 255.0
    s = spots.astype(np.float32)[..., None] / 255.0
    coat = coat * (1 - c) + centre_tone[None, None, :] * fur[..., None] * c
    coat = coat * (1 - s) + spot_tone[None, None, :] * s
    return CoatIdentity(
        name=f"coat_{index:03d}",
        coat=np.clip(coat, 0, 255).astype(np.uint8),
        body_aspect=float(rng.uniform(0.44, 0.56)),
        site_bound=bool(rng.random() < background_leak),
        home_seed=int(rng.integers(0, 2**31)),
    )


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


def image_counts(
    n_identities: int, per_id: int, seed: int = 0, long_tail: bool = True, minimum: int = 2
) -> np.ndarray:
    """Images per identity: a long tail (lognormal) with mean close to `per_id`.

    Like the real data (13–183 images per jaguar), a few identities are common and a few
    have only `minimum` images.

    Returns:
        int64[n_identities].
    """
    if n_identities <= 0:
        return np.zeros(0, np.int64)
    if not long_tail:
        return np.full(n_identities, max(per_id, minimum), np.int64)
    rng = numpy_rng(seed, _COUNT_STREAM)
    raw = rng.lognormal(0.0, 0.6, size=n_identities)
    counts = np.round(raw / raw.mean() * per_id)
    counts[np.argsort(raw)[: max(1, n_identities // 10)]] = minimum  # the rare animals
    return np.clip(counts, minimum, 6 * per_id).astype(np.int64)


def generate_coat_dataset(
    out: str | os.PathLike[str],
    n_identities: int = 40,
    per_id: int = 12,
    seed: int = 0,
    size: tuple[int, int] = (128, 128),
    test_fraction: float = 0.2,
    background_leak: float = 0.3,
    occlusion_prob: float = 0.35,
    difficulty: float = 1.0,
    long_tail: bool = True,
    write_image: Callable[[Path, np.ndarray], object] | None = None,
) -> SynthReIDSummary:
    """Write a synthetic dataset in the Kaggle Jaguar Re-ID layout.

    Files written under `out`::

        train.csv        filename,ground_truth
        train/*.png      RGBA training images
        test.csv         row_id,query_image,gallery_image (every ordered pair, q != g)
        test/*.png       RGBA held-out images (the same identities, unseen images)
        test_truth.csv   filename,ground_truth for the test images (for evaluation)
        synth.json       generator parameters

    Args:
        out: Output directory (created).
        n_identities: Number of animals.
        per_id: Mean images per animal (before the train/test split).
        seed: Seed of the whole dataset.
        size: ``(H, W)`` of every image.
        test_fraction: Fraction of each identity's images moved to ``test/`` (animals with
            fewer than 4 images keep all of theirs in ``train/``).
        background_leak: Fraction of site-bound identities (see `make_identity`).
        occlusion_prob: See `render_coat_image`.
        difficulty: See `render_coat_image`.
        long_tail: Draw a long-tailed number of images per identity (else `per_id` each).
        write_image: ``(path, rgba)`` writer; defaults to `fieldvision.data.images.write_image`.

    Returns:
        A summary of what was written.
    """
    if write_image is None:
        from fieldvision.data.images import write_image as _write

        write_image = _write
    root = Path(out)
    counts = image_counts(n_identities, per_id, seed, long_tail)
    split_rng = numpy_rng(seed, _SPLIT_STREAM)
    train_rows: list[tuple[str, str]] = []
    test_rows: list[tuple[str, str]] = []
    for ident_idx, count in enumerate(counts):
        identity = make_identity(ident_idx, seed, background_leak=background_leak)
        n_test = int(round(count * test_fraction)) if count >= 4 else 0
        is_test = np.zeros(int(count), bool)
        is_test[split_rng.choice(int(count), size=n_test, replace=False)] = True
        for img_idx in range(int(count)):
            rng = numpy_rng(seed, _IMAGE_STREAM, ident_idx, img_idx)
            rgba = render_coat_image(identity, rng, size, 0.9, occlusion_prob, difficulty)
            rows, folder = (test_rows, "test") if is_test[img_idx] else (train_rows, "train")
            name = f"{folder}_{len(rows):05d}.png"
            write_image(root / folder / name, rgba)
            rows.append((name, identity.name))
    train = pd.DataFrame(train_rows, columns=["filename", "ground_truth"])
    truth = pd.DataFrame(test_rows, columns=["filename", "ground_truth"])
    names = truth["filename"].to_numpy()
    q_idx, g_idx = np.nonzero(~np.eye(len(names), dtype=bool))  # every ordered pair, q != g
    pairs = pd.DataFrame(
        {
            "row_id": np.arange(len(q_idx)),
            "query_image": names[q_idx],
            "gallery_image": names[g_idx],
        }
    )
    write_csv(root / "train.csv", train)
    write_csv(root / "test.csv", pairs)
    write_csv(root / "test_truth.csv", truth)
    write_json(
        root / "synth.json",
        {
            "generator": "fieldvision.data.synthetic.coats",
            "n_identities": n_identities,
            "per_id": per_id,
            "seed": seed,
            "size": list(size),
            "test_fraction": test_fraction,
            "background_leak": background_leak,
            "occlusion_prob": occlusion_prob,
            "difficulty": difficulty,
            "long_tail": long_tail,
        },
    )
    return SynthReIDSummary(
        root=root,
        n_identities=n_identities,
        n_train_images=len(train),
        n_test_images=len(truth),
        n_pairs=len(pairs),
        images_per_identity={f"coat_{i:03d}": int(c) for i, c in enumerate(counts)},
    )


# --------------------------------------------------------------------------- internals


def _ellipse(canvas: np.ndarray, cx: float, cy: float, ax: float, ay: float, angle: float) -> None:
    # Sub-pixel ellipse: OpenCV takes fixed-point coordinates with `shift` fractional bits.
    f = 16
    cv2.ellipse(
        canvas,
        (round(cx * f), round(cy * f)),
        (max(1, round(ax * f)), max(1, round(ay * f))),
        angle,
        0,
        360,
        255,
        -1,
        cv2.LINE_AA,
        4,
    )


def _draw_rosette(
    spots: np.ndarray,
    centres: np.ndarray,
    rng: np.random.Generator,
    cx: float,
    cy: float,
    r: float,
    thickness: float = 0.6,
    dot_chance: float = 0.35,
) -> None:
    """A ring of 4–7 dark spots (tangential ellipses) around a mid-tone centre."""
    _ellipse(centres, cx, cy, 0.75 * r, 0.75 * r * rng.uniform(0.7, 1.0), rng.uniform(0, 180))
    n = int(rng.integers(4, 8))
    start = rng.uniform(0, 2 * math.pi)
    for k in range(n):
        if rng.random() < 0.12:
            continue  # broken rings
        a = start + 2 * math.pi * k / n + rng.uniform(-0.2, 0.2)
        px, py = cx + r * math.cos(a), cy + r * math.sin(a)
        length = 2 * math.pi * r / n * rng.uniform(0.28, 0.42)
        ay = length * thickness * rng.uniform(0.85, 1.15)
        _ellipse(spots, px, py, length, ay, math.degrees(a) + 90)
    if rng.random() < dot_chance:  # some rosettes carry a central dot
        _ellipse(spots, cx, cy, 0.18 * r, 0.18 * r, 0)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Smooth noise in [0, 1]: a small random grid upsampled with bicubic interpolation."""
    grid = rng.random((cells, cells)).astype(np.float32)
    out = cv2.resize(grid, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    return np.clip(out, 0.0, 1.0)


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
