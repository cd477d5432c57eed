"""Geometry of lines and zones: validation, containment, sides and segment crossings."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.path import Path

from fieldvision.tracking.geometry import (
    anchor_points,
    check_line,
    check_polygon,
    points_in_polygon,
    segments_intersect,
    side_of_line,
)

SQUARE = [[0, 0], [10, 0], [10, 10], [0, 10]]
# A "U" open at the top: the notch x in (4, 6), y in [0, 6) is outside.
U_SHAPE = [[0, 0], [4, 0], [4, 6], [6, 6], [6, 0], [10, 0], [10, 10], [0, 10]]


def test_check_line_returns_float_end_points():
    line = check_line([[0, 1], [2, 3]])
    assert line.shape == (2, 2) and line.dtype == np.float64
    assert line.tolist() == [[0, 1], [2, 3]]


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ([[1, 1], [1, 1]], "zero length"),
        ([[0, 0], [1, 1], [2, 2]], "exactly 2 points"),
        ([[0, 0]], "exactly 2 points"),
        ([[0, 0], [np.nan, 1]], "non-finite"),
        ([0, 0, 1, 1], "shape"),
    ],
    ids=["zero-length", "three-points", "one-point", "nan", "flat"],
)
def test_check_line_refuses(points, message):
    with pytest.raises(ValueError, match=message):
        check_line(points)


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ([[0, 0], [10, 10], [10, 0], [0, 10]], "edges 0 and 2 intersect"),  # bow-tie
        ([[0, 0], [10, 0]], "at least 3"),
        ([[0, 0], [10, 0], [10, 10], [10, 0], [0, 10]], "vertices 1 and 3"),
        ([[0, 0], [5, 0], [10, 0]], "zero area .all vertices"),
        ([[0, 0], [10, 0], [np.inf, 10]], "non-finite"),
        ([[0, 0], [10, 0], [5, 0], [5, 10]], "doubles back at vertex 1"),  # a spike
        ([[0, 0], [10, 0], [10, 10], [5, 0], [0, 10]], "edges 0 and 2 intersect"),
        ([[0, 0], [10, 0], [10, 10], [5, 10], [5, -5], [0, -5]], "edges 0 and 3 intersect"),
    ],
    ids=[
        "bow-tie",
        "two-points",
        "repeated",
        "collinear",
        "inf",
        "spike",
        "vertex-on-edge",
        "edge-crosses-edge",
    ],
)
def test_check_polygon_refuses(points, message):
    with pytest.raises(ValueError, match=message):
        check_polygon(points)


def test_check_polygon_accepts_concave_either_winding_and_closed_rings():
    assert check_polygon(U_SHAPE).shape == (8, 2)
    assert check_polygon(U_SHAPE[::-1]).shape == (8, 2)
    closed = check_polygon([*SQUARE, SQUARE[0]])  # GeoJSON-style ring
    assert closed.tolist() == SQUARE


@pytest.mark.parametrize(
    ("point", "inside"),
    [
        ((2, 2), True),  # left arm
        ((8, 2), True),  # right arm
        ((5, 8), True),  # the bridge above the notch
        ((5, 3), False),  # in the notch
        ((5, 6), True),  # on the notch's top edge
        ((4, 3), True),  # on the notch's left edge
        ((0, 0), True),  # a vertex
        ((10, 5), True),  # on the outer edge
        ((11, 5), False),
        ((-1e-6, 5), False),
        ((5, -1), False),
    ],
)
def test_points_in_concave_polygon(point, inside):
    poly = check_polygon(U_SHAPE)
    assert points_in_polygon(np.array([point], float), poly).tolist() == [inside]


def _star(rng: np.random.Generator, k: int) -> np.ndarray:
    """A random simple (star-shaped, usually concave) polygon."""
    angles = np.sort(rng.uniform(0, 2 * np.pi, k))
    radius = rng.uniform(20, 100, k)
    return np.stack([200 + radius * np.cos(angles), 150 + radius * np.sin(angles)], 1)


@pytest.mark.parametrize("seed", range(5))
def test_points_in_polygon_matches_matplotlib(seed):
    rng = np.random.default_rng(seed)
    poly = check_polygon(_star(rng, int(rng.integers(3, 20))))
    points = rng.uniform([50, 0], [350, 300], size=(5000, 2))
    expected = Path(poly).contains_points(points)
    assert (points_in_polygon(points, poly) == expected).all()


def test_points_in_polygon_empty_and_chunked():
    poly = check_polygon(SQUARE)
    assert points_in_polygon(np.zeros((0, 2)), poly).shape == (0,)
    many = np.tile([[5.0, 5.0], [20.0, 5.0]], (400_000, 1))  # crosses the chunk size
    got = points_in_polygon(many, poly)
    assert got[0::2].all() and not got[1::2].any()


def test_side_of_line_in_image_coordinates():
    line = check_line([[0, 100], [200, 100]])  # drawn left to right
    points = np.array([[50, 150], [50, 50], [50, 100], [500, 150], [50, 101]], float)
    # y points down: below the line (larger y) is the right-hand side of a -> b: +1.
    assert side_of_line(points, line).tolist() == [1, -1, 0, 1, 1]
    assert side_of_line(points, line, tolerance_px=2).tolist() == [1, -1, 0, 1, 0]
    flipped = check_line([[200, 100], [0, 100]])
    assert side_of_line(points, flipped).tolist() == [-1, 1, 0, -1, -1]
    assert side_of_line(np.zeros((0, 2)), line).shape == (0,)


@pytest.mark.parametrize(
    ("p1", "p2", "q1", "q2", "hit"),
    [
        ((0, 0), (10, 10), (0, 10), (10, 0), True),  # an X
        ((0, 0), (10, 0), (10, 0), (10, 5), True),  # touching end points
        ((0, 0), (10, 0), (5, 0), (5, 5), True),  # T: an end on the other segment
        ((0, 0), (10, 0), (5, 1), (5, 5), False),  # T that stops short
        ((0, 0), (10, 0), (5, 0), (15, 0), True),  # collinear, overlapping
        ((0, 0), (10, 0), (11, 0), (15, 0), False),  # collinear, disjoint
        ((0, 0), (10, 0), (0, 1), (10, 1), False),  # parallel
        ((0, 0), (10, 0), (20, -5), (20, 5), False),  # crosses the extension only
    ],
)
def test_segments_intersect(p1, p2, q1, q2, hit):
    args = [np.array(v, float) for v in (p1, p2, q1, q2)]
    assert bool(segments_intersect(*args)) is hit
    assert bool(segments_intersect(args[2], args[3], args[0], args[1])) is hit  # symmetric


def test_anchor_points():
    boxes = np.array([[0, 0, 10, 20], [4, 4, 6, 8]], float)
    assert anchor_points(boxes).tolist() == [[5, 20], [5, 8]]
    assert anchor_points(boxes, "center").tolist() == [[5, 10], [5, 6]]
    with pytest.raises(ValueError, match="anchor"):
        anchor_points(boxes, "top")  # type: ignore[arg-type]
