"""Synthetic identities: `CoatIdentity` and its coat texture of rosettes and spots."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fieldvision.data.synthetic.coats._draw import _ellipse, _smooth_noise
from fieldvision.seeding import numpy_rng

# Stream id for numpy_rng so identities never share random numbers with images or counts
# (the other streams are in `_dataset`).
_IDENTITY_STREAM = 1


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
