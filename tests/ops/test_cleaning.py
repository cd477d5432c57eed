"""Date-stamp masking, inpainting, CLAHE, cropping and the full cleaning pass."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from fieldvision.ops.cleaning import (
    CleanConfig,
    CleaningReport,
    apply_clahe,
    clean_image,
    crop_bottom,
    date_stamp_mask,
    inpaint,
)

GRASS = (60, 120, 45)  # RGB
ORANGE = (255, 150, 10)


def grass(h: int = 128, w: int = 256, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), np.float32)
    img[:] = GRASS
    img += rng.normal(0, 6, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def stamped(h: int = 128, w: int = 256) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Grass with an orange date in the bottom-right corner; returns (img, (y0, x0, y1, x1))."""
    img = grass(h, w)
    text, font, scale, thick = "2015/09/04", cv2.FONT_HERSHEY_SIMPLEX, 0.35, 1
    (tw, th), base = cv2.getTextSize(text, font, scale, thick)
    x, y = w - tw - 4, h - 16
    cv2.putText(img, text, (x, y), font, scale, ORANGE, thick, cv2.LINE_AA)
    return img, (y - th - 1, x - 1, y + base + 1, x + tw + 1)


def test_stamp_mask_finds_orange_digits_in_the_corner():
    img, (y0, x0, y1, x1) = stamped()
    mask = date_stamp_mask(img, dilate=0)
    assert mask.dtype == bool and mask.shape == img.shape[:2]
    assert mask[y0:y1, x0:x1].sum() > 20
    outside = mask.copy()
    outside[y0:y1, x0:x1] = False
    assert not outside.any()


def test_stamp_mask_dilation_grows_the_mask():
    img, _ = stamped()
    assert date_stamp_mask(img, dilate=3).sum() > date_stamp_mask(img, dilate=0).sum()


def test_stamp_mask_ignores_orange_outside_the_region():
    img = grass()
    img[5:20, 5:40] = ORANGE  # an orange flower in the top-left corner
    assert not date_stamp_mask(img).any()
    assert date_stamp_mask(img, region=None).any()


@pytest.mark.parametrize(
    "colour",
    [GRASS, (110, 80, 50), (190, 170, 110), (180, 170, 60), (200, 200, 200)],
    ids=["grass", "brown-soil", "straw", "yellow-grass", "grey-frame"],
)
def test_stamp_mask_ignores_field_colours(colour):
    img = np.full((64, 128, 3), colour, np.uint8)
    assert not date_stamp_mask(img, region=None).any()


def test_inpaint_fills_from_surroundings_and_keeps_input():
    img, _ = stamped()
    before = img.copy()
    mask = date_stamp_mask(img)
    out = inpaint(img, mask)
    assert np.array_equal(img, before)
    # The stamp is gone: filled pixels look like grass again, not orange.
    filled = out[mask].astype(float)
    assert np.abs(filled.mean(0) - np.array(GRASS)).max() < 25
    assert not date_stamp_mask(out, dilate=0).any()
    # Pixels outside the mask are untouched.
    assert np.array_equal(out[~mask], img[~mask])


@pytest.mark.parametrize("method", ["telea", "ns"])
def test_inpaint_methods_and_empty_mask(method):
    img = grass(32, 64)
    empty = np.zeros(img.shape[:2], bool)
    out = inpaint(img, empty, method=method)
    assert np.array_equal(out, img) and out is not img


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "bogus"}, "telea"),
        ({"mask": np.zeros((3, 3), bool)}, "does not match"),
    ],
)
def test_inpaint_bad_arguments(kwargs, message):
    img = grass(16, 32)
    args = {"img": img, "mask": np.zeros((16, 32), bool), **kwargs}
    with pytest.raises(ValueError, match=message):
        inpaint(**args)


def test_clahe_raises_local_contrast_and_keeps_shape():
    rng = np.random.default_rng(0)
    flat = np.clip(rng.normal(100, 4, (64, 128, 3)), 0, 255).astype(np.uint8)
    out = apply_clahe(flat, clip_limit=4.0)
    assert out.shape == flat.shape and out.dtype == np.uint8
    assert out.astype(float).std() > flat.astype(float).std()


@pytest.mark.parametrize(("fraction", "rows"), [(0.0, 0), (0.1, 10), (0.25, 25)])
def test_crop_bottom(fraction, rows):
    img = np.arange(100)[:, None, None].repeat(3, 2).repeat(4, 1).astype(np.uint8)
    out = crop_bottom(img, fraction)
    assert out.shape[0] == 100 - rows
    assert out[-1, 0, 0] == 99 - rows  # the bottom rows are the ones removed


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5])
def test_crop_bottom_rejects_bad_fraction(fraction):
    with pytest.raises(ValueError, match="fraction"):
        crop_bottom(grass(8, 16), fraction)


@pytest.mark.parametrize(
    "bad",
    [{"bottom_crop": 0.6}, {"bottom_crop": -0.1}, {"inpaint": "fast"}, {"size": (0, 4)}, {"x": 1}],
)
def test_clean_config_validation(bad):
    with pytest.raises(ValidationError):
        CleanConfig(**bad)


def test_fingerprint_is_stable_and_sensitive():
    a = CleanConfig()
    assert a.fingerprint() == CleanConfig().fingerprint()
    assert len(a.fingerprint()) == 16
    assert a.fingerprint() != CleanConfig(clahe=True).fingerprint()
    assert a.fingerprint() != CleanConfig(size=(128, 256)).fingerprint()


def test_clean_image_full_pass():
    img, _ = stamped(200, 400)
    cfg = CleanConfig(size=(64, 128), bottom_crop=0.1)
    out, report = clean_image(img, cfg, converted_from="grayscale")
    assert out.shape == (64, 128, 3) and out.dtype == np.uint8
    assert isinstance(report, CleaningReport)
    assert report.masked_fraction > 0 and report.inpainted
    assert report.cropped_rows == 20
    assert report.original_size == (200, 400)
    assert report.resized_from == (180, 400)
    assert report.converted_from == "grayscale"
    assert not report.clahe
    assert not date_stamp_mask(out, dilate=0).any()
    assert CleaningReport.from_dict(report.to_dict()) == report


def test_clean_image_inpaint_none_leaves_masked_pixels():
    img, _ = stamped()
    cfg = CleanConfig(inpaint="none", bottom_crop=0.0, size=img.shape[:2])
    out, report = clean_image(img, cfg)
    assert report.masked_fraction > 0 and not report.inpainted
    assert report.resized_from is None
    assert np.array_equal(out, img) and out is not img


def test_clean_image_switches():
    img, _ = stamped()
    cfg = CleanConfig(stamp_mask=False, clahe=True, bottom_crop=0.0, size=(128, 256))
    out, report = clean_image(img, cfg)
    assert report.masked_fraction == 0 and not report.inpainted and report.clahe
    assert date_stamp_mask(out).any()  # the stamp was left in place


def test_clean_image_rejects_non_rgb():
    with pytest.raises(ValueError, match="uint8"):
        clean_image(np.zeros((8, 16, 3), np.float32), CleanConfig())
    with pytest.raises(ValueError, match="3 channels"):
        clean_image(np.zeros((8, 16, 4), np.uint8), CleanConfig())
