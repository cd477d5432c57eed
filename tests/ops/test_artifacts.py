"""Artifact augmentation: pasted date stamps and red dots, and what the cleaner sees of them."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fieldvision.ops.artifacts import paste_artifacts, paste_date_stamp, paste_red_dots
from fieldvision.ops.cleaning import CleanConfig, clean_image, date_stamp_mask
from fieldvision.seeding import numpy_rng

GRASS = (60, 120, 45)  # RGB


def grass(h: int = 128, w: int = 256, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.asarray(GRASS, np.float32) + rng.normal(0, 6, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def saturated_hues(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """OpenCV hues (0-180) of the changed pixels drawn at full strength (not anti-aliased)."""
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)[mask]
    return hsv[(hsv[:, 1] >= 170) & (hsv[:, 2] >= 170), 0].astype(int)


@pytest.mark.parametrize("seed", range(4))
def test_stamp_is_orange_and_only_in_the_bottom_right_quarter(seed):
    img = grass()
    before = img.copy()
    out, mask = paste_date_stamp(img, numpy_rng(seed))
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.array_equal(img, before)  # the input is never modified
    assert np.array_equal(mask, np.any(out != img, axis=2))  # mask = exactly what changed
    assert mask.sum() > 30
    ys, xs = np.nonzero(mask)
    assert ys.min() >= 0.75 * 128 and xs.min() >= 0.5 * 256  # where cameras print dates
    hues = saturated_hues(out, mask)
    assert len(hues) > 0.3 * mask.sum()
    # Mostly inside the cleaner's stamp hue range; anti-aliased edges mix with the grass
    # and drift towards yellow, never towards red or green.
    assert np.mean((hues >= 5) & (hues <= 25)) > 0.8 and hues.min() >= 5 and hues.max() <= 35


@pytest.mark.parametrize("seed", range(4))
def test_red_dots_are_small_red_discs(seed):
    img = grass()
    out, mask = paste_red_dots(img, numpy_rng(seed), count=(2, 2))
    assert np.array_equal(mask, np.any(out != img, axis=2))
    n_blobs, _ = cv2.connectedComponents(mask.astype(np.uint8))
    assert 2 <= n_blobs <= 3  # two discs (+ background), unless they happen to touch
    # Radius <= 1.2 % of the width (+ 1 px of anti-aliasing): the area of two discs is small.
    assert mask.sum() <= 2 * np.pi * (0.012 * 256 + 1.5) ** 2
    hues = saturated_hues(out, mask)
    assert len(hues) > 0 and np.all((hues <= 4) | (hues >= 176))  # red, never stamp-orange


def test_the_cleaner_finds_and_removes_a_pasted_stamp():
    out, mask = paste_date_stamp(grass(), numpy_rng(7))
    found = date_stamp_mask(out, dilate=0)
    assert (found & mask).sum() > 0.3 * mask.sum()  # the realism: the cleaner sees it ...
    assert not (found & ~mask).any()
    cfg = CleanConfig(bottom_crop=0.0, size=out.shape[:2])
    cleaned, report = clean_image(out, cfg)
    assert report.inpainted and not date_stamp_mask(cleaned, dilate=0).any()  # ... and fills it


@pytest.mark.parametrize("seed", range(6))
def test_red_dots_are_what_the_cleaner_never_removes(seed):
    # The point of pasting dots: no cleaning step masks them, so only augmentation helps.
    out, mask = paste_red_dots(grass(), numpy_rng(seed), count=(3, 3))
    assert mask.any() and not date_stamp_mask(out, region=None).any()
    cleaned, _ = clean_image(out, CleanConfig(bottom_crop=0.0, size=out.shape[:2]))
    assert np.array_equal(cleaned, out)


def test_pasting_is_deterministic_under_a_seed():
    img = grass()
    a, _ = paste_artifacts(img, numpy_rng(5))
    b, _ = paste_artifacts(img, numpy_rng(5))
    c, _ = paste_artifacts(img, numpy_rng(6))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_paste_artifacts_draws_stamp_dots_or_both():
    img = grass()
    kinds = set()
    for seed in range(30):
        _, mask = paste_artifacts(img, numpy_rng(seed))
        corner = np.zeros_like(mask)
        corner[96:, 128:] = True
        kinds.add((bool((mask & corner).sum() > 30), bool((mask & ~corner).any())))
    assert (True, False) in kinds and (True, True) in kinds  # stamp alone; stamp + dots
    assert any(not stamp for stamp, _ in kinds)  # dots alone (no stamp-sized corner blob)


@pytest.mark.parametrize(("stamp", "dots"), [(True, False), (False, True), (False, False)])
def test_paste_artifacts_only_pastes_enabled_kinds(stamp, dots):
    img = grass()
    corner = np.zeros(img.shape[:2], bool)
    corner[96:, 128:] = True
    for seed in range(6):
        out, mask = paste_artifacts(img, numpy_rng(seed), stamp=stamp, dots=dots)
        hues = saturated_hues(out, mask)
        assert np.any((hues >= 5) & (hues <= 25)) == stamp  # orange only from a stamp
        assert np.any((hues <= 4) | (hues >= 176)) == dots  # red only from dots
        if stamp and not dots:
            assert not (mask & ~corner).any()
    if not (stamp or dots):
        assert np.array_equal(out, img) and not mask.any()


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: paste_date_stamp(np.zeros((32, 64, 3), np.float32), numpy_rng(0)), "uint8"),
        (lambda: paste_red_dots(np.zeros((32, 64, 4), np.uint8), numpy_rng(0)), "3 channels"),
        (lambda: paste_artifacts(np.zeros((32, 64), np.uint8), numpy_rng(0)), "uint8"),
        (lambda: paste_red_dots(grass(), numpy_rng(0), count=(0, 2)), "count"),
        (lambda: paste_red_dots(grass(), numpy_rng(0), count=(3, 2)), "count"),
    ],
    ids=["float", "rgba", "2d", "zero-count", "reversed-count"],
)
def test_bad_input_is_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()
