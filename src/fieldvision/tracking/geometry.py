"""Plane geometry for counting lines and zones, in image pixels (x right, y down).

Everything is vectorised over points; polygons and lines are validated once, when a
counter or zone is built (`check_line`, `check_polygon`), so that the per-frame code never
meets a degenerate shape. Boundaries are inclusive: a point on a polygon's edge is inside,
and segments that merely touch intersect.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

__all__ = [
    "Anchor",
    "anchor_points",
    "check_line",
    "check_polygon",
    "points_in_polygon",
    "segments_intersect",
    "side_of_line",
]

Anchor = Literal["bottom_center", "center"]

# Points within this distance (pixels) of a polygon edge count as on it: float rounding
# must not decide whether a foot exactly on a drawn edge is in or out.
_EDGE_EPS = 1e-9


def anchor_points(xyxy: np.ndarray, anchor: Anchor = "bottom_center") -> np.ndarray:
    """The point of each box that analytics follow.

    Args:
        xyxy: ``(N, 4)`` boxes.
        anchor: ``"bottom_center"`` (the feet: where a person stands on the floor plane)
            or ``"center"`` (for top-down views, where the feet are not visible).

    Returns:
        ``(N, 2)`` float64 points.
    """
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    x = (xyxy[:, 0] + xyxy[:, 2]) / 2
    if anchor == "bottom_center":
        return np.stack([x, xyxy[:, 3]], axis=1)
    if anchor == "center":
        return np.stack([x, (xyxy[:, 1] + xyxy[:, 3]) / 2], axis=1)
    raise ValueError(f"anchor must be 'bottom_center' or 'center', got {anchor!r}")


def _as_points(points: Any, name: str) -> np.ndarray:
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name} must have shape (K, 2), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} has non-finite coordinates")
    return arr


def check_line(points: Any) -> np.ndarray:
    """Validate a counting line given as its two end points.

    Returns:
        ``(2, 2)`` float64 ``[[xa, ya], [xb, yb]]``; the line runs from a to b.

    Raises:
        ValueError: Not two finite points, or both points the same ("zero length").
    """
    line = _as_points(points, "line")
    if line.shape[0] != 2:
        raise ValueError(f"line needs exactly 2 points, got {line.shape[0]}")
    if np.array_equal(line[0], line[1]):
        raise ValueError("line has zero length")
    return line


def _cross(o: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """z of (a - o) x (b - o), broadcast over leading axes."""
    return (a[..., 0] - o[..., 0]) * (b[..., 1] - o[..., 1]) - (a[..., 1] - o[..., 1]) * (
        b[..., 0] - o[..., 0]
    )


def segments_intersect(
    p1: np.ndarray, p2: np.ndarray, q1: np.ndarray, q2: np.ndarray
) -> np.ndarray:
    """Whether segments ``p1-p2`` and ``q1-q2`` share at least one point (touching counts).

    Args:
        p1, p2, q1, q2: ``(..., 2)`` end points, broadcast against each other. Segments
            are assumed non-degenerate (distinct end points).

    Returns:
        Boolean array of the broadcast shape.
    """
    p1, p2, q1, q2 = (np.asarray(v, dtype=np.float64) for v in (p1, p2, q1, q2))
    d1, d2 = _cross(p1, p2, q1), _cross(p1, p2, q2)
    d3, d4 = _cross(q1, q2, p1), _cross(q1, q2, p2)
    straddle = (d1 * d2 <= 0) & (d3 * d4 <= 0)
    # All four collinear: the orientation test is vacuous, the 1-D extents must overlap.
    collinear = (d1 == 0) & (d2 == 0)
    lo = np.maximum(np.minimum(p1, p2), np.minimum(q1, q2))
    hi = np.minimum(np.maximum(p1, p2), np.maximum(q1, q2))
    overlap = (lo <= hi).all(axis=-1)
    return straddle & (~collinear | overlap)


def check_polygon(points: Any) -> np.ndarray:
    """Validate a zone polygon (vertices in order, either winding).

    A closing vertex equal to the first (GeoJSON style) is dropped.

    Returns:
        ``(K, 2)`` float64 vertices, ``K >= 3``.

    Raises:
        ValueError: Fewer than 3 vertices, non-finite coordinates, a repeated vertex, zero
            area, edges that double back on each other, or two non-adjacent edges that
            intersect (a bow-tie); the message names the vertices or edges (edge ``i``
            runs from vertex ``i`` to vertex ``i + 1``).
    """
    poly = _as_points(points, "polygon")
    if poly.shape[0] > 3 and np.array_equal(poly[0], poly[-1]):
        poly = poly[:-1]
    k = poly.shape[0]
    if k < 3:
        raise ValueError(f"polygon needs at least 3 vertices, got {k}")
    same = (poly[:, None, :] == poly[None, :, :]).all(axis=-1) & ~np.eye(k, dtype=bool)
    if same.any():
        i, j = np.argwhere(same)[0]
        raise ValueError(f"polygon vertices {i} and {j} are the same point")
    nxt = np.roll(poly, -1, axis=0)
    if (_cross(poly[0], poly[1], poly) == 0).all():
        raise ValueError("polygon has zero area (all vertices lie on one line)")
    # Adjacent edges can only meet at their shared vertex, unless the outline turns back
    # on itself there (collinear, pointing the same way): a zero-width spike.
    prev = np.roll(poly, 1, axis=0)
    a, b = prev - poly, nxt - poly
    folds = (_cross(np.zeros(2), a, b) == 0) & ((a * b).sum(axis=1) > 0)
    if folds.any():
        v = int(np.flatnonzero(folds)[0])
        raise ValueError(
            f"polygon edges {(v - 1) % k} and {v} overlap (the outline doubles back at vertex {v})"
        )
    hits = segments_intersect(poly[:, None], nxt[:, None], poly[None, :], nxt[None, :])
    i, j = np.triu_indices(k, 2)
    non_adjacent = ~((i == 0) & (j == k - 1))
    i, j = i[non_adjacent], j[non_adjacent]
    bad = hits[i, j]
    if bad.any():
        e = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"polygon is not simple: edges {i[e]} and {j[e]} intersect "
            "(order the vertices around the outline)"
        )
    # A simple polygon whose vertices are not all collinear has an area; this only
    # catches outlines too thin for float64.
    if float(np.sum(poly[:, 0] * nxt[:, 1] - nxt[:, 0] * poly[:, 1])) == 0:
        raise ValueError("polygon has zero area")
    return poly


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Which points lie inside a polygon (even-odd rule; points on an edge are inside).

    Args:
        points: ``(N, 2)`` points.
        polygon: ``(K, 2)`` vertices, as returned by `check_polygon`.

    Returns:
        ``(N,)`` bool.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    poly = np.asarray(polygon, dtype=np.float64)
    out = np.zeros(pts.shape[0], dtype=bool)
    # Only points in the polygon's bounding box need the per-edge test; zones usually
    # cover a small part of the image, so this skips most of the work.
    lo, hi = poly.min(axis=0) - _EDGE_EPS, poly.max(axis=0) + _EDGE_EPS
    near = np.flatnonzero(((pts >= lo) & (pts <= hi)).all(axis=1))
    pts = pts[near]
    a, b = poly, np.roll(poly, -1, axis=0)
    ab = b - a
    length = np.hypot(ab[:, 0], ab[:, 1])
    # Bound the (chunk, K) temporaries to a few tens of MB whatever N is.
    step = max(1, (1 << 20) // poly.shape[0])
    for s in range(0, pts.shape[0], step):
        p = pts[s : s + step, None, :]  # (n, 1, 2) against (K, 2) edges
        x, y = p[..., 0], p[..., 1]
        spans = (a[:, 1] > y) != (b[:, 1] > y)  # the edge straddles the horizontal ray
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = a[:, 0] + (y - a[:, 1]) * ab[:, 0] / ab[:, 1]
        inside = (np.count_nonzero(spans & (x < x_cross), axis=1) % 2) == 1
        ap = p - a
        t = (ap * ab).sum(axis=-1) / length**2
        on_edge = (np.abs(_cross(np.zeros(2), ab, ap)) <= _EDGE_EPS * length) & (
            (t >= 0) & (t <= 1)
        )
        out[near[s : s + step]] = inside | on_edge.any(axis=1)
    return out


def side_of_line(points: np.ndarray, line: np.ndarray, tolerance_px: float = 0.0) -> np.ndarray:
    """Which side of the (infinite) line through ``a -> b`` each point is on.

    The sign is that of the cross product ``(b - a) x (p - a)``. In image coordinates
    (y pointing down) **+1 is the right-hand side** of the direction a → b as seen on
    screen and -1 the left: for a line drawn left to right, +1 is below it.

    Args:
        points: ``(N, 2)`` points.
        line: ``(2, 2)`` end points, as returned by `check_line`.
        tolerance_px: Points at most this far from the line get 0 ("on the line").

    Returns:
        ``(N,)`` int64 in ``{-1, 0, +1}``.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    a, b = line[0], line[1]
    cross = _cross(a, b, pts)
    dist = np.abs(cross) / float(np.hypot(*(b - a)))
    return np.where(dist <= tolerance_px, 0, np.sign(cross)).astype(np.int64)
