"""Rendering leaf photos: determinism, label / mask consistency, distinct disease looks."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

from fieldvision.data.synthetic.leaves import (
    LEAF_CLASSES,
    LESION_FRACTION,
    make_style,
    render_leaf,
    render_leaf_layers,
)
from fieldvision.seeding import numpy_rng


def test_render_is_deterministic_in_the_generator():
    img, mask = render_leaf("blast", (96, 128), numpy_rng(0, 1))
    assert img.shape == (96, 128, 3) and img.dtype == np.uint8
    assert mask.shape == (96, 128) and mask.dtype == np.uint8
    again_img, again_mask = render_leaf("blast", (96, 128), numpy_rng(0, 1))
    np.testing.assert_array_equal(img, again_img)
    np.testing.assert_array_equal(mask, again_mask)
    other_img, _ = render_leaf("blast", (96, 128), numpy_rng(0, 2))
    assert not np.array_equal(img, other_img)
    assert not np.array_equal(img, render_leaf("blast", (96, 128), numpy_rng(1, 1))[0])


def test_label_and_mask_agree_over_a_sample():
    lo, hi = LESION_FRACTION
    for i in range(20):
        label = LEAF_CLASSES[i % 4]
        layers = render_leaf_layers(label, (256, 256), numpy_rng(3, i))
        lesion = layers.mask > 0
        assert set(np.unique(layers.mask)) <= {0, 255}
        if label == "healthy":
            assert not lesion.any()
            continue
        assert lo <= lesion.mean() <= hi, (i, label, lesion.mean())
        assert layers.leaf[lesion].mean() >= 0.95  # lesions lie on the leaf
        assert not (layers.distractors & lesion).any()  # distractors are never lesions


def test_leaf_fills_a_large_part_of_the_photo():
    cover = [
        render_leaf_layers("healthy", (128, 128), numpy_rng(4, i)).leaf.mean() for i in range(10)
    ]
    assert min(cover) > 0.2 and np.mean(cover) > 0.35


def test_diseases_have_distinct_looks():
    means = {}
    for label in LEAF_CLASSES[1:]:
        pixels = []
        for i in range(8):
            layers = render_leaf_layers(label, (192, 192), numpy_rng(5, i))
            pixels.append(layers.image[layers.mask > 0].astype(np.float64).mean(axis=0))
        means[label] = np.mean(pixels, axis=0)
    for a, b in combinations(means, 2):
        assert np.linalg.norm(means[a] - means[b]) > 30, (a, b, means)
    r, _, b = means["blast"]
    assert b / r > means["brown_spot"][2] / means["brown_spot"][0] + 0.1  # grey-white centres
    assert means["brown_spot"].sum() < means["blight"].sum() - 100  # dark spots, bright streaks
    assert means["blight"][0] > means["blight"][2] * 1.5  # yellow-orange


def test_a_plot_style_is_shared_but_each_photo_differs():
    style = make_style(numpy_rng(6, 0))
    a = render_leaf_layers("healthy", (64, 64), numpy_rng(6, 1), style=style)
    b = render_leaf_layers("healthy", (64, 64), numpy_rng(6, 2), style=style)
    assert not np.array_equal(a.image, b.image)
    np.testing.assert_array_equal(
        a.image, render_leaf_layers("healthy", (64, 64), numpy_rng(6, 1), style=style).image
    )


def test_unknown_label_raises():
    with pytest.raises(ValueError, match="unknown class"):
        render_leaf("rust", (64, 64), numpy_rng(0, 0))
