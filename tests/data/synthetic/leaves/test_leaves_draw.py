"""Drawing primitives of the leaf generator: polygon crops, painting, noise, areas."""

from __future__ import annotations

import math

import numpy as np

from fieldvision.data.synthetic.leaves._draw import (
    Patch,
    blob_points,
    ellipse_points,
    paint,
    polygon_area,
    polygon_patch,
    region,
    smooth_noise,
)
from fieldvision.seeding import numpy_rng


def test_polygon_patch_covers_the_polygon_and_clips_to_the_frame():
    square = np.array([[10.0, 10.0], [30.0, 10.0], [30.0, 20.0], [10.0, 20.0]])
    patch = polygon_patch(square, (64, 64), antialias=False)
    assert patch is not None
    assert abs(float((patch.alpha > 0.5).sum()) - 20 * 10) <= 35  # edge pixels either way
    rows, cols = patch.slices
    assert rows.start <= 10 and rows.stop >= 21 and cols.start <= 10 and cols.stop >= 31
    clipped = polygon_patch(square - 20.0, (64, 64))  # partly left of / above the frame
    assert clipped is not None and clipped.y0 == 0 and clipped.x0 == 0
    assert polygon_patch(square + 100.0, (64, 64)) is None  # entirely outside


def test_soft_edges_extend_the_crop_and_stay_in_unit_range():
    pts = ellipse_points(32, 32, 8, 5, 0.3)
    soft = polygon_patch(pts, (64, 64), blur=2.0)
    hard = polygon_patch(pts, (64, 64), antialias=False)
    assert soft is not None and hard is not None
    assert soft.alpha.shape[0] > hard.alpha.shape[0]
    assert soft.alpha.min() >= 0.0 and soft.alpha.max() <= 1.0
    assert abs(soft.alpha.sum() - hard.alpha.sum()) / hard.alpha.sum() < 0.1  # blur keeps mass


def test_paint_composites_in_place_on_planar_images():
    image = np.zeros((3, 8, 8), np.float32)
    patch = Patch(2, 3, np.full((2, 4), 0.5, np.float32))
    paint(image, patch, np.array([100.0, 50.0, 0.0]))
    np.testing.assert_allclose(region(image, patch)[:, 0, 0], [50.0, 25.0, 0.0])
    assert image[:, :2].sum() == 0 and image[:, 4:].sum() == 0
    paint(image, patch, np.full((3, 2, 4), 100.0, np.float32), weight=0.0)  # no-op
    np.testing.assert_allclose(region(image, patch)[0], 50.0)


def test_shapes_noise_and_area():
    unit = np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 3.0], [0.0, 3.0]])
    assert polygon_area(unit) == 6.0
    assert math.isclose(
        polygon_area(ellipse_points(0, 0, 4, 2, 1.0, n=200)), 8 * math.pi, rel_tol=0.01
    )
    blob = blob_points(numpy_rng(0, 1), 5, 5, 3, roughness=0.3)
    radii = np.hypot(blob[:, 0] - 5, blob[:, 1] - 5)
    assert radii.min() >= 3 * 0.7 - 1e-9 and radii.max() <= 3 * 1.3 + 1e-9
    noise = smooth_noise(numpy_rng(0, 2), (40, 60), 5)
    assert noise.shape == (40, 60) and noise.dtype == np.float32
    assert noise.min() >= 0.0 and noise.max() <= 1.0 and noise.std() > 0.05
