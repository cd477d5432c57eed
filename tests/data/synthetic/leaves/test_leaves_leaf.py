"""Leaf blades: geometry round trip, tapering, veins, coverage and visible-point sampling."""

from __future__ import annotations

import numpy as np

from fieldvision.data.synthetic.leaves._leaf import (
    MIN_COVER,
    Blade,
    draw_leaves,
    sample_blades,
    sample_leaf_point,
    vein_profile,
)
from fieldvision.data.synthetic.leaves._scene import background, make_style
from fieldvision.seeding import numpy_rng

_BLADE = Blade(
    origin=(-50.0, 10.0),
    angle=0.4,
    bend_at=80.0,
    curvature=0.002,
    length=300.0,
    width=20.0,
    taper=90.0,
    colour=(90.0, 150.0, 60.0),
)


def _canvas(seed: int, index: int, size: tuple[int, int] = (96, 128)):
    rng = numpy_rng(seed, index)
    style = make_style(rng)
    h, w = size
    return draw_leaves(background(style, rng, h, w), sample_blades(rng, h, w, style), style, rng)


def test_blade_coordinates_round_trip_and_taper():
    along = np.array([0.0, 40.0, 150.0, 260.0])
    off = np.array([0.0, -5.0, 12.0, 3.0])
    pts = _BLADE.to_image(along, off)
    back_along, back_off = _BLADE.local(pts[:, 0], pts[:, 1])
    np.testing.assert_allclose(back_along, along, atol=1e-9)
    np.testing.assert_allclose(back_off, off, atol=1e-9)
    hw = _BLADE.halfwidth(np.array([-1.0, 0.0, 100.0, 250.0, 300.0, 320.0]))
    assert hw[0] == 0 and hw[1] == 20.0 and hw[-2] == 0 and hw[-1] == 0
    assert hw[2] > hw[3] > 0  # narrows towards the tip
    assert _BLADE.outline(16).shape == (32, 2)


def test_vein_profile_has_a_bright_midrib_and_parallel_veins():
    prof = vein_profile(numpy_rng(0, 0), 60.0)
    mid = len(prof) // 2
    assert prof.dtype == np.float32
    assert prof[mid - 3 : mid + 3].max() > np.median(prof) + 0.08
    peaks = np.flatnonzero((prof[1:-1] > prof[:-2]) & (prof[1:-1] > prof[2:]))
    assert len(peaks) >= 10  # many veins across a wide blade
    assert len(np.flatnonzero(np.diff(np.sign(np.diff(vein_profile(numpy_rng(0, 1), 4.0)))))) < len(
        peaks
    )


def test_leaves_fill_a_large_part_of_the_frame():
    cover = []
    for i in range(8):
        canvas = _canvas(1, i)
        assert canvas.image.shape == (3, 96, 128) and canvas.top.dtype == np.int8
        assert set(np.unique(canvas.top)) <= set(range(-1, len(canvas.blades)))
        visible, covered = canvas.top >= 0, canvas.alpha >= 0.5
        assert (covered[visible]).all() and (visible != covered).mean() < 0.01  # edges only
        leaf = canvas.top >= 0
        r, g = canvas.image[0][leaf].mean(), canvas.image[1][leaf].mean()
        assert g > r * 1.15  # green tissue
        cover.append(leaf.mean())
    assert min(cover) > MIN_COVER - 0.1 and np.mean(cover) > 0.35


def test_sample_leaf_point_hits_the_visible_blade():
    canvas = _canvas(2, 0)
    rng = numpy_rng(2, 1)
    for _ in range(20):
        point = sample_leaf_point(canvas, rng, across=(0.3, 0.6))
        assert point is not None
        idx, along, off = point
        x, y = np.round(canvas.blades[idx].to_image(np.array([along]), np.array([off]))[0])
        assert canvas.top[int(y), int(x)] == idx
    assert sample_leaf_point(canvas, rng, blade=len(canvas.blades) - 1) is not None
