"""Linking metrics on hand-made cases: link P/R/F1, track → person matching, global IDF1."""

from __future__ import annotations

import numpy as np
import pytest

from fieldvision.metrics.linking import (
    global_idf1,
    link_precision_recall,
    match_tracks_to_truth,
    true_links,
)
from fieldvision.tracking.detections import Tracks
from fieldvision.tracking.linking import Tracklet

a1, b1, c1, b2 = ("a", 1), ("b", 1), ("c", 1), ("b", 2)


def test_link_precision_recall():
    true = [(a1, b1), (b1, c1)]
    assert link_precision_recall(true, true) == (1.0, 1.0, 1.0)
    # One right (given the other way round, with a similarity), one wrong.
    p, r, f = link_precision_recall([(b1, a1, 0.9), (a1, b2, 0.8)], true)
    assert (p, r) == (0.5, 0.5) and f == pytest.approx(0.5)
    p, r, f = link_precision_recall([(a1, b1)], true)
    assert (p, r) == (1.0, 0.5) and f == pytest.approx(2 / 3)


def test_link_precision_recall_empty_cases():
    assert link_precision_recall([], []) == (1.0, 1.0, 1.0)
    assert link_precision_recall([], [(a1, b1)]) == (0.0, 0.0, 0.0)
    assert link_precision_recall([(a1, b1)], []) == (0.0, 1.0, 0.0)


def _tracks(rows):
    frame, tid, boxes = zip(*rows, strict=True)
    return Tracks(frame=frame, track_id=tid, xyxy=np.asarray(boxes, float))


BOX_L, BOX_R = [0, 0, 10, 20], [50, 0, 60, 20]


def test_match_tracks_to_truth_majority_and_iou():
    gt = _tracks([(f, 7, BOX_L) for f in range(1, 6)] + [(f, 8, BOX_R) for f in range(1, 6)])
    pred = _tracks(
        [(f, 1, BOX_L) for f in (1, 2, 3)]  # person 7
        + [(f, 1, BOX_R) for f in (4, 5)]  # ... then switches to 8: majority 7
        + [(f, 2, [51, 1, 61, 21]) for f in (1, 2, 3)]  # person 8, IoU ~0.75
        + [(1, 3, [5, 0, 15, 20])]  # IoU 1/3 with 7, and 7 is taken by track 1
        + [(9, 4, BOX_L)]  # a frame without truth
    )
    assert match_tracks_to_truth(pred, gt) == {1: 7, 2: 8, 3: None, 4: None}
    assert match_tracks_to_truth(pred, gt, iou=0.9)[2] is None


def test_match_is_one_to_one_per_frame():
    gt = _tracks([(1, 7, BOX_L)])
    pred = _tracks([(1, 1, BOX_L), (1, 2, [0, 0, 10, 19])])  # both overlap person 7
    assert match_tracks_to_truth(pred, gt) == {1: 7, 2: None}


def test_true_links_follow_each_person_in_time():
    tls = [
        Tracklet("b", 1, 12.0, 20.0, np.ones(2)),
        Tracklet("a", 1, 0.0, 10.0, np.ones(2)),
        Tracklet("a", 2, 10.5, 11.0, np.ones(2)),  # a fragment of the same person on a
        Tracklet("c", 1, 0.0, 5.0, np.ones(2)),  # a false track
    ]
    person = {a1: 5, ("a", 2): 5, b1: 5, c1: None}
    assert true_links(tls, person) == [(a1, ("a", 2)), (("a", 2), b1)]
    assert true_links(tls, person, cross_camera_only=True) == [(("a", 2), b1)]


def test_global_idf1_perfect_and_split():
    person = {a1: 1, b1: 1, c1: 2}
    weights = {a1: 10, b1: 30, c1: 20}
    assert global_idf1({a1: 1, b1: 1, c1: 2}, person, weights) == 1.0
    # Person 1 split over two global ids: the best match keeps b1 (30 of 40 frames).
    split = global_idf1({a1: 1, b1: 3, c1: 2}, person, weights)
    assert split == pytest.approx(2 * (30 + 20) / (60 + 60))
    # Everyone merged into one id: it can match only one person.
    merged = global_idf1({a1: 1, b1: 1, c1: 1}, person, weights)
    assert merged == pytest.approx(2 * 40 / 120)


def test_global_idf1_false_tracks_unlinked_tracks_and_misses():
    person = {a1: 1, b1: 1, c1: None}
    weights = {a1: 10, b1: 10, c1: 5}
    # c1 is a false track (predicted frames, no truth); b1 has no global id (own identity).
    score = global_idf1({a1: 1, c1: 1}, person, weights)
    assert score == pytest.approx(2 * 10 / (25 + 20))
    # 40 true frames in all: half of them were never tracked.
    missed = global_idf1({a1: 1, b1: 1, c1: 1}, person, weights, true_frames=40)
    assert missed == pytest.approx(2 * 20 / (25 + 40))
    assert global_idf1({}, {}, {}) == 0.0
