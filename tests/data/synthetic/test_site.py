"""Synthetic multi-camera site: determinism, file formats, truth consistency, realism knobs."""

from __future__ import annotations

import filecmp
import time
from pathlib import Path

import numpy as np
import pytest

from fieldvision.data.mot import read_mot_tracks, read_seqinfo, read_sequence
from fieldvision.data.synthetic.site import SiteTruth, generate_site, segment_crossings
from fieldvision.errors import ConfigError
from fieldvision.metrics.linking import match_tracks_to_truth
from fieldvision.pipelines.flow.site import load_site
from fieldvision.tracking.detections import Tracks, xywh_to_xyxy
from fieldvision.tracking.geometry import points_in_polygon

ARGS = {"people": 50, "minutes": 3, "seed": 3, "embedding_dim": 32}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    t0 = time.perf_counter()
    truth = generate_site(out, **ARGS)
    return out, truth, time.perf_counter() - t0


@pytest.fixture(scope="module")
def loaded(site):
    return load_site(site[0] / "site.yaml")


def _files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def _gt(cam) -> Tracks:
    return read_mot_tracks(cam.source.path.parent.parent / "gt" / "gt.txt")


def test_small_site_is_fast(site):
    assert site[2] < 20.0  # a few seconds on a laptop core; generous for loaded CI


def test_deterministic_in_seed(site, tmp_path):
    out, truth, _ = site
    again = generate_site(tmp_path / "again", **ARGS)
    assert _files(out) == _files(tmp_path / "again")
    for rel in _files(out):
        assert filecmp.cmp(out / rel, tmp_path / "again" / rel, shallow=False), rel
    assert again.line_counts == truth.line_counts
    generate_site(tmp_path / "other", **{**ARGS, "seed": 4})
    det = "cameras/cam0/det/det.txt"
    assert (tmp_path / "other" / det).read_bytes() != (out / det).read_bytes()


def test_writes_the_documented_files(site):
    out, _, _ = site
    names = {str(p) for p in _files(out)}
    for cam in ("cam0", "cam1", "cam2"):
        for rel in ("det/det.txt", "det/embeddings.npy", "gt/gt.txt", "seqinfo.ini"):
            assert f"cameras/{cam}/{rel}" in names
    assert {"site.yaml", "truth/truth.json"} <= names


def test_site_yaml_is_valid(site, loaded):
    out, truth, _ = site
    assert [c.id for c in loaded.cameras] == ["cam0", "cam1", "cam2"]
    assert loaded.cameras[0].lines[0].id == "entrance"
    assert all(c.source.kind == "mot" and c.source.embeddings.is_file() for c in loaded.cameras)
    assert all(1 <= len(c.zones) <= 2 and len(c.lines) == 1 for c in loaded.cameras)
    assert {(e.src, e.dst) for e in loaded.graph} == {
        ("cam0", "cam1"),
        ("cam1", "cam0"),
        ("cam1", "cam2"),
        ("cam2", "cam1"),
    }
    assert truth.site_yaml == out / "site.yaml"


def test_mot_formats(site, loaded):
    for cam in loaded.cameras:
        rows = np.loadtxt(cam.source.path, delimiter=",", ndmin=2)
        assert rows.shape[1] == 10 and (rows[:, 1] == -1).all() and (rows[:, 7:] == -1).all()
        assert (np.diff(rows[:, 0]) >= 0).all() and ((rows[:, 6] > 0) & (rows[:, 6] < 1)).all()
        emb = np.load(cam.source.embeddings)
        assert emb.dtype == np.float32 and emb.shape == (len(rows), 32)
        np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
        gt = np.loadtxt(cam.source.path.parent.parent / "gt" / "gt.txt", delimiter=",")
        assert (gt[:, 1] >= 1).all() and (gt[:, 6] == 1).all() and (gt[:, 7:] == -1).all()
        info = read_seqinfo(cam.source.path.parent.parent / "seqinfo.ini")
        assert (info.name, info.fps, info.length) == (cam.id, 10.0, 1800)
        assert (info.width, info.height) == tuple(cam.size)
        seq = read_sequence(cam.source.path.parent.parent, embeddings=cam.source.embeddings)
        assert len(seq.frames) == 1800


def test_line_counts_match_crossings_of_the_gt_boxes(site, loaded):
    _, truth, _ = site
    for cam in loaded.cameras:
        gt = _gt(cam)
        for line in cam.lines:
            counts = {"in": 0, "out": 0}
            for _, rows in gt.by_track():
                # Split where the person left the view: only consecutive frames are steps.
                for seg in np.split(
                    np.arange(len(rows)), np.flatnonzero(np.diff(rows.frame) > 1) + 1
                ):
                    _, _, side = segment_crossings(rows.bottom_center[seg], np.asarray(line.points))
                    for s in side:
                        counts["in" if (s > 0) == (line.in_side == "right") else "out"] += 1
            assert counts == truth.line_counts[cam.id][line.id], (cam.id, line.id)
    entrance = truth.line_counts["cam0"]["entrance"]
    assert entrance["in"] == truth.n_people  # everybody comes in through the door
    assert entrance["out"] > 0


def test_zone_visits_match_the_gt_boxes(site, loaded):
    _, truth, _ = site
    total = 0
    for cam in loaded.cameras:
        gt = _gt(cam)
        for zone in cam.zones:
            visits = 0
            for _, rows in gt.by_track():
                inside = points_in_polygon(rows.bottom_center, np.asarray(zone.points))
                gaps = np.diff(rows.frame) > 1
                visits += int(inside[0]) + int(np.sum(inside[1:] & (~inside[:-1] | gaps)))
            assert visits == truth.zone_counts[cam.id][zone.id]["visits"]
            total += visits
    assert total > 0
    ended = [v for v in truth.zone_visits if v["t_exit"] < ARGS["minutes"] * 60]
    assert ended and all(v["dwell_s"] >= 5.0 for v in ended)  # people linger


def test_transitions_fit_the_graph_and_show_overlap_and_gap(site, loaded):
    _, truth, _ = site
    windows = {(e.src, e.dst): (e.min_s, e.max_s) for e in loaded.graph}
    gaps: dict[tuple[str, str], list[float]] = {}
    for t in truth.transitions:
        key = (t["from_camera"], t["to_camera"])
        gaps.setdefault(key, []).append(t["t_to"] - t["t_from"])
        lo, hi = windows[key]
        assert lo <= t["t_to"] - t["t_from"] <= hi
    assert max(gaps[("cam0", "cam1")]) < 0  # overlapping views: seen on both at once
    assert min(gaps[("cam1", "cam2")]) > 0  # nobody sees the corridor between them
    assert truth.n_seen == truth.n_people


def test_detections_have_misses_clutter_and_informative_low_scores(site, loaded):
    cam = loaded.cameras[1]
    seq = read_sequence(cam.source.path.parent.parent, embeddings=cam.source.embeddings)
    det = Tracks.concat(
        [
            Tracks(
                frame=np.full(len(d), f),
                track_id=np.arange(len(d)),
                xyxy=d.xyxy,
                confidence=d.confidence,
            )
            for f, d in seq.frames
        ]
    )
    gt = _gt(cam)
    # Match each detection to a person (every detection its own one-frame "track").
    det = Tracks(
        frame=det.frame, track_id=np.arange(len(det)), xyxy=det.xyxy, confidence=det.confidence
    )
    person = match_tracks_to_truth(det, gt, iou=0.5)
    matched = np.array([person[i] is not None for i in range(len(det))])
    low = det.confidence < 0.5
    assert 0.05 < low.mean() < 0.5
    assert matched[low].mean() > 0.3  # many low-score boxes are real (occluded) people
    assert matched[~low].mean() > 0.9
    assert (~matched).sum() > 0  # clutter
    assert 0.6 < matched.sum() / len(gt) < 0.97  # occlusion and misses


def test_perspective_and_embeddings(site, loaded):
    cam = loaded.cameras[0]
    gt = _gt(cam)
    h = gt.xyxy[:, 3] - gt.xyxy[:, 1]
    lo, hi = np.quantile(gt.xyxy[:, 3], [0.2, 0.8])  # feet low in the image: near the camera
    assert h[gt.xyxy[:, 3] >= hi].mean() > 1.25 * h[gt.xyxy[:, 3] <= lo].mean()
    means = {}
    for c in loaded.cameras[:2]:
        rows = np.loadtxt(c.source.path, delimiter=",", ndmin=2)
        emb = np.load(c.source.embeddings)
        det = Tracks(
            frame=rows[:, 0], track_id=np.arange(len(rows)), xyxy=xywh_to_xyxy(rows[:, 2:6])
        )
        person = match_tracks_to_truth(det, _gt(c))
        pid = np.array([person[i] or 0 for i in range(len(rows))])
        for p in np.unique(pid[pid > 0]):
            m = emb[pid == p].mean(axis=0)
            means[(c.id, p)] = m / np.linalg.norm(m)
    both = [p for (c, p) in means if c == "cam0" and ("cam1", p) in means]
    same = [means[("cam0", p)] @ means[("cam1", p)] for p in both]
    other = [means[("cam0", p)] @ means[("cam1", q)] for p in both for q in both if p != q]
    assert np.mean(same) > 0.5 and np.mean(other) < 0.25
    assert np.mean(same) - 3 * np.std(other) > np.mean(other)


def test_truth_json_round_trip(site):
    out, truth, _ = site
    assert SiteTruth.load(out) == truth
    assert SiteTruth.load(out / "truth" / "truth.json") == truth


def test_segment_crossings_exact():
    line = np.array([[0.0, 0.0], [0.0, 10.0]])  # pointing down the screen: right is -x
    path = np.array([[1.0, 5.0], [-1.0, 5.0], [-1.0, 20.0], [1.0, 20.0], [1.0, 9.0], [-3.0, 11.0]])
    step, frac, side = segment_crossings(path, line)
    # Step 0 crosses; step 2 passes below the end of the line; step 4 crosses at y = 9.5.
    np.testing.assert_array_equal(step, [0, 4])
    np.testing.assert_allclose(frac, [0.5, 0.25])
    np.testing.assert_array_equal(side, [1, 1])


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"cameras": 0}, "cameras"),
        ({"people": 0}, "people"),
        ({"minutes": -1}, "minutes"),
        ({"fps": 0}, "fps"),
        ({"embedding_dim": 1}, "embedding_dim"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        generate_site(tmp_path, **kwargs)
