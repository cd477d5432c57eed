"""Synthetic rosette-coat identities: determinism, masks, background leak, layout."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from fieldvision.data.images import read_rgba
from fieldvision.data.synthetic.coats import (
    generate_coat_dataset,
    image_counts,
    make_identity,
    render_coat_image,
)
from fieldvision.seeding import numpy_rng


def test_identity_is_deterministic_and_distinct():
    a, b = make_identity(3, seed=1), make_identity(3, seed=1)
    assert a.name == "coat_003"
    np.testing.assert_array_equal(a.coat, b.coat)
    other = make_identity(4, seed=1)
    assert np.abs(a.coat.astype(int) - other.coat.astype(int)).mean() > 10
    assert a.coat.dtype == np.uint8 and a.coat.shape == (160, 160, 3)


@pytest.mark.parametrize("size", [(64, 64), (96, 128)])
def test_render_rgba_with_animal_mask(size):
    ident = make_identity(0, 0)
    img = render_coat_image(ident, numpy_rng(0, 1), size, occlusion_prob=0.0)
    assert img.shape == (*size, 4) and img.dtype == np.uint8
    animal = img[..., 3] > 127
    assert 0.05 < animal.mean() < 0.8  # a silhouette, neither empty nor the whole frame
    # The rendering is a pure function of (identity, rng state).
    np.testing.assert_array_equal(img, render_coat_image(ident, numpy_rng(0, 1), size, 0.0, 0.0))


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


def test_image_counts_long_tail():
    counts = image_counts(40, 12, seed=0)
    assert counts.min() == 2 and counts.max() > 2 * 12
    assert abs(counts.mean() - 12) < 4
    np.testing.assert_array_equal(image_counts(5, 7, long_tail=False), [7] * 5)
    assert image_counts(0, 5).shape == (0,)


def test_generate_kaggle_layout(tmp_path):
    s = generate_coat_dataset(tmp_path, n_identities=4, per_id=6, seed=2, size=(32, 32))
    train = pd.read_csv(tmp_path / "train.csv")
    truth = pd.read_csv(tmp_path / "test_truth.csv")
    pairs = pd.read_csv(tmp_path / "test.csv")
    assert list(train.columns) == ["filename", "ground_truth"]
    assert list(pairs.columns) == ["row_id", "query_image", "gallery_image"]
    assert len(train) == s.n_train_images and len(truth) == s.n_test_images
    assert len(pairs) == s.n_pairs == len(truth) * (len(truth) - 1)
    assert (pairs["query_image"] != pairs["gallery_image"]).all()
    assert set(truth["ground_truth"]) <= set(train["ground_truth"])  # closed set
    assert train["ground_truth"].value_counts().min() >= 2
    img = read_rgba(tmp_path / "train" / train["filename"].iloc[0])
    assert img.shape == (32, 32, 4) and (img[..., 3] < 255).any()
    # Same seed, same bytes.
    again = tmp_path / "again"
    generate_coat_dataset(again, n_identities=4, per_id=6, seed=2, size=(32, 32))
    name = train["filename"].iloc[-1]
    np.testing.assert_array_equal(
        read_rgba(tmp_path / "train" / name), read_rgba(again / "train" / name)
    )


def test_render_speed():
    ident = make_identity(0, 0)
    render_coat_image(ident, numpy_rng(0, 0), (128, 128))
    t0 = time.perf_counter()
    for i in range(20):
        render_coat_image(ident, numpy_rng(0, i), (128, 128))
    per_image = (time.perf_counter() - t0) / 20
    assert per_image < 0.05  # ~5 ms on one free core; generous for shared CI machines
