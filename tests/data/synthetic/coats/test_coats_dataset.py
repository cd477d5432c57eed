"""Coat dataset writer: long-tailed image counts and the Kaggle Re-ID layout on disk."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fieldvision.data.images import read_rgba
from fieldvision.data.synthetic.coats import generate_coat_dataset, image_counts


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
