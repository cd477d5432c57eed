"""Light and camera: illumination gradient along the light direction, uint8 RGB output."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from fieldvision.data.synthetic.leaves._camera import expose, illumination
from fieldvision.data.synthetic.leaves._scene import make_style
from fieldvision.seeding import numpy_rng


def test_illumination_follows_the_light_direction():
    style = dataclasses.replace(
        make_style(numpy_rng(0, 0)), light_angle=0.0, light_ramp=0.4, dapple=0.0, gain=1.0
    )
    field = illumination(style, numpy_rng(0, 1), 64, 96)
    assert field.shape == (64, 96) and field.dtype == np.float32 and field.min() > 0
    assert field[:, -8:].mean() > field[:, :8].mean() * 1.3  # light from the right (angle 0)
    down = dataclasses.replace(style, light_angle=math.pi / 2)
    field = illumination(down, numpy_rng(0, 1), 64, 96)
    assert field[-8:].mean() > field[:8].mean() * 1.3


def test_expose_returns_a_uint8_rgb_photo():
    style = make_style(numpy_rng(1, 0))
    scene = np.zeros((3, 40, 60), np.float32)
    scene[1] = 150.0  # a green frame
    img = expose(scene, style, numpy_rng(1, 1))
    assert img.shape == (40, 60, 3) and img.dtype == np.uint8
    mean = img.reshape(-1, 3).mean(0)
    assert mean[1] > 2 * mean[0] and mean[1] > 2 * mean[2]  # still green: RGB order kept
    again = np.zeros((3, 40, 60), np.float32)
    again[1] = 150.0
    np.testing.assert_array_equal(img, expose(again, style, numpy_rng(1, 1)))
