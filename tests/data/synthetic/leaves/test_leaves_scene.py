"""Plot styles and backgrounds: deterministic, jittered per image, every kind renders."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fieldvision.data.synthetic.leaves._scene import (
    BACKGROUND_KINDS,
    background,
    jitter_style,
    make_style,
)
from fieldvision.seeding import numpy_rng


def test_make_style_is_deterministic_and_in_range():
    a, b = make_style(numpy_rng(0, 3)), make_style(numpy_rng(0, 3))
    assert a == b and a != make_style(numpy_rng(0, 4))
    kinds = {make_style(numpy_rng(0, i)).kind for i in range(40)}
    assert kinds == set(BACKGROUND_KINDS)
    for i in range(20):
        style = make_style(numpy_rng(1, i))
        assert 60 <= style.jpeg_quality <= 98 and 0 <= style.dapple <= 0.5
        r, g, _ = style.leaf_green
        assert g > r  # a healthy leaf is green


def test_jitter_keeps_the_plot_and_changes_the_photo():
    style = make_style(numpy_rng(2, 0))
    other = jitter_style(style, numpy_rng(2, 1))
    assert other.kind == style.kind and other.jpeg_quality == style.jpeg_quality
    assert other != style
    assert np.allclose(other.leaf_green, style.leaf_green, rtol=0.2)


@pytest.mark.parametrize("kind", BACKGROUND_KINDS)
def test_background_kinds(kind):
    style = dataclasses.replace(make_style(numpy_rng(3, 0)), kind=kind)
    bg = background(style, numpy_rng(3, 1), 48, 80)
    assert bg.shape == (3, 48, 80) and bg.dtype == np.float32
    assert bg.min() >= 0.0 and bg.max() <= 255.0 and bg.std() > 1.0
    np.testing.assert_array_equal(bg, background(style, numpy_rng(3, 1), 48, 80))
