"""Hard negatives: lesion-coloured marks on healthy leaves, at the configured rate."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fieldvision.data.synthetic.leaves import DISTRACTOR_KINDS, render_leaf_layers
from fieldvision.data.synthetic.leaves._distractors import (
    _DRAW,
    _dead_tip,
    _visible_tip,
    add_distractors,
)
from fieldvision.data.synthetic.leaves._leaf import draw_leaves, sample_blades, sample_leaf_point
from fieldvision.data.synthetic.leaves._scene import background, make_style
from fieldvision.seeding import numpy_rng


def _canvas(rng, h: int = 128, w: int = 128):
    style = make_style(rng)
    blades = sample_blades(rng, h, w, style)
    return draw_leaves(background(style, rng, h, w), blades, style, rng), style


def _lesion_coloured(img: np.ndarray) -> np.ndarray:
    """bool[H, W]: brown / yellow / orange, or grey-white (not leaf green)."""
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV_FULL).astype(np.float32)
    hue, sat, val = hsv[..., 0] * 360 / 256, hsv[..., 1] / 255, hsv[..., 2] / 255
    return ((hue < 60) & (sat > 0.25) & (val > 0.2)) | ((sat < 0.18) & (val > 0.55))


def _suspicious_pixels(rate: float, n: int = 16) -> np.ndarray:
    counts = []
    for i in range(n):
        layers = render_leaf_layers("healthy", (192, 192), numpy_rng(7, i), distractors=rate)
        inner = cv2.erode(layers.leaf.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        counts.append(int((_lesion_coloured(layers.image) & inner & (layers.mask == 0)).sum()))
    return np.array(counts)


def test_healthy_leaves_get_lesion_like_distractors_at_the_rate():
    assert (_suspicious_pixels(1.0) >= 5).mean() >= 0.75
    assert (_suspicious_pixels(0.0) >= 5).mean() <= 0.1


def test_rate_is_the_probability_of_any_distractor():
    rng_of = lambda i: numpy_rng(8, i)  # noqa: E731
    none = [
        render_leaf_layers("healthy", (64, 64), rng_of(i), 0.0).distractors.any() for i in range(10)
    ]
    every = [
        render_leaf_layers("healthy", (64, 64), rng_of(i), 1.0).distractors.any() for i in range(10)
    ]
    half = [
        render_leaf_layers("blight", (64, 64), rng_of(i), 0.5).distractors.any() for i in range(40)
    ]
    assert not any(none) and all(every)
    assert 0.3 <= np.mean(half) <= 0.7


def test_add_distractors_rate_zero_leaves_the_canvas_alone():
    rng = numpy_rng(9, 0)
    canvas, style = _canvas(rng)
    before = canvas.image.copy()
    assert not add_distractors(canvas, style, rng, 0.0).any()
    np.testing.assert_array_equal(canvas.image, before)


@pytest.mark.parametrize("kind", DISTRACTOR_KINDS)
def test_every_kind_paints_something(kind):
    for i in range(30):  # find a scene where the kind applies (dead tips need a visible tip)
        rng = numpy_rng(10, i)
        canvas, style = _canvas(rng)
        tip = _visible_tip(canvas)
        if kind == "dead_tip" and tip is None:
            continue
        before = canvas.image.copy()
        if kind == "dead_tip":
            patches = _dead_tip(canvas, rng, tip)
        else:
            patches = _DRAW[kind](canvas, style, rng, sample_leaf_point(canvas, rng))
        if not patches:
            continue
        assert np.abs(canvas.image - before).max() > 20
        assert sum(float(p.alpha.sum()) for p in patches) > 1
        return
    pytest.fail(f"{kind} never painted")
