"""Tests for the validated Detections / Tracks containers."""

from __future__ import annotations

import numpy as np
import pytest

from fieldvision.tracking.detections import Detections, Tracks, xywh_to_xyxy, xyxy_to_xywh

BOX = [[10.0, 20.0, 30.0, 60.0]]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"xyxy": [[0, 0, 1]]}, "shape"),
        ({"xyxy": [[5, 0, 1, 1]]}, "x2 < x1"),
        ({"xyxy": [[0, 5, 1, 1]]}, "x2 < x1 or y2 < y1"),
        ({"xyxy": [[0, 0, np.nan, 1]]}, "non-finite"),
        ({"xyxy": BOX, "confidence": [0.5, 0.6]}, "confidence has 2 rows"),
        ({"xyxy": BOX, "confidence": [np.inf]}, "confidence has non-finite"),
        ({"xyxy": BOX, "class_id": [1, 2]}, "class_id has 2 rows"),
        ({"xyxy": BOX, "embedding": np.ones((2, 4))}, r"shape \(1, D\)"),
        ({"xyxy": BOX, "embedding": np.full((1, 4), np.nan)}, "embedding has non-finite"),
    ],
)
def test_detections_refuse_bad_columns(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Detections(**kwargs)


def test_detections_defaults_indexing_and_empty():
    d = Detections(xyxy=[[0, 0, 2, 4], [1, 1, 3, 3]], embedding=np.eye(2))
    assert d.confidence.tolist() == [1.0, 1.0] and d.class_id.tolist() == [0, 0]
    assert d.xyxy.dtype == np.float64 and d.embedding.dtype == np.float32
    assert len(d[np.array([False, True])]) == 1
    assert d[1].embedding.tolist() == [[0.0, 1.0]]
    assert d.bottom_center.tolist() == [[1.0, 4.0], [2.0, 3.0]]
    empty = Detections.empty(embedding_dim=8)
    assert len(empty) == 0 and empty.embedding.shape == (0, 8)
    assert len(Detections(xyxy=[])) == 0


def test_xywh_round_trip():
    xywh = np.array([[1.0, 2.0, 3.0, 4.0]])
    assert xywh_to_xyxy(xywh).tolist() == [[1.0, 2.0, 4.0, 6.0]]
    assert np.allclose(xyxy_to_xywh(xywh_to_xyxy(xywh)), xywh)
    assert Detections.from_xywh(xywh).xyxy.tolist() == [[1.0, 2.0, 4.0, 6.0]]


def test_supervision_round_trip_keeps_every_column():
    d = Detections(xyxy=[[0, 0, 2, 4]], confidence=[0.3], class_id=[2], embedding=[[1, 0]])
    sv_det = d.to_supervision()
    assert sv_det.xyxy.tolist() == [[0, 0, 2, 4]] and sv_det.class_id.tolist() == [2]
    back = Detections.from_supervision(sv_det)
    assert back.confidence.tolist() == [0.3] and back.embedding.tolist() == [[1.0, 0.0]]


def test_tracks_refuse_duplicate_id_in_a_frame_but_not_across_frames():
    with pytest.raises(ValueError, match="twice in one frame"):
        Tracks(frame=[1, 1], track_id=[7, 7], xyxy=np.ones((2, 4)))
    Tracks(frame=[1, 2], track_id=[7, 7], xyxy=np.ones((2, 4)))
    with pytest.raises(ValueError, match="frame has 1 rows"):
        Tracks(frame=[1], track_id=[1, 2], xyxy=np.ones((2, 4)))


def test_tracks_concat_sort_and_by_track():
    a = Tracks(frame=[2, 1], track_id=[1, 1], xyxy=np.ones((2, 4)))
    b = Tracks(frame=[1], track_id=[2], xyxy=np.ones((1, 4)), confidence=[0.5])
    both = Tracks.concat([a, Tracks.empty(), b])
    assert len(both) == 3 and both.ids.tolist() == [1, 2]
    assert both.sorted().frame.tolist() == [1, 1, 2]
    groups = dict(both.by_track())
    assert groups[1].frame.tolist() == [1, 2] and groups[2].confidence.tolist() == [0.5]
    assert list(Tracks.empty().by_track()) == []
    assert len(Tracks.concat([])) == 0
    with pytest.raises(ValueError, match="with and without embeddings"):
        Tracks.concat([a, Tracks(frame=[3], track_id=[1], xyxy=BOX, embedding=[[1.0]])])


def test_trusted_constructors_wrap_without_checks_or_copies():
    # the public constructors validate (above); the private _trusted path is for columns
    # built in-house (the tracker's per-frame output) and takes them as they are
    xyxy, conf, cls = np.array(BOX), np.array([0.5]), np.array([3], dtype=np.int64)
    d = Detections._trusted(xyxy, conf, cls)
    assert d.xyxy is xyxy and d.confidence is conf and d.class_id is cls and d.embedding is None
    frame, tid = np.array([4], dtype=np.int64), np.array([9], dtype=np.int64)
    t = Tracks._trusted(frame, tid, xyxy, conf, cls, np.ones((1, 2), np.float32))
    assert t.frame is frame and t.track_id is tid and len(t) == 1
    checked = Tracks(frame=frame, track_id=tid, xyxy=xyxy, confidence=conf, class_id=cls)
    for name in ("frame", "track_id", "xyxy", "confidence", "class_id"):
        np.testing.assert_array_equal(getattr(t, name), getattr(checked, name))
    later = Tracks(frame=[5], track_id=[9], xyxy=BOX, embedding=np.ones((1, 2)))
    assert len(Tracks.concat([t, later])) == 2  # a normal container from there on
    with pytest.raises(ValueError, match="twice in one frame"):  # the public path still checks
        Tracks(frame=[4, 4], track_id=[9, 9], xyxy=np.ones((2, 4)))
