"""The NumPy resize equals torch's antialiased bilinear interpolation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fieldvision.deploy.images import resize, resize_weights, to_chw


@pytest.mark.parametrize(
    ("src", "dst"),
    [((100, 37), (32, 32)), ((32, 32), (64, 48)), ((64, 64), (16, 16)), ((1000, 2000), (128, 128)),
     ((17, 5), (3, 40)), ((128, 128), (128, 64)), ((7, 7), (1, 1)), ((80, 80), (72, 72))],
)  # fmt: skip
def test_resize_equals_torch_antialiased_bilinear(src, dst):
    x = np.random.default_rng(0).random((2, 3, *src), dtype=np.float32)
    want = F.interpolate(
        torch.from_numpy(x), size=dst, mode="bilinear", align_corners=False, antialias=True
    ).numpy()
    got = resize(x, dst)
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_resize_weights_rows_sum_to_one_and_same_size_is_untouched():
    for n_in, n_out in [(10, 3), (3, 10), (5, 5)]:
        np.testing.assert_allclose(resize_weights(n_in, n_out).sum(1), 1.0, atol=1e-6)
    x = np.random.default_rng(1).random((3, 9, 9), dtype=np.float32)
    assert resize(x, (9, 9)) is x
    with pytest.raises(ValueError):
        resize(x, (0, 3))


def test_to_chw_is_the_torch_conversion():
    img = np.random.default_rng(2).integers(0, 256, (5, 7, 4), dtype=np.uint8)
    want = torch.from_numpy(img).permute(2, 0, 1).float() / 255.0
    np.testing.assert_array_equal(to_chw(img), want.numpy())
