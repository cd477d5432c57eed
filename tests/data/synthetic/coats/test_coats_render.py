"""Rendering coat images: RGBA with an animal mask, occlusion, background leak, new views."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

from fieldvision.data.synthetic.coats import make_identity, render_coat_image
from fieldvision.seeding import numpy_rng


@pytest.mark.parametrize("size", [(64, 64), (96, 128)])
def test_render_rgba_with_animal_mask(size):
    ident = make_identity(0, 0)
    img = render_coat_image(ident, numpy_rng(0, 1), size, occlusion_prob=0.0)
    assert img.shape == (*size, 4) and img.dtype == np.uint8
    animal = img[..., 3] > 127
    assert 0.05 < animal.mean() < 0.8  # a silhouette, neither empty nor the whole frame
    # The rendering is a pure function of (identity, rng state).
    np.testing.assert_array_equal(img, render_coat_image(ident, numpy_rng(0, 1), size, 0.0, 0.0))


def test_render_default_size_gives_a_new_view_per_image():
    ident = make_identity(0, 0)
    images = [render_coat_image(ident, numpy_rng(0, i)) for i in range(4)]
    assert all(img.shape == (128, 128, 4) and img.dtype == np.uint8 for img in images)
    assert all(not np.array_equal(a, b) for a, b in combinations(images, 2))


def test_occlusion_removes_animal_pixels_from_the_mask():
    ident = make_identity(1, 0)
    seen = [render_coat_image(ident, numpy_rng(5, i), (64, 64), 0.0, 0.0)[..., 3] for i in range(6)]
    occl = [render_coat_image(ident, numpy_rng(5, i), (64, 64), 0.0, 1.0)[..., 3] for i in range(6)]
    assert sum(o.sum() for o in occl) < sum(s.sum() for s in seen)


def _border_colour(img: np.ndarray) -> np.ndarray:
    edge = np.concatenate([img[:4, :, :3].reshape(-1, 3), img[-4:, :, :3].reshape(-1, 3)])
    return edge.astype(float).mean(axis=0)


def test_background_leak_ties_backgrounds_to_identities():
    def spread(leak: float) -> float:
        # Mean distance between border colours of images of the same identity.
        dists = []
        for ident_idx in range(4):
            ident = make_identity(ident_idx, 0, background_leak=leak)
            assert ident.site_bound is (leak == 1.0)
            cols = [
                _border_colour(render_coat_image(ident, numpy_rng(9, ident_idx, i), (48, 48), 1.0))
                for i in range(6)
            ]
            dists += [np.linalg.norm(a - b) for a in cols for b in cols]
        return float(np.mean(dists))

    assert spread(1.0) < 0.5 * spread(0.0)  # lighting still varies per image
    # The coat is the same whatever the leak.
    np.testing.assert_array_equal(make_identity(2, 0, 160, 1.0).coat, make_identity(2, 0).coat)
