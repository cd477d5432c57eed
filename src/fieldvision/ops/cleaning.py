"""Deterministic photo cleaning for field images: date stamps, contrast, bottom artifacts.

Images are ``np.ndarray[H, W, 3]`` uint8 **RGB** in and out (OpenCV's own functions are
channel-order agnostic except for colour conversions, which use the RGB codes here).

`clean_image` applies, in order:

1. camera date-stamp mask (saturated orange digits in the bottom-right corner) and
   inpainting (Telea / Navier-Stokes), or nothing when ``inpaint="none"``;
2. optional CLAHE on the L channel of LAB (an ablation switch, off by default: the seed
   argues local contrast equalisation changes the colour statistics a regressor relies on);
3. crop of the bottom fraction (quadrat frame, tape, shadows live there);
4. resize to the model size with ``cv2.INTER_AREA`` (the right filter for shrinking),

and returns a `CleaningReport` that says what each step changed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import Field, field_validator

from fieldvision.config import StrictModel

__all__ = [
    "CLEANING_VERSION",
    "CleanConfig",
    "CleaningReport",
    "apply_clahe",
    "clean_image",
    "crop_bottom",
    "date_stamp_mask",
    "inpaint",
]

#: Bump when the cleaning code changes its output, so on-disk caches are invalidated.
CLEANING_VERSION = 1


def _check_rgb(img: np.ndarray, name: str = "img") -> None:
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3:
        raise ValueError(f"{name} must be a uint8 array [H, W, 3], got {_describe(img)}")
    if img.shape[2] != 3:
        raise ValueError(f"{name} must have 3 channels (RGB), got shape {img.shape}")


def _describe(obj: Any) -> str:
    if isinstance(obj, np.ndarray):
        return f"{obj.dtype} array of shape {obj.shape}"
    return type(obj).__name__


def date_stamp_mask(
    img: np.ndarray,
    *,
    hue: tuple[int, int] = (5, 25),
    sat_min: int = 170,
    val_min: int = 170,
    dilate: int = 3,
    region: tuple[float, float] | None = (0.25, 0.5),
) -> np.ndarray:
    """Find camera date-stamp pixels: saturated, bright orange/amber.

    Args:
        img: np.ndarray[H, W, 3] uint8 RGB.
        hue: Inclusive hue range on OpenCV's 0-180 scale; (5, 25) spans red-orange to amber
            (10-50 degrees). Straw and soil share the hue but not the saturation/brightness.
        sat_min: Minimum HSV saturation (0-255); stamps are printed fully saturated.
        val_min: Minimum HSV value (0-255); stamps are bright.
        dilate: Grow the mask by this many pixels (elliptical kernel) so anti-aliased,
            JPEG-blurred digit edges are covered too. 0 disables.
        region: ``(bottom_fraction, right_fraction)`` of the image searched, by default the
            bottom 25 % of rows and right 50 % of columns, where cameras print the date; orange
            flowers or leaves elsewhere are never masked. ``None`` searches the whole image.

    Returns:
        np.ndarray[H, W] bool, True where the stamp is.
    """
    _check_rgb(img)
    H, W = img.shape[:2]
    mask = np.zeros((H, W), dtype=bool)
    if H == 0 or W == 0:
        return mask
    top, left = 0, 0
    if region is not None:
        bottom_frac, right_frac = region
        if not (0 < bottom_frac <= 1 and 0 < right_frac <= 1):
            raise ValueError(f"region fractions must be in (0, 1], got {region}")
        top = H - int(round(H * bottom_frac))
        left = W - int(round(W * right_frac))
    hsv = cv2.cvtColor(np.ascontiguousarray(img[top:, left:]), cv2.COLOR_RGB2HSV)
    lo = np.array([hue[0], sat_min, val_min], dtype=np.uint8)
    hi = np.array([hue[1], 255, 255], dtype=np.uint8)
    sub = cv2.inRange(hsv, lo, hi)  # (h, w) uint8 0/255
    mask[top:, left:] = sub > 0
    if dilate > 0 and mask.any():
        k = 2 * dilate + 1
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        mask = cv2.dilate(mask.astype(np.uint8), kernel) > 0
    return mask


def inpaint(
    img: np.ndarray,
    mask: np.ndarray,
    method: Literal["telea", "ns"] = "telea",
    radius: int = 3,
) -> np.ndarray:
    """Fill masked pixels from their surroundings with OpenCV's inpainting.

    Only the bounding box of the mask (plus a margin) is processed, so a small stamp on a
    2000 x 1000 photo costs milliseconds.

    Args:
        img: np.ndarray[H, W, 3] uint8 RGB.
        mask: np.ndarray[H, W] bool (or 0/255 uint8), True where pixels are replaced.
        method: ``"telea"`` (fast marching, Telea 2004) or ``"ns"`` (Navier-Stokes).
        radius: Neighbourhood radius in pixels.

    Returns:
        A new np.ndarray[H, W, 3] uint8; `img` is not modified.
    """
    _check_rgb(img)
    if mask.shape != img.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match image {img.shape[:2]}")
    flags = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}
    if method not in flags:
        raise ValueError(f"method must be 'telea' or 'ns', got {method!r}")
    out = img.copy()
    m = mask.astype(bool)
    if not m.any():
        return out
    ys, xs = np.nonzero(m)
    pad = 2 * radius + 2
    y0, y1 = max(int(ys.min()) - pad, 0), min(int(ys.max()) + pad + 1, img.shape[0])
    x0, x1 = max(int(xs.min()) - pad, 0), min(int(xs.max()) + pad + 1, img.shape[1])
    crop = np.ascontiguousarray(img[y0:y1, x0:x1])
    crop_mask = m[y0:y1, x0:x1].astype(np.uint8) * 255
    out[y0:y1, x0:x1] = cv2.inpaint(crop, crop_mask, float(radius), flags[method])
    return out


def apply_clahe(
    img: np.ndarray, clip_limit: float = 2.0, tile_grid: tuple[int, int] = (8, 8)
) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation of the lightness channel only.

    Equalising L (of CIE LAB) evens out shadows without shifting hues the way per-channel
    RGB equalisation would.

    Args:
        img: np.ndarray[H, W, 3] uint8 RGB.
        clip_limit: CLAHE contrast limit (higher = stronger equalisation).
        tile_grid: ``(cols, rows)`` of the equalisation grid, OpenCV's convention.

    Returns:
        np.ndarray[H, W, 3] uint8 RGB.
    """
    _check_rgb(img)
    lab = cv2.cvtColor(img, cv2.COLOR_RGB2LAB)
    clahe = cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=tuple(tile_grid))
    lab[..., 0] = clahe.apply(np.ascontiguousarray(lab[..., 0]))
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def crop_bottom(img: np.ndarray, fraction: float) -> np.ndarray:
    """Drop the bottom ``round(H * fraction)`` rows.

    Args:
        img: np.ndarray[H, W, ...].
        fraction: In [0, 1).

    Returns:
        A view np.ndarray[H - rows, W, ...].
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    rows = int(round(img.shape[0] * fraction))
    return img[: img.shape[0] - rows]


class CleanConfig(StrictModel):
    """How images are cleaned before any model sees them (part of the cache key)."""

    # Find the orange camera date stamp (bottom-right corner) ...
    stamp_mask: bool = True
    # ... and fill it by inpainting ("none": leave the masked pixels untouched).
    inpaint: Literal["telea", "ns", "none"] = "telea"
    # Inpainting neighbourhood radius in pixels (of the original image).
    inpaint_radius: int = Field(3, ge=1, le=50)
    # CLAHE on lightness. Off by default: it can hurt regression (seed 000); an ablation switch.
    clahe: bool = False
    clahe_clip_limit: float = Field(2.0, gt=0)
    # Fraction of rows cut from the bottom (quadrat frame, tape, shadows); 0 for deployment.
    bottom_crop: float = Field(0.10, ge=0.0, le=0.5)
    # Output size (H, W) after cleaning; 2:1 like the CSIRO photos (2000 x 1000).
    size: tuple[int, int] = (256, 512)

    @field_validator("size")
    @classmethod
    def _positive_size(cls, value: tuple[int, int]) -> tuple[int, int]:
        if value[0] < 1 or value[1] < 1:
            raise ValueError(f"size must be positive (H, W), got {value}")
        return value

    def fingerprint(self) -> str:
        """Stable 16-hex-digit hash of every field and of `CLEANING_VERSION`."""
        data = {"version": CLEANING_VERSION, **self.model_dump(mode="json")}
        blob = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class CleaningReport:
    """What `clean_image` changed in one image.

    Attributes:
        masked_fraction: Fraction of the original image's pixels flagged as date stamp.
        inpainted: Whether masked pixels were inpainted (False if none were found).
        clahe: Whether CLAHE was applied.
        cropped_rows: Rows removed from the bottom.
        original_size: ``(H, W)`` of the decoded image.
        resized_from: ``(H, W)`` before the final resize, or None if no resize was needed.
        converted_from: What the reader converted from (e.g. ``"16-bit grayscale"``), or None.
    """

    masked_fraction: float
    inpainted: bool
    clahe: bool
    cropped_rows: int
    original_size: tuple[int, int]
    resized_from: tuple[int, int] | None
    converted_from: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CleaningReport:
        """Inverse of `to_dict`."""
        resized = data.get("resized_from")
        return cls(
            masked_fraction=float(data["masked_fraction"]),
            inpainted=bool(data["inpainted"]),
            clahe=bool(data["clahe"]),
            cropped_rows=int(data["cropped_rows"]),
            original_size=(int(data["original_size"][0]), int(data["original_size"][1])),
            resized_from=None if resized is None else (int(resized[0]), int(resized[1])),
            converted_from=data.get("converted_from"),
        )


def clean_image(
    img: np.ndarray, cfg: CleanConfig, *, converted_from: str | None = None
) -> tuple[np.ndarray, CleaningReport]:
    """Run the cleaning steps configured in `cfg` (see the module docstring for the order).

    Args:
        img: np.ndarray[H, W, 3] uint8 RGB, as decoded.
        cfg: The cleaning configuration.
        converted_from: Passed through to the report (what the image reader converted).

    Returns:
        ``(cleaned, report)`` with cleaned np.ndarray[cfg.size[0], cfg.size[1], 3] uint8 RGB.
    """
    _check_rgb(img)
    H, W = img.shape[:2]
    if H < 2 or W < 2:
        raise ValueError(f"image too small to clean: {img.shape}")
    out = img
    masked_fraction = 0.0
    inpainted = False
    if cfg.stamp_mask:
        mask = date_stamp_mask(img)
        masked_fraction = float(mask.mean())
        if cfg.inpaint != "none" and masked_fraction > 0:
            out = inpaint(out, mask, method=cfg.inpaint, radius=cfg.inpaint_radius)
            inpainted = True
    if cfg.clahe:
        out = apply_clahe(out, clip_limit=cfg.clahe_clip_limit)
    before_crop = out.shape[0]
    out = crop_bottom(out, cfg.bottom_crop)
    cropped_rows = before_crop - out.shape[0]
    target_h, target_w = cfg.size
    resized_from: tuple[int, int] | None = None
    if out.shape[:2] != (target_h, target_w):
        resized_from = (int(out.shape[0]), int(out.shape[1]))
        # INTER_AREA averages source pixels: no aliasing when shrinking (the common case).
        out = cv2.resize(out, (target_w, target_h), interpolation=cv2.INTER_AREA)
    out = np.ascontiguousarray(out)
    if out is img:
        out = img.copy()
    report = CleaningReport(
        masked_fraction=masked_fraction,
        inpainted=inpainted,
        clahe=cfg.clahe,
        cropped_rows=int(cropped_rows),
        original_size=(int(H), int(W)),
        resized_from=resized_from,
        converted_from=converted_from,
    )
    return out, report
