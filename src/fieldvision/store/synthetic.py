"""Deterministic synthetic people-flow events, for tests, benchmarks and the dashboard demo.

People walk through each camera's 1280x720 view, left to right (counted "in" at the two
vertical lines) or back, some stopping at a counter; their foot points are sampled every
``position_every_s``. Line and zone events are derived from those samples (a crossing is a
sign change of ``x - line_x`` between samples, a zone visit a run of samples inside its
rectangle), so counts, occupancy and dwell agree with the positions exactly as a real
analytic's would. Some people walk on to the next camera: their tracks share a global id.
"""

from __future__ import annotations

import numpy as np

from fieldvision.tracking.events import Event, EventType

__all__ = ["LINES", "ZONES", "synthetic_flow"]

FRAME = (1280, 720)
LINES = {"door": 380.0, "gate": 900.0}  # vertical counting lines at these x
ZONES = {"queue": (150.0, 300.0, 520.0, 700.0), "counter": (640.0, 360.0, 860.0, 640.0)}
START_TS = 1_748_851_200.0  # 2025-06-02 08:00:00 UTC


def _walk(rng: np.random.Generator, dt: float) -> np.ndarray:
    """Foot points ``(T, 2)`` of one walk across the view, sampled every ``dt`` seconds."""
    w, h = FRAME
    rightwards = rng.random() < 0.6
    # Two walkways (people keep to one), drifting down the view as they cross it.
    y = h * (0.58 if rng.random() < 0.5 else 0.8) + rng.normal(0.0, 0.04 * h)
    drift = rng.normal(0.05, 0.03) * h / w
    x, end = (-20.0, w + 20.0) if rightwards else (w + 20.0, -20.0)
    speed = rng.uniform(50.0, 130.0) * (1 if rightwards else -1)
    cx0, cy0, cx1, cy1 = ZONES["counter"]
    stop_x = rng.uniform(cx0 + 20, cx1 - 20) if rng.random() < 0.35 else None
    pause = rng.uniform(5.0, 60.0)
    points = []
    while (x < end) if rightwards else (x > end):
        points.append((x, y))
        at_counter = stop_x is not None and cy0 < y < cy1 and abs(x - stop_x) < abs(speed) * dt
        if at_counter and pause > 0:
            pause -= dt
            y += rng.normal(0.0, 2.0)
            continue
        x += speed * dt
        y = float(np.clip(y + drift * abs(speed) * dt + rng.normal(0.0, 3.0), 0.2 * h, h - 1))
    return np.asarray(points)


def _track_events(
    camera: str, track: int, t0: float, pts: np.ndarray, dt: float, rng: np.random.Generator
) -> list[Event]:
    times = (t0 + dt * np.arange(len(pts))).tolist()
    size = 0.7 + 0.6 * pts[:, 1] / FRAME[1]  # nearer (lower) people look bigger
    boxes = [
        (x - 25 * s, y - 140 * s, x + 25 * s, y)
        for (x, y), s in zip(pts.tolist(), size.tolist(), strict=True)
    ]
    emb = tuple(np.round(rng.normal(size=8), 4).tolist())
    out = [Event(times[0], camera, track, EventType.TRACK_START, bbox=boxes[0], embedding=emb)]
    out += [
        Event(t, camera, track, EventType.POSITION, bbox=b)
        for t, b in zip(times, boxes, strict=True)
    ]
    for name, lx in LINES.items():
        side = np.sign(pts[:, 0] - lx)
        for i in np.flatnonzero(side[1:] * side[:-1] < 0) + 1:
            kind = EventType.LINE_IN if side[i] > 0 else EventType.LINE_OUT
            out.append(Event(times[i], camera, track, kind, target=name, bbox=boxes[i]))
    for name, (x0, y0, x1, y1) in ZONES.items():
        inside = (pts[:, 0] > x0) & (pts[:, 0] < x1) & (pts[:, 1] > y0) & (pts[:, 1] < y1)
        edges = np.diff(np.concatenate([[0], inside.astype(np.int8), [0]]))
        for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
            t_exit = times[min(b, len(times) - 1)]  # leaving the view inside exits the zone
            out.append(Event(times[a], camera, track, EventType.ZONE_ENTER, target=name))
            out.append(
                Event(
                    t_exit,
                    camera,
                    track,
                    EventType.ZONE_EXIT,
                    target=name,
                    dwell_s=t_exit - times[a],
                )
            )
    out.append(Event(times[-1], camera, track, EventType.TRACK_END, bbox=boxes[-1]))
    return out


def synthetic_flow(
    cameras: int = 3,
    duration_s: float = 3600.0,
    people_per_min: float = 2.0,
    *,
    position_every_s: float = 1.0,
    seed: int = 0,
    start_ts: float = START_TS,
) -> tuple[list[Event], dict[tuple[str, int], int]]:
    """Events of people walking through ``cameras`` views for ``duration_s`` seconds.

    Args:
        cameras: Number of cameras, named ``cam-01``, ``cam-02``, ...
        duration_s: Length of the recording; arrivals are a Poisson process over it.
        people_per_min: Arrival rate of new people (each first appears on a random camera).
        position_every_s: Spacing of POSITION samples (and of the underlying walk).
        seed: Everything is a function of the seed.
        start_ts: Epoch seconds (UTC) at which the recording starts.

    Returns:
        ``(events sorted by time, global ids)``: events carry no global id; the mapping
        ``(camera_id, track_id) -> global_id`` is what cross-camera linking would produce
        (one id per person, shared by that person's tracks on consecutive cameras).
    """
    rng = np.random.default_rng(seed)
    names = [f"cam-{i + 1:02d}" for i in range(cameras)]
    next_track = dict.fromkeys(names, 1)
    n_people = rng.poisson(people_per_min * duration_s / 60.0)
    arrivals = np.sort(rng.uniform(0.0, duration_s, n_people))
    events: list[Event] = []
    links: dict[tuple[str, int], int] = {}
    for person, t in enumerate(arrivals, start=1):
        cam = int(rng.integers(cameras))
        while True:
            pts = _walk(rng, position_every_s)
            camera = names[cam]
            track = next_track[camera]
            next_track[camera] += 1
            events += _track_events(camera, track, start_ts + t, pts, position_every_s, rng)
            links[(camera, track)] = person
            t += len(pts) * position_every_s + rng.uniform(10.0, 60.0)
            if cam + 1 >= cameras or rng.random() > 0.4 or t >= duration_s:
                break
            cam += 1
    events.sort(key=lambda e: (e.timestamp, e.camera_id, e.track_id, e.type.value))
    return events, links
