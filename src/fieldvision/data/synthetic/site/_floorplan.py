"""The floor plan: a mall corridor in metres, its cameras, shop-front zones and lines.

The corridor runs west → east along ``x`` and is 8 m wide (``y`` from 0 at the south wall
to 8 at the north wall). Visitors come in through the west door (``x = 0``) and leave
through it or through the east exit (``x = length``). People walk in lanes along the middle
of the corridor; shop fronts line both walls.

Cameras look north across the corridor from its south side, spaced so that the first two
views overlap and the next camera leaves a stretch of corridor unseen (a gap), alternating.
The first camera frames the door and its entrance line; every other camera has a passage
line across the corridor. Every zone is a shop front seen by exactly one camera, with the
corridor in front of it seen by that camera only, and clear of counting lines: a visitor
who stops at a shop never appears on two cameras at once, and never lingers on a line.
The camera graph (transit windows) is derived from the views and the walking speeds.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from fieldvision.data.synthetic.site._camera import Camera, across_corridor
from fieldvision.tracking.geometry import side_of_line

WIDTH = 8.0  # corridor width (m)
LANE_Y = (3.5, 4.5)  # lane of a party's leader
WALK_Y = (2.6, 5.4)  # lanes including group offsets: where people walk between shops
GROUP_DX, GROUP_DY = 0.8, 0.6  # largest offset of a group member from its leader (m)
ZONE_BANDS = ((0.3, 2.3), (5.7, 7.7))  # shop fronts along the south and north walls
ZONE_W = 3.0  # shop-front length along the corridor (m)
SPEED = (0.7, 1.8)  # walking speeds (m/s), the range the transit windows allow for
ENTRANCE_X = -3.5  # visitors appear outside the west door (x = 0), out of view
LINE_CLEARANCE = 1.5  # zones keep this far (m) from counting lines
_OVERLAP_STEP, _GAP_STEP = 8.0, 26.0  # camera spacing: views overlap / leave a gap
_WINDOW_SLACK = 2.0  # seconds added to both ends of a transit window (track ends are noisy)


@dataclass(frozen=True)
class Zone:
    """A shop front: an axis-aligned floor rectangle seen by one camera."""

    id: str
    camera_id: str
    x0: float
    x1: float
    y0: float
    y1: float

    @property
    def corners(self) -> np.ndarray:
        """``(4, 2)`` floor corners, in order around the rectangle."""
        return np.array(
            [[self.x0, self.y0], [self.x1, self.y0], [self.x1, self.y1], [self.x0, self.y1]]
        )

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """A point where a group can stand (inset by the largest group offset)."""
        return np.array(
            [
                rng.uniform(self.x0 + GROUP_DX + 0.1, self.x1 - GROUP_DX - 0.1),
                rng.uniform(self.y0 + GROUP_DY + 0.1, self.y1 - GROUP_DY - 0.1),
            ]
        )


@dataclass(frozen=True)
class Line:
    """A counting line across the whole corridor at floor ``x``, drawn on one camera."""

    id: str
    camera_id: str
    x: float
    points: np.ndarray  # (2, 2) image pixels, a (south end) → b (north end)
    in_side: str  # the side eastbound walkers arrive on ("in" = walking east / entering)


@dataclass(frozen=True)
class FloorPlan:
    """Everything fixed about the site.

    Attributes:
        length: Corridor length (m); the east exit is at ``x = length``.
        cameras: Cameras in west → east order.
        zones: Shop-front zones.
        lines: Counting lines.
        edges: ``(src, dst, min_s, max_s)`` transit windows between adjacent cameras.
    """

    length: float
    cameras: tuple[Camera, ...]
    zones: tuple[Zone, ...]
    lines: tuple[Line, ...]
    edges: tuple[tuple[str, str, float, float], ...]

    @property
    def exit_x(self) -> float:
        """Where visitors leaving east disappear (outside the east exit)."""
        return self.length + 1.5

    def camera(self, camera_id: str) -> Camera:
        """The camera with that id."""
        return next(c for c in self.cameras if c.id == camera_id)


def _grid(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    gx, gy = np.meshgrid(xs, ys)
    return np.column_stack([gx.ravel(), gy.ravel()])


def _line(camera: Camera, line_id: str, x: float) -> Line:
    """The line across the corridor at floor `x`, as far towards the walls as is in view."""
    ys = np.linspace(0.05, WIDTH - 0.05, 160)
    uv = camera.ground_to_image(np.column_stack([np.full(len(ys), x), ys]))
    w, h = camera.size
    inside = ys[(uv[:, 0] >= 1) & (uv[:, 0] <= w - 1) & (uv[:, 1] >= 1) & (uv[:, 1] <= h - 1)]
    if not len(inside) or inside.min() > WALK_Y[0] or inside.max() < WALK_Y[1]:
        raise AssertionError(f"line {line_id} does not span the lanes in view")  # layout bug
    ends = camera.ground_to_image(np.array([[x, inside.min()], [x, inside.max()]]))
    points = np.round(ends, 1)
    east = camera.ground_to_image(np.array([[x + 1.0, 4.0]]))
    in_side = "right" if side_of_line(east, points)[0] > 0 else "left"
    return Line(line_id, camera.id, x, points, in_side)


def _zone_owner(
    cameras: tuple[Camera, ...], lines: list[Line], x0: float, y0: float, y1: float
) -> str | None:
    """The only camera that sees the shop front at ``x0..x0+ZONE_W`` and the corridor in
    front of it, when there is one and no line is near; else ``None``."""
    xs = np.arange(x0, x0 + ZONE_W + 1e-9, 0.1)
    pts = np.vstack([_grid(xs, np.linspace(y0, y1, 6)), _grid(xs, np.linspace(*WALK_Y, 8))])
    seen = [bool(c.sees(pts).all()) for c in cameras]
    partly = [bool(c.sees(pts).any()) for c in cameras]
    if sum(seen) != 1 or sum(partly) != 1:
        return None
    owner = cameras[seen.index(True)].id
    for ln in lines:
        if ln.camera_id == owner and x0 - LINE_CLEARANCE < ln.x < x0 + ZONE_W + LINE_CLEARANCE:
            return None
    return owner


def _zones(
    cameras: tuple[Camera, ...], lines: list[Line], length: float, rng: np.random.Generator
) -> tuple[Zone, ...]:
    candidates: dict[str, list[tuple[float, float, float]]] = {c.id: [] for c in cameras}
    for y0, y1 in ZONE_BANDS:
        for x0 in np.arange(0.5, length - ZONE_W - 0.5, 0.25):
            owner = _zone_owner(cameras, lines, float(x0), y0, y1)
            if owner is not None:
                candidates[owner].append((float(x0), y0, y1))
    chosen: list[tuple[str, float, float, float]] = []
    for cam in cameras:
        pool = candidates[cam.id]
        picked: list[tuple[float, float, float]] = []
        for _ in range(int(rng.integers(1, 3))):  # one or two shop fronts per camera
            free = [
                c
                for c in pool
                if all(c[1] != p[1] or abs(c[0] - p[0]) >= ZONE_W + 0.5 for p in picked)
            ]
            if free:
                picked.append(free[int(rng.integers(len(free)))])
        chosen.extend((cam.id, *p) for p in sorted(picked))
    return tuple(
        Zone(f"shop{i + 1}", cam, x0, x0 + ZONE_W, y0, y1)
        for i, (cam, x0, y0, y1) in enumerate(chosen)
    )


def _views(camera: Camera, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per lane ``y``: the west and east ends of the camera's view along ``x``."""
    seen = camera.sees(_grid(xs, ys)).reshape(len(ys), len(xs))
    if not seen.any(axis=1).all():
        raise AssertionError(f"camera {camera.id} does not see every lane")  # layout bug
    west = xs[np.argmax(seen, axis=1)]
    east = xs[len(xs) - 1 - np.argmax(seen[:, ::-1], axis=1)]
    return west, east


def _edges(cameras: tuple[Camera, ...], length: float) -> tuple[tuple[str, str, float, float], ...]:
    """Transit windows between neighbours, both ways: walking from the edge of one view to
    the edge of the next (negative where they overlap) at any speed in `SPEED`."""
    xs = np.arange(ENTRANCE_X - 5.0, length + 5.0, 0.02)
    ys = np.linspace(*WALK_Y, 29)
    out = []
    for a, b in itertools.pairwise(cameras):
        _, a_east = _views(a, xs, ys)
        b_west, _ = _views(b, xs, ys)
        dist = b_west - a_east  # (lanes,), negative = overlapping views
        times = np.concatenate([dist / SPEED[0], dist / SPEED[1]])
        lo = round(float(times.min()) - _WINDOW_SLACK, 1)
        hi = round(float(times.max()) + _WINDOW_SLACK, 1)
        out += [(a.id, b.id, lo, hi), (b.id, a.id, lo, hi)]
    return tuple(out)


def make_floorplan(
    n_cameras: int, rng: np.random.Generator, size: tuple[int, int] = (960, 540)
) -> FloorPlan:
    """Lay out the corridor, `n_cameras` cameras, their lines, zones and transit windows."""
    xs = [4.0]  # the first camera frames the west door and the entrance line
    for i in range(1, n_cameras):
        xs.append(xs[-1] + (_OVERLAP_STEP if i % 2 == 1 else _GAP_STEP))
    length = xs[-1] + 12.0
    cameras = tuple(
        across_corridor(
            f"cam{i}",
            x,
            back=float(rng.uniform(3.6, 4.4)),
            mount=float(rng.uniform(3.2, 3.8)),
            near_y=0.0,
            far_y=WIDTH,
            tall=2.0,
            size=size,
        )
        for i, x in enumerate(xs)
    )
    lines = [_line(cameras[0], "entrance", 1.0)]  # just inside the door
    # A passage line off the view's centre, towards the neighbour whose view overlaps
    # (even cameras overlap their east neighbour, odd ones their west one), leaves room
    # for a shop front on the side no other camera sees.
    for i in range(1, n_cameras):
        side = 1.0 if i % 2 == 0 and i + 1 < n_cameras else -1.0
        lines.append(_line(cameras[i], f"pass{i}", xs[i] + 2.0 * side))
    zones = _zones(cameras, lines, length, rng)
    return FloorPlan(length, cameras, zones, tuple(lines), _edges(cameras, length))
