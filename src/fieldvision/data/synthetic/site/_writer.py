"""`generate_site`: write a synthetic multi-camera site in MOTChallenge files + ``site.yaml``."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from fieldvision.data.synthetic.site._floorplan import FloorPlan, make_floorplan
from fieldvision.data.synthetic.site._sensor import CameraRecord, record_camera
from fieldvision.data.synthetic.site._truth import (
    SiteTruth,
    camera_visits,
    line_crossings,
    summarise_lines,
    summarise_zones,
    transitions,
    zone_visits,
)
from fieldvision.data.synthetic.site._walkers import Walker, plan_walkers
from fieldvision.errors import ConfigError
from fieldvision.io import atomic_path, write_json, write_text
from fieldvision.seeding import numpy_rng

# Stream ids for numpy_rng: the layout, the visitors, their looks and each camera never
# share random numbers, so e.g. more people do not move the cameras.
_PLAN_STREAM, _WALK_STREAM, _LOOK_STREAM, _CAMERA_STREAM = 1, 2, 3, 4
START = "2024-05-04T10:00:00Z"  # frame 1 of every camera
LINKING_THRESHOLD = 0.4
_DET_FMT = "%d,-1,%.2f,%.2f,%.2f,%.2f,%.4f,-1,-1,-1"
_GT_FMT = "%d,%d,%.2f,%.2f,%.2f,%.2f,1,-1,-1,-1"


def _check(cameras: Any, people: Any, minutes: Any, fps: Any, embedding_dim: Any) -> None:
    def is_int(v: Any) -> bool:
        return isinstance(v, int | np.integer) and not isinstance(v, bool)

    def is_num(v: Any) -> bool:
        return isinstance(v, int | float | np.number) and not isinstance(v, bool)

    if not is_int(cameras) or not 1 <= cameras <= 8:
        raise ConfigError(f"cameras must be an int in 1..8, got {cameras!r}")
    if not is_int(people) or people < 1:
        raise ConfigError(f"people must be a positive int, got {people!r}")
    if not is_num(minutes) or not math.isfinite(minutes) or minutes <= 0:
        raise ConfigError(f"minutes must be a positive number, got {minutes!r}")
    if not is_num(fps) or not math.isfinite(fps) or fps <= 0:
        raise ConfigError(f"fps must be a positive number, got {fps!r}")
    if not is_int(embedding_dim) or embedding_dim < 2:
        raise ConfigError(f"embedding_dim must be an int >= 2, got {embedding_dim!r}")


def _sample(walkers: list[Walker], fps: float, n_frames: int) -> tuple[np.ndarray, ...]:
    """Everyone's floor position at every frame they are on site: rows sorted by (pid, frame)."""
    pid, frame, xy, height, ratio = [], [], [], [], []
    for w in walkers:
        f0 = math.ceil(w.t[0] * fps - 1e-9) + 1
        f1 = min(math.floor(w.t[-1] * fps + 1e-9) + 1, n_frames)
        if f1 < f0:
            continue
        f = np.arange(f0, f1 + 1)
        pid.append(np.full(len(f), w.pid))
        frame.append(f)
        xy.append(w.at((f - 1) / fps))
        height.append(np.full(len(f), w.height))
        ratio.append(np.full(len(f), w.width_ratio))
    return tuple(np.concatenate(v) for v in (pid, frame, xy, height, ratio))


def _savetxt(path: Path, fmt: str, rows: np.ndarray) -> None:
    # One %-format per row over Python floats: about twice as fast as np.savetxt.
    write_text(path, "".join([fmt % tuple(row) + "\n" for row in rows.tolist()]))


def _xywh(xyxy: np.ndarray) -> np.ndarray:
    return np.column_stack([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]])


def _write_camera(
    cam_dir: Path,
    name: str,
    rec: CameraRecord,
    plan_size: tuple[int, int],
    fps: float,
    n_frames: int,
) -> None:
    det = np.column_stack([rec.det_frame, _xywh(rec.det_xyxy), rec.det_score])
    _savetxt(cam_dir / "det" / "det.txt", _DET_FMT, det.reshape(-1, 6))
    with atomic_path(cam_dir / "det" / "embeddings.npy") as tmp, open(tmp, "wb") as fh:
        np.save(fh, rec.det_embedding.astype(np.float32))
    gt = np.column_stack([rec.gt_frame, rec.gt_pid, _xywh(rec.gt_xyxy)])
    _savetxt(cam_dir / "gt" / "gt.txt", _GT_FMT, gt.reshape(-1, 6))
    rate = int(fps) if float(fps).is_integer() else fps
    write_text(
        cam_dir / "seqinfo.ini",
        f"[Sequence]\nname={name}\nframeRate={rate}\nseqLength={n_frames}\n"
        f"imWidth={plan_size[0]}\nimHeight={plan_size[1]}\n",
    )


def _points(arr: np.ndarray) -> list[list[float]]:
    return [[round(float(x), 1), round(float(y), 1)] for x, y in arr]


def _site_yaml(plan: FloorPlan, fps: float) -> dict[str, Any]:
    cameras = []
    for cam in plan.cameras:
        rel = f"cameras/{cam.id}"
        cameras.append(
            {
                "id": cam.id,
                "fps": fps,
                "size": list(cam.size),
                "source": {
                    "kind": "mot",
                    "path": f"{rel}/det/det.txt",
                    "embeddings": f"{rel}/det/embeddings.npy",
                },
                "lines": [
                    {
                        "id": ln.id,
                        "points": _points(ln.points),
                        "in_side": ln.in_side,
                        "min_frames": 3,
                    }
                    for ln in plan.lines
                    if ln.camera_id == cam.id
                ],
                "zones": [
                    {"id": z.id, "points": _points(cam.ground_to_image(z.corners)), "min_frames": 5}
                    for z in plan.zones
                    if z.camera_id == cam.id
                ],
            }
        )
    return {
        "site": "synthetic-mall",
        "start": START,
        "sample_s": 1.0,
        "tracker": {"preset": "bytetrack"},
        "linking": {"threshold": LINKING_THRESHOLD},
        "cameras": cameras,
        "graph": [{"src": s, "dst": d, "min_s": lo, "max_s": hi} for s, d, lo, hi in plan.edges],
    }


def _floorplan_json(plan: FloorPlan) -> dict[str, Any]:
    return {
        "length_m": plan.length,
        "cameras": {
            c.id: {
                "position_m": c.position.round(4).tolist(),
                "focal_px": round(c.focal, 4),
                "homography": c.homography.tolist(),
            }
            for c in plan.cameras
        },
        "zones": {
            z.id: {"camera": z.camera_id, "x": [z.x0, z.x1], "y": [z.y0, z.y1]} for z in plan.zones
        },
        "lines": {ln.id: {"camera": ln.camera_id, "x": ln.x} for ln in plan.lines},
    }


def generate_site(
    out_dir: str | os.PathLike[str],
    *,
    cameras: int = 3,
    people: int = 300,
    minutes: float = 20,
    seed: int = 0,
    fps: float = 10,
    embedding_dim: int = 64,
    size: tuple[int, int] = (960, 540),
) -> SiteTruth:
    """Write a synthetic mall corridor watched by `cameras` cameras, and its ground truth.

    Files written under `out_dir`::

        site.yaml                          valid for `fieldvision.pipelines.flow.site.load_site`
        cameras/<cam>/det/det.txt          frame,-1,x,y,w,h,score,-1,-1,-1 (sorted by frame)
        cameras/<cam>/det/embeddings.npy   float32 (rows, embedding_dim), one per det.txt line
        cameras/<cam>/gt/gt.txt            frame,person,x,y,w,h,1,-1,-1,-1 (person = global id)
        cameras/<cam>/seqinfo.ini          [Sequence] name, frameRate, seqLength, imWidth, imHeight
        truth/truth.json                   `SiteTruth` + generator arguments + floor plan

    The files are identical for a seed and arguments.

    Args:
        out_dir: Output folder (created; files of the same names are replaced).
        cameras: Number of cameras, 1..8 (the first two views overlap, the third is
            separated from the second by an unseen stretch, and so on).
        people: Number of visitors.
        minutes: Length of the recording.
        seed: Seed of everything.
        fps: Frame rate of every camera.
        embedding_dim: Length of the appearance embeddings.
        size: ``(width, height)`` of every camera's image.

    Returns:
        The ground truth (also in ``truth/truth.json``).

    Raises:
        ConfigError: An argument is out of range.
    """
    _check(cameras, people, minutes, fps, embedding_dim)
    root = Path(out_dir)
    fps = float(fps)
    plan = make_floorplan(int(cameras), numpy_rng(seed, _PLAN_STREAM), tuple(size))
    n_frames = max(1, round(minutes * 60 * fps))
    t_end = (n_frames - 1) / fps
    walkers = plan_walkers(plan, int(people), minutes * 60.0, numpy_rng(seed, _WALK_STREAM))
    pid, frame, xy, height, ratio = _sample(walkers, fps, n_frames)
    looks = numpy_rng(seed, _LOOK_STREAM).standard_normal((people + 1, embedding_dim))
    identity = looks / np.linalg.norm(looks, axis=1, keepdims=True)
    visits, seen = [], set()
    for ci, cam in enumerate(plan.cameras):
        cx = float(cam.position[0])
        rec = record_camera(
            cam,
            pid,
            frame,
            xy,
            height,
            ratio,
            identity,
            n_frames,
            (cx - 20.0, cx + 20.0),
            numpy_rng(seed, _CAMERA_STREAM, ci),
        )
        _write_camera(root / "cameras" / cam.id, cam.id, rec, cam.size, fps, n_frames)
        visits += camera_visits(cam.id, rec.gt_pid, rec.gt_frame, fps)
        seen.update(int(p) for p in np.unique(rec.gt_pid))
    crossings = []
    for ln in plan.lines:
        cam = plan.camera(ln.camera_id)
        line = np.asarray(_points(ln.points))  # exactly what site.yaml says
        crossings += line_crossings(walkers, cam, ln.id, line, ln.in_side, t_end)
    crossings.sort(key=lambda c: (c["t"], c["person"]))
    z_visits = []
    for z in plan.zones:
        cam = plan.camera(z.camera_id)
        polygon = np.asarray(_points(cam.ground_to_image(z.corners)))
        z_visits += zone_visits(pid, frame, xy, cam, z.id, polygon, fps)
    z_visits.sort(key=lambda v: (v["t_enter"], v["person"]))
    visits.sort(key=lambda v: (v["t_start"], v["person"], v["camera"]))
    truth = SiteTruth(
        root=root,
        site_yaml=root / "site.yaml",
        n_people=int(people),
        n_seen=len(seen),
        line_counts=summarise_lines(crossings, [(ln.camera_id, ln.id) for ln in plan.lines]),
        zone_counts=summarise_zones(z_visits, [(z.camera_id, z.id) for z in plan.zones]),
        crossings=crossings,
        zone_visits=z_visits,
        visits=visits,
        transitions=sorted(transitions(visits), key=lambda t: (t["t_to"], t["person"])),
    )
    site = _site_yaml(plan, int(fps) if fps.is_integer() else fps)
    # Flow style for the innermost lists and maps: one line per point list, size, source.
    write_text(root / "site.yaml", yaml.safe_dump(site, sort_keys=False, default_flow_style=None))
    meta = {
        "generator": "fieldvision.data.synthetic.site",
        "arguments": {
            "cameras": cameras,
            "people": people,
            "minutes": minutes,
            "seed": seed,
            "fps": fps,
            "embedding_dim": embedding_dim,
            "size": list(size),
        },
        "start": START,
        "n_frames": n_frames,
        "floorplan": _floorplan_json(plan),
    }
    write_json(root / "truth" / "truth.json", {**meta, **truth.to_json()})
    return truth
