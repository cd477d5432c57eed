"""Synthetic camera artifacts pasted on *cleaned* training photos (artifact augmentation).

The cleaner (`fieldvision.ops.cleaning`) masks and inpaints the orange camera date stamp,
but no detector is perfect: a faint, blurred or unusually coloured stamp survives, and
nothing removes the small red marker dots some photos carry. Pasting such artifacts on a
random share of the training images *after* cleaning (the 10th-place CSIRO recipe) teaches
the model to ignore them instead of relying on the cleaner catching every one.

Images are ``np.ndarray[H, W, 3]`` uint8 **RGB** in and out, like the cleaner's; the input
is never modified. Every random choice comes from the caller's ``np.random.Generator``.

* Date stamps are drawn by the synthetic pasture generator's own stamp painter
  (`fieldvision.data.synthetic.pasture._draw._draw_stamp`), so size (about 4.5 % of the image
  height, at least 7 px), font, stroke width, colour (RGB ``(255, 120..169, 0..29)``, OpenCV
  hue 12-20, inside the cleaner's ``(5, 25)`` stamp hue range) and place (bottom-right
  quarter, where `date_stamp_mask` searches) match what the generator renders and what the
  cleaner assumes.
* Red dots are small hard-edged filled discs (radius 0.6-1.2 % of the image width, at
  least 1.5 px) in saturated red (RGB ``(200..255, 0..9, 0..9)``, OpenCV hue 0-2 or
  178-180) anywhere in the image. The cleaner has no red-dot detector: its stamp mask
  starts at hue 5, so the dots are exactly what cleaning never removes. Their edges are
  hard, because an anti-aliased red-on-green rim passes through the stamp's orange.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# The generator's painter, imported rather than copied: the pasted stamp is by construction
# the one the synthetic photos carry and the cleaner was tuned on.
from fieldvision.data.synthetic.pasture._draw import _draw_stamp

__all__ = ["ARTIFACT_KINDS", "paste_artifacts", "paste_date_stamp", "paste_red_dots"]

#: What `paste_artifacts` can paste.
ARTIFACT_KINDS: tuple[str, ...] = ("stamp", "dots")


def _check(img: np.ndarray) -> None:
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3:
        raise ValueError(f"img must be a uint8 array [H, W, 3], got {type(img).__name__}")
    if img.shape[2] != 3:
        raise ValueError(f"img must have 3 channels (RGB), got shape {img.shape}")


def _changed(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    return np.any(before != after, axis=2)  # (H, W) bool


def _date_text(rng: np.random.Generator) -> str:
    """A camera-style date, e.g. ``2016/03/21`` (digits and slashes, like the real imprint)."""
    year, month, day = (int(rng.integers(lo, hi)) for lo, hi in ((2014, 2020), (1, 13), (1, 29)))
    return f"{year}/{month:02d}/{day:02d}"


def paste_date_stamp(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Print an orange camera date in the bottom-right corner.

    Args:
        img: np.ndarray[H, W, 3] uint8 RGB (H >= 16 and W >= 32 for a legible stamp).
        rng: Source of the date, colour and offset.

    Returns:
        ``(out, mask)``: a new np.ndarray[H, W, 3] uint8 and np.ndarray[H, W] bool, True
        exactly where `out` differs from `img`.
    """
    _check(img)
    out = np.ascontiguousarray(img).copy()
    _draw_stamp(out, _date_text(rng), rng)
    return out, _changed(img, out)


def paste_red_dots(
    img: np.ndarray, rng: np.random.Generator, count: tuple[int, int] = (1, 4)
) -> tuple[np.ndarray, np.ndarray]:
    """Paint a few small saturated red discs at uniform random places.

    Args:
        img: np.ndarray[H, W, 3] uint8 RGB.
        rng: Source of count, places, radii and colours.
        count: Inclusive range of the number of dots.

    Returns:
        ``(out, mask)`` as in `paste_date_stamp`.
    """
    _check(img)
    lo, hi = count
    if not 1 <= lo <= hi:
        raise ValueError(f"count must be (lo, hi) with 1 <= lo <= hi, got {count}")
    H, W = img.shape[:2]
    out = np.ascontiguousarray(img).copy()
    # cv2 draws at 1/16-px precision with shift=4, so small radii are not rounded to whole px.
    shift = 4
    for _ in range(int(rng.integers(lo, hi + 1))):
        radius = max(1.5, W * float(rng.uniform(0.006, 0.012)))
        cx = float(rng.uniform(radius, max(W - radius, radius)))
        cy = float(rng.uniform(radius, max(H - radius, radius)))
        # G, B < 10 keeps the hue at most 2 on OpenCV's scale: clear of the stamp range.
        colour = (int(rng.integers(200, 256)), int(rng.integers(0, 10)), int(rng.integers(0, 10)))
        centre = (int(round(cx * 2**shift)), int(round(cy * 2**shift)))
        r = int(math.ceil(radius * 2**shift))
        # Hard edges: an anti-aliased rim blends red with green through orange, which the
        # stamp mask would pick up as a date stamp.
        cv2.circle(out, centre, r, colour, thickness=-1, lineType=cv2.LINE_8, shift=shift)
    return out, _changed(img, out)


def paste_artifacts(
    img: np.ndarray,
    rng: np.random.Generator,
    *,
    stamp: bool = True,
    dots: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Paste a random non-empty subset of the enabled artifacts.

    With both kinds enabled, the image gets a stamp only, dots only, or both, with equal
    probability (real photos carry either, or both).

    Args:
        img: np.ndarray[H, W, 3] uint8 RGB.
        rng: Source of every random choice.
        stamp: Allow an orange date stamp (`paste_date_stamp`).
        dots: Allow red dots (`paste_red_dots`).

    Returns:
        ``(out, mask)`` as in `paste_date_stamp`; with nothing enabled, a copy of `img`
        and an all-False mask.
    """
    _check(img)
    kinds = [k for k, on in (("stamp", stamp), ("dots", dots)) if on]
    if len(kinds) == 2:
        pick = int(rng.integers(0, 3))  # 0: stamp, 1: dots, 2: both
        kinds = [kinds[pick]] if pick < 2 else kinds
    out = np.ascontiguousarray(img).copy()
    if "stamp" in kinds:
        out, _ = paste_date_stamp(out, rng)
    if "dots" in kinds:
        out, _ = paste_red_dots(out, rng)
    return out, _changed(img, out)
