"""The answers: line counts, zone visits, camera visits and transitions, from the routes.

Everything here is computed from the continuous routes and the camera models, never from
detections or a tracker, so it can score them:

- *line crossings*: each route's knots are projected into the image (a homography maps
  floor segments to image segments) and every segment is tested exactly against the
  drawn line segment (a change of side of the line whose crossing point lies on the
  segment); the direction is "in" when the step ends on the line's ``in_side``;
- *zone visits*: maximal runs of frames with the feet inside the drawn polygon;
- *camera visits*: maximal runs of ground-truth frames of a person on a camera (gaps up to
  one second merged); *transitions*: consecutive visits of a person on two cameras.

Times are seconds since the site's start; frame ``f`` (1-based) is at ``(f - 1) / fps``.
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fieldvision.data.synthetic.site._camera import Camera
from fieldvision.data.synthetic.site._walkers import Walker
from fieldvision.tracking.geometry import points_in_polygon


@dataclass(frozen=True)
class SiteTruth:
    """What really happened at a synthetic site (``truth/truth.json``).

    Attributes:
        root: The site folder.
        site_yaml: Its ``site.yaml``.
        n_people: People who came (pids ``1..n_people``).
        n_seen: People seen by at least one camera (unique people).
        line_counts: ``{camera: {line: {"in": n, "out": n}}}``.
        zone_counts: ``{camera: {zone: {"visits": n, "dwell_total_s": s,
            "dwell_mean_s": s}}}``.
        crossings: ``{person, camera, line, direction, t}`` per crossing, by time.
        zone_visits: ``{person, camera, zone, t_enter, t_exit, dwell_s}`` per visit
            (``t_exit`` is one frame after the last frame inside; ``dwell_s`` the difference).
        visits: ``{person, camera, t_start, t_end}`` per camera visit (first / last frame).
        transitions: ``{person, from_camera, to_camera, t_from, t_to}``: the person left
            ``from_camera`` at ``t_from`` and appeared on ``to_camera`` at ``t_to``
            (``t_to < t_from`` where the views overlap).
    """

    root: Path
    site_yaml: Path
    n_people: int
    n_seen: int
    line_counts: dict[str, dict[str, dict[str, int]]]
    zone_counts: dict[str, dict[str, dict[str, float]]]
    crossings: list[dict[str, Any]]
    zone_visits: list[dict[str, Any]]
    visits: list[dict[str, Any]]
    transitions: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (paths relative to `root`)."""
        out = asdict(self)
        out.pop("root")
        out["site_yaml"] = self.site_yaml.name
        return out

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SiteTruth:
        """Read ``truth.json`` (the file, or the site folder holding ``truth/truth.json``)."""
        path = Path(path)
        if path.is_dir():
            path = path / "truth" / "truth.json"
        data = json.loads(path.read_text(encoding="utf-8"))
        root = path.resolve().parent.parent
        keep = {k: data[k] for k in cls.__dataclass_fields__ if k in data and k != "root"}
        keep["site_yaml"] = root / data["site_yaml"]
        return cls(root=root, **keep)


def _clip_route(walker: Walker, t_end: float) -> tuple[np.ndarray, np.ndarray]:
    """The route's knots up to `t_end` (ending with the position at `t_end` if it goes on)."""
    keep = walker.t <= t_end
    t, xy = walker.t[keep], walker.xy[keep]
    if walker.t[-1] > t_end and walker.t[0] <= t_end:
        t = np.r_[t, t_end]
        xy = np.vstack([xy, walker.at(np.array([t_end]))])
    return t, xy


def _cross(o: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a[..., 0] - o[..., 0]) * (b[..., 1] - o[..., 1]) - (a[..., 1] - o[..., 1]) * (
        b[..., 0] - o[..., 0]
    )


def segment_crossings(
    path: np.ndarray, line: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where a polyline crosses a line segment, exactly.

    A step crosses when its ends lie on different sides of the line (a point exactly on
    the line counts as the left side) and the crossing point lies on the segment.

    Args:
        path: ``(K, 2)`` polyline in pixels.
        line: ``(2, 2)`` segment ``a → b``.

    Returns:
        ``(step index, fraction along the step, side after)`` per crossing, side ``+1``
        (right of ``a → b`` on screen, y down) or ``-1``.
    """
    a, b = line[0], line[1]
    s = _cross(a, b, path)
    right = s > 0
    q0, q1 = path[:-1], path[1:]
    change = right[:-1] != right[1:]
    on_segment = _cross(q0, q1, a) * _cross(q0, q1, b) <= 0
    step = np.flatnonzero(change & on_segment)
    frac = s[step] / (s[step] - s[step + 1])
    return step, frac, np.where(right[step + 1], 1, -1)


def line_crossings(
    walkers: list[Walker],
    camera: Camera,
    line_id: str,
    line: np.ndarray,
    in_side: str,
    t_end: float,
) -> list[dict[str, Any]]:
    """Every crossing of a drawn line by the routes, with direction and time."""
    hom = camera.homography
    in_sign = 1 if in_side == "right" else -1
    out = []
    for w in walkers:
        t, xy = _clip_route(w, t_end)
        if len(t) < 2:
            continue
        img = camera.ground_to_image(xy)
        step, lam, side = segment_crossings(img, line)
        if not len(step):
            continue
        # Image fraction → floor fraction (the homography is not affine along a segment).
        wz = np.column_stack([xy, np.ones(len(xy))]) @ hom[2]
        w0, w1 = wz[step], wz[step + 1]
        mu = lam * w0 / (lam * w0 + (1 - lam) * w1)
        times = t[step] + mu * (t[step + 1] - t[step])
        for tc, sd in zip(times, side, strict=True):
            direction = "in" if sd == in_sign else "out"
            out.append(
                {
                    "person": w.pid,
                    "camera": camera.id,
                    "line": line_id,
                    "direction": direction,
                    "t": round(float(tc), 4),
                }
            )
    return out


def _runs(key: np.ndarray, frame: np.ndarray, gap: int) -> tuple[np.ndarray, np.ndarray]:
    """First / last row of each run of rows (sorted by key, frame) with frame steps <= gap."""
    if not len(key):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    new = np.r_[True, (key[1:] != key[:-1]) | (np.diff(frame) > gap)]
    first = np.flatnonzero(new)
    return first, np.r_[first[1:] - 1, len(key) - 1]


def zone_visits(
    pid: np.ndarray,
    frame: np.ndarray,
    xy: np.ndarray,
    camera: Camera,
    zone_id: str,
    polygon: np.ndarray,
    fps: float,
) -> list[dict[str, Any]]:
    """Visits of a drawn zone: runs of frames with the feet inside (rows sorted by pid, frame)."""
    inside = points_in_polygon(camera.ground_to_image(xy), polygon)
    p, f = pid[inside], frame[inside]
    first, last = _runs(p, f, 1)
    return [
        {
            "person": int(p[a]),
            "camera": camera.id,
            "zone": zone_id,
            "t_enter": round(float(f[a] - 1) / fps, 4),
            "t_exit": round(float(f[b]) / fps, 4),
            "dwell_s": round(float(f[b] - f[a] + 1) / fps, 4),
        }
        for a, b in zip(first, last, strict=True)
    ]


def camera_visits(
    camera_id: str, gt_pid: np.ndarray, gt_frame: np.ndarray, fps: float
) -> list[dict[str, Any]]:
    """Runs of a person's ground-truth frames on one camera (gaps up to 1 s merged)."""
    order = np.lexsort((gt_frame, gt_pid))
    p, f = gt_pid[order], gt_frame[order]
    first, last = _runs(p, f, max(1, round(fps)))
    return [
        {
            "person": int(p[a]),
            "camera": camera_id,
            "t_start": round(float(f[a] - 1) / fps, 4),
            "t_end": round(float(f[b] - 1) / fps, 4),
        }
        for a, b in zip(first, last, strict=True)
    ]


def transitions(visits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive visits (by start) of each person on two different cameras."""
    ordered = sorted(visits, key=lambda v: (v["person"], v["t_start"], v["t_end"], v["camera"]))
    out = []
    for a, b in itertools.pairwise(ordered):
        if a["person"] == b["person"] and a["camera"] != b["camera"]:
            out.append(
                {
                    "person": a["person"],
                    "from_camera": a["camera"],
                    "to_camera": b["camera"],
                    "t_from": a["t_end"],
                    "t_to": b["t_start"],
                }
            )
    return out


def summarise_lines(crossings: list[dict[str, Any]], lines: list[tuple[str, str]]) -> dict:
    """``{camera: {line: {"in": n, "out": n}}}`` (every line listed, zero or not)."""
    counts: dict[str, dict[str, dict[str, int]]] = {}
    for cam, line in lines:
        counts.setdefault(cam, {})[line] = {"in": 0, "out": 0}
    for c in crossings:
        counts[c["camera"]][c["line"]][c["direction"]] += 1
    return counts


def summarise_zones(visits: list[dict[str, Any]], zones: list[tuple[str, str]]) -> dict:
    """``{camera: {zone: {"visits", "dwell_total_s", "dwell_mean_s"}}}``."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for cam, zone in zones:
        dwell = [v["dwell_s"] for v in visits if v["camera"] == cam and v["zone"] == zone]
        out.setdefault(cam, {})[zone] = {
            "visits": len(dwell),
            "dwell_total_s": round(float(sum(dwell)), 4),
            "dwell_mean_s": round(float(np.mean(dwell)), 4) if dwell else 0.0,
        }
    return out
