"""Lesions: area budget per image, placement on the leaf, healthy leaves untouched."""

from __future__ import annotations

import numpy as np
import pytest

from fieldvision.data.synthetic.leaves._leaf import draw_leaves, sample_blades
from fieldvision.data.synthetic.leaves._lesions import LEAF_CLASSES, LESION_FRACTION, add_lesions
from fieldvision.data.synthetic.leaves._scene import background, make_style
from fieldvision.seeding import numpy_rng


def _canvas(rng, h: int = 128, w: int = 128):
    style = make_style(rng)
    return draw_leaves(background(style, rng, h, w), sample_blades(rng, h, w, style), style, rng)


def test_healthy_paints_nothing():
    rng = numpy_rng(0, 0)
    canvas = _canvas(rng)
    before = canvas.image.copy()
    mask = add_lesions(canvas, "healthy", rng)
    assert mask.shape == (128, 128) and mask.dtype == np.uint8 and not mask.any()
    np.testing.assert_array_equal(canvas.image, before)


@pytest.mark.parametrize("label", LEAF_CLASSES[1:])
def test_lesion_area_and_placement(label):
    lo, hi = LESION_FRACTION
    for i in range(8):
        rng = numpy_rng(1, i)
        canvas = _canvas(rng, 128, 160)
        before = canvas.image.copy()
        mask = add_lesions(canvas, label, rng)
        assert set(np.unique(mask)) == {0, 255}
        lesion = mask > 0
        assert lo <= lesion.mean() <= hi
        assert (canvas.top[lesion] >= 0).all()  # on the leaf
        changed = np.abs(canvas.image - before).max(axis=0) > 10
        assert changed[lesion].mean() > 0.5  # the mask is where the paint went
        assert changed.sum() < 4 * lesion.sum() + 400  # ... and not much elsewhere


def test_unknown_class_raises():
    rng = numpy_rng(2, 0)
    with pytest.raises(ValueError, match="unknown class"):
        add_lesions(_canvas(rng, 64, 64), "rust", rng)
