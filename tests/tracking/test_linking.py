"""Cross-camera linking: windows, one-to-one assignment, threshold, chains, overlap."""

from __future__ import annotations

import numpy as np
import pytest

from fieldvision.pipelines.flow.site import TransitEdge
from fieldvision.tracking.detections import Tracks
from fieldvision.tracking.linking import Tracklet, link_tracklets, tracklets_from_tracks


def _look(*values: float) -> np.ndarray:
    v = np.zeros(8)
    v[: len(values)] = values
    return v


A, B, C = _look(1), _look(0, 1), _look(0, 0, 1)


def tl(cam: str, tid: int, start: float, end: float, emb, cls: int = 0) -> Tracklet:
    return Tracklet(cam, tid, start, end, np.asarray(emb, float), class_id=cls)


EDGES = [("x", "y", 2.0, 10.0), ("y", "z", 0.0, 5.0)]


def test_window_is_respected():
    # Identical looks, but y starts too early (gap 1 s) or too late (gap 11 s) after x.
    early = link_tracklets([tl("x", 1, 0, 10, A), tl("y", 1, 11, 20, A)], EDGES, threshold=0.5)
    late = link_tracklets([tl("x", 1, 0, 10, A), tl("y", 1, 21, 30, A)], EDGES, threshold=0.5)
    inside = link_tracklets([tl("x", 1, 0, 10, A), tl("y", 1, 12, 20, A)], EDGES, threshold=0.5)
    assert early.links == [] and late.links == []
    assert early.global_ids == {("x", 1): 1, ("y", 1): 2}
    assert inside.links == [(("x", 1), ("y", 1), pytest.approx(1.0))]
    assert inside.global_ids == {("x", 1): 1, ("y", 1): 1}


def test_window_bounds_are_inclusive_and_edges_are_directed():
    at_min = link_tracklets([tl("x", 1, 0, 10, A), tl("y", 1, 12, 20, A)], EDGES, threshold=0.5)
    at_max = link_tracklets([tl("x", 1, 0, 10, A), tl("y", 1, 20, 30, A)], EDGES, threshold=0.5)
    backwards = link_tracklets([tl("y", 1, 0, 10, A), tl("x", 1, 12, 20, A)], EDGES, threshold=0.5)
    assert len(at_min.links) == len(at_max.links) == 1
    assert backwards.links == []  # only x -> y is in the graph


def test_one_to_one_the_better_predecessor_wins():
    near = _look(1, 0.2)
    far = _look(1, 1.0)
    result = link_tracklets(
        [tl("x", 1, 0, 10, near), tl("x", 2, 0, 10, far), tl("y", 7, 14, 20, A)],
        EDGES,
        threshold=0.3,
    )
    assert [(a, b) for a, b, _ in result.links] == [(("x", 1), ("y", 7))]
    assert result.global_ids[("x", 1)] == result.global_ids[("y", 7)]
    assert result.global_ids[("x", 2)] != result.global_ids[("y", 7)]
    assert result.unlinked == [("x", 2)]


def test_one_to_one_each_tracklet_has_one_successor():
    result = link_tracklets(
        [tl("x", 1, 0, 10, A), tl("y", 1, 13, 20, A), tl("y", 2, 14, 20, _look(1, 0.1))],
        EDGES,
        threshold=0.3,
    )
    assert [(a, b) for a, b, _ in result.links] == [(("x", 1), ("y", 1))]


def test_assignment_is_global_not_greedy():
    # Greedy would link x1-y1 (0.99) and leave x2 alone; the assignment links both pairs.
    x1, x2 = _look(1, 0.1), _look(1, -0.9)
    y1, y2 = _look(1, 0.0), _look(1, 0.3)
    items = [
        tl("x", 1, 0, 10, x1),
        tl("x", 2, 0, 10, x2),
        tl("y", 1, 13, 20, y1),
        tl("y", 2, 13, 20, y2),
    ]
    sims = {
        (a, b): float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))
        for a, x in ((1, x1), (2, x2))
        for b, y in ((1, y1), (2, y2))
    }
    threshold = 0.6
    assert sims[(2, 2)] < threshold <= sims[(2, 1)]  # x2 can only go to y1
    result = link_tracklets(items, EDGES, threshold=threshold)
    assert sorted((a[1], b[1]) for a, b, _ in result.links) == [(1, 2), (2, 1)]


def test_below_threshold_is_unknown():
    result = link_tracklets([tl("x", 1, 0, 10, A), tl("y", 1, 12, 20, B)], EDGES, threshold=0.5)
    assert result.links == []
    assert result.global_ids == {("x", 1): 1, ("y", 1): 2}
    assert result.unlinked == [("x", 1), ("y", 1)]
    assert result.n_identities == 2


def test_chain_gets_one_global_id_numbered_by_first_appearance():
    items = [
        tl("z", 5, 25, 30, C),  # someone else, seen last
        tl("y", 3, 13, 20, A),
        tl("x", 9, 0, 10, A),
        tl("z", 4, 22, 29, A),
        tl("x", 2, -5, -1, B),  # first appearance of all: gid 1
    ]
    result = link_tracklets(items, EDGES, threshold=0.5)
    assert [(a, b) for a, b, _ in result.links] == [(("x", 9), ("y", 3)), (("y", 3), ("z", 4))]
    assert result.global_ids == {("x", 2): 1, ("x", 9): 2, ("y", 3): 2, ("z", 4): 2, ("z", 5): 3}
    assert result.unlinked == [("x", 2), ("z", 5)]


def test_result_does_not_depend_on_input_order():
    rng = np.random.default_rng(0)
    items = [
        tl(c, i, float(s), float(s) + 5, rng.normal(size=8))
        for i, (c, s) in enumerate([("x", 0), ("y", 8), ("z", 14), ("x", 3), ("y", 10), ("z", 17)])
    ]
    forward = link_tracklets(items, EDGES, threshold=-1.0)
    backward = link_tracklets(items[::-1], EDGES, threshold=-1.0)
    assert forward == backward


def test_overlapping_views_negative_min_s():
    edges = [TransitEdge(src="x", dst="y", min_s=-6.0, max_s=1.0)]
    # y sees the person 4 s before x loses them.
    result = link_tracklets([tl("x", 1, 0, 10, A), tl("y", 1, 6, 20, A)], edges, threshold=0.5)
    assert len(result.links) == 1
    # ... but a y track that ends before x's does is no continuation.
    inside = link_tracklets([tl("x", 1, 0, 10, A), tl("y", 1, 6, 9, A)], edges, threshold=0.5)
    assert inside.links == []


def test_same_camera_edge_needs_no_temporal_overlap():
    edges = [("x", "x", -5.0, 30.0)]
    overlap = link_tracklets([tl("x", 1, 0, 10, A), tl("x", 2, 8, 20, A)], edges, threshold=0.5)
    later = link_tracklets([tl("x", 1, 0, 10, A), tl("x", 2, 15, 20, A)], edges, threshold=0.5)
    assert overlap.links == [] and len(later.links) == 1


def test_classes_never_link():
    result = link_tracklets(
        [tl("x", 1, 0, 10, A, 0), tl("y", 1, 12, 20, A, 2)], EDGES, threshold=0.5
    )
    assert result.links == []


def test_duplicate_keys_and_bad_tracklets_raise():
    with pytest.raises(ValueError, match="appears twice"):
        link_tracklets([tl("x", 1, 0, 10, A), tl("x", 1, 20, 30, A)], EDGES, threshold=0.5)
    with pytest.raises(ValueError, match="non-zero"):
        tl("x", 1, 0, 1, np.zeros(8))
    with pytest.raises(ValueError, match="end_t"):
        tl("x", 1, 5, 1, A)


def test_tracklets_from_tracks_means_normalised_rows():
    # Track 1: frames 1..3, one long embedding row must not dominate the mean.
    emb = np.array([[10, 0], [0, 1], [0, 1], [1, 0], [0, 0]], np.float32)
    tracks = Tracks(
        frame=[1, 2, 3, 5, 6],
        track_id=[1, 1, 1, 2, 2],
        xyxy=np.tile([0, 0, 1, 1], (5, 1)),
        class_id=[0, 0, 0, 1, 1],
        embedding=emb,
    )
    out = tracklets_from_tracks(tracks, "cam", fps=10, start_time=100.0)
    assert [t.key for t in out] == [("cam", 1), ("cam", 2)]
    first, second = out
    assert first.start_t == pytest.approx(100.0) and first.end_t == pytest.approx(100.2)
    np.testing.assert_allclose(first.embedding, np.array([1, 2]) / np.sqrt(5), rtol=1e-6)
    assert first.n_frames == 3 and second.class_id == 1
    np.testing.assert_allclose(second.embedding, [1, 0])  # the zero row is ignored
    assert second.start_t == pytest.approx(100.4)
    assert [t.key for t in tracklets_from_tracks(tracks, "cam", 10, 0.0, min_frames=3)] == [
        ("cam", 1)
    ]


def test_tracklets_from_tracks_needs_embeddings():
    tracks = Tracks(frame=[1], track_id=[1], xyxy=[[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="no embeddings"):
        tracklets_from_tracks(tracks, "cam", 10, 0.0)
    assert tracklets_from_tracks(Tracks.empty(), "cam", 10, 0.0) == []


def test_synthetic_site_links_with_a_perfect_tracker(tmp_path):
    """Generator + linker + metrics: tracks built from the truth link almost perfectly."""
    from fieldvision.data.mot import read_mot_tracks, read_sequence
    from fieldvision.data.synthetic.site import generate_site
    from fieldvision.metrics.linking import link_precision_recall, match_tracks_to_truth, true_links
    from fieldvision.pipelines.flow.site import load_site

    generate_site(tmp_path, people=30, minutes=2, seed=1, embedding_dim=32)
    site = load_site(tmp_path / "site.yaml")
    tracklets, person_of = [], {}
    for cam in site.cameras:
        seq = read_sequence(cam.source.path.parent.parent, embeddings=cam.source.embeddings)
        dets = Tracks.concat(
            [
                Tracks(
                    frame=np.full(len(d), f),
                    track_id=np.arange(len(d)),
                    xyxy=d.xyxy,
                    embedding=d.embedding,
                )
                for f, d in seq.frames
                if len(d)
            ]
        )
        dets = Tracks(
            frame=dets.frame,
            track_id=np.arange(len(dets)),
            xyxy=dets.xyxy,
            embedding=dets.embedding,
        )
        gt = read_mot_tracks(cam.source.path.parent.parent / "gt" / "gt.txt")
        person = match_tracks_to_truth(dets, gt)
        pid = np.array([person[i] or 0 for i in range(len(dets))])
        keep = pid > 0
        rows = Tracks(
            frame=dets.frame[keep],
            track_id=pid[keep],
            xyxy=dets.xyxy[keep],
            embedding=dets.embedding[keep],
        )
        # A "perfect tracker": one track per person and visit (a new id after 2 s unseen).
        parts, next_id = [], 1
        for p, tr in rows.by_track():
            for seg in np.split(np.arange(len(tr)), np.flatnonzero(np.diff(tr.frame) > 20) + 1):
                part = tr[seg]
                parts.append(
                    Tracks(
                        frame=part.frame,
                        track_id=np.full(len(part), next_id),
                        xyxy=part.xyxy,
                        embedding=part.embedding,
                    )
                )
                person_of[(cam.id, next_id)] = p
                next_id += 1
        tracklets += tracklets_from_tracks(Tracks.concat(parts), cam.id, cam.fps, 0.0, min_frames=5)
    result = link_tracklets(tracklets, site.graph, threshold=site.linking.threshold)
    truth = true_links(tracklets, person_of, cross_camera_only=True)
    precision, recall, _ = link_precision_recall(result.links, truth)
    assert len(truth) > 20
    assert precision > 0.9 and recall > 0.85
