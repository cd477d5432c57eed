"""analyze_tracks (a whole camera's event stream) and the bucketed tables built from events."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fieldvision.tracking.analytics import (
    analyze_tracks,
    bucket_events,
    events_frame,
    frame_timestamps,
    occupancy_series,
)
from fieldvision.tracking.detections import Tracks
from fieldvision.tracking.events import Event, EventType
from fieldvision.tracking.lines import LineCounter
from fieldvision.tracking.zones import ZoneMonitor

FPS, T0 = 10.0, 1_700_000_000.0
LINE = [[0, 100], [200, 100]]  # walking up through it is "in"
ZONE = [[300, 300], [400, 300], [400, 400], [300, 400]]


def _rows(tid: int, frames, feet, cls=0) -> dict:
    feet = np.asarray(feet, float)
    n = len(frames)
    return {
        "frame": np.asarray(frames),
        "track_id": np.full(n, tid),
        "xyxy": np.c_[feet[:, 0] - 5, feet[:, 1] - 40, feet[:, 0] + 5, feet[:, 1]],
        "class_id": np.broadcast_to(cls, n),
    }


def _scene(with_embedding: bool = True) -> Tracks:
    # Track 1 walks up through the line over frames 1..25; track 2 stands in the zone on
    # frames 5..30, mostly as class 2.
    walk = _rows(1, range(1, 26), np.c_[np.full(25, 100), np.linspace(160, 40, 25)])
    stand = _rows(2, range(5, 31), np.tile([350, 350], (26, 1)), cls=[2] * 20 + [0] * 6)
    parts = []
    for i, r in enumerate((walk, stand)):
        n = len(r["frame"])
        emb = np.zeros((n, 4), np.float32)
        emb[:, i] = np.linspace(1, 3, n)  # same direction, different lengths
        emb[0] = 0  # an all-zero feature is left out of the mean
        parts.append(Tracks(**r, embedding=emb if with_embedding else None))
    return Tracks.concat(parts)


def _analyze(tracks: Tracks, **kwargs) -> list[Event]:
    args = {
        "camera_id": "cam",
        "fps": FPS,
        "start_time": T0,
        "lines": [LineCounter("door", LINE)],
        "zones": [ZoneMonitor("desk", ZONE)],
        **kwargs,
    }
    return analyze_tracks(tracks, **args)


def test_camera_event_stream():
    events = _analyze(_scene())
    stamps = [e.timestamp for e in events]
    assert stamps == sorted(stamps)
    by = {}
    for e in events:
        by.setdefault((e.type, e.track_id), []).append(e)
    ts = lambda f: T0 + (f - 1) / FPS  # noqa: E731
    (start1,) = by[EventType.TRACK_START, 1]
    (end1,) = by[EventType.TRACK_END, 1]
    assert start1.timestamp == ts(1) and end1.timestamp == ts(25)
    assert start1.embedding == end1.embedding == pytest.approx((1, 0, 0, 0))
    assert by[EventType.TRACK_END, 2][0].embedding == pytest.approx((0, 1, 0, 0))
    assert by[EventType.TRACK_START, 2][0].class_id == 2  # the track's most frequent class
    assert [e.timestamp for e in by[EventType.POSITION, 1]] == [ts(1), ts(11), ts(21)]
    assert [e.timestamp for e in by[EventType.POSITION, 2]] == [ts(5), ts(15), ts(25)]
    (crossing,) = by[EventType.LINE_IN, 1]
    assert crossing.target == "door" and crossing.camera_id == "cam"
    (enter,) = by[EventType.ZONE_ENTER, 2]
    (exit_,) = by[EventType.ZONE_EXIT, 2]  # the track ends inside: exit at its last frame
    assert enter.timestamp == ts(5) and exit_.timestamp == ts(30)
    assert exit_.dwell_s == pytest.approx(2.5)
    # Within a timestamp: start, enter, ..., position, exit, end.
    at_end = [e.type for e in events if e.timestamp == ts(30)]
    assert at_end == [EventType.ZONE_EXIT, EventType.TRACK_END]
    assert [e.type for e in events if e.timestamp == ts(5)][:3] == [
        EventType.TRACK_START, EventType.ZONE_ENTER, EventType.POSITION,
    ]  # fmt: skip


def test_analysis_matches_feeding_frames_one_by_one():
    tracks = _scene()
    line, zone = LineCounter("door", LINE), ZoneMonitor("desk", ZONE)
    last = {int(t): int(tracks.frame[tracks.track_id == t].max()) for t in tracks.ids}
    live = []
    for f in np.unique(tracks.frame).tolist():
        rows, t = tracks[tracks.frame == f], T0 + (f - 1) / FPS
        live += line.update(rows, t, "cam") + zone.update(rows, t, "cam")
        ended = [k for k, v in last.items() if v == f]
        line.forget(ended)
        live += zone.forget(ended)
    kinds = {EventType.LINE_IN, EventType.LINE_OUT, EventType.ZONE_ENTER, EventType.ZONE_EXIT}
    replayed = [e for e in _analyze(tracks) if e.type in kinds]
    assert sorted(e.to_dict()["event_id"] for e in live) == sorted(
        e.to_dict()["event_id"] for e in replayed
    )


def test_options_and_empty_input():
    tracks = _scene(with_embedding=False)
    events = _analyze(tracks, sample_s=None, lines=[], zones=[])
    assert {e.type for e in events} == {EventType.TRACK_START, EventType.TRACK_END}
    assert all(e.embedding is None for e in events)
    half = _analyze(tracks, sample_s=0.5)
    assert sum(e.type == EventType.POSITION and e.track_id == 1 for e in half) == 5
    assert _analyze(Tracks.empty()) == []
    with pytest.raises(ValueError, match="sample_s"):
        _analyze(tracks, sample_s=0)
    with pytest.raises(ValueError, match="fps"):
        _analyze(tracks, fps=0)
    assert frame_timestamps(np.array([1, 11]), 10, 5.0).tolist() == [5.0, 6.0]


def _event(t, kind, target=None, camera="cam", cls=0, tid=1) -> Event:
    return Event(t, camera, tid, kind, target=target, class_id=cls)


def test_bucket_events_counts_per_group():
    events = [
        _event(5, EventType.LINE_IN, "door"),
        _event(7, EventType.LINE_IN, "door"),
        _event(9, EventType.LINE_IN, "door", cls=1),
        _event(12, EventType.LINE_OUT, "door"),
        _event(12, EventType.TRACK_START),
        _event(25, EventType.LINE_IN, "door", camera="b"),
    ]
    table = bucket_events(events, 10)
    assert list(table.columns) == [
        "bucket_start",
        "camera_id",
        "type",
        "target",
        "class_id",
        "count",
    ]
    rows = [tuple(r) for r in table.itertuples(index=False)]
    assert rows == [
        (0.0, "cam", "line_in", "door", 0, 2),
        (0.0, "cam", "line_in", "door", 1, 1),
        (10.0, "cam", "line_out", "door", 0, 1),
        (10.0, "cam", "track_start", None, 0, 1),
        (20.0, "b", "line_in", "door", 0, 1),
    ]
    window = bucket_events(events, 10, start=6, end=12)  # buckets aligned to start=6
    assert [tuple(r) for r in window.itertuples(index=False)] == [
        (6.0, "cam", "line_in", "door", 0, 1),
        (6.0, "cam", "line_in", "door", 1, 1),
    ]
    assert bucket_events([], 10).empty
    with pytest.raises(ValueError, match="bucket_s"):
        bucket_events(events, 0)


def test_occupancy_series_carries_over_and_tracks_the_peak():
    enter, leave = EventType.ZONE_ENTER, EventType.ZONE_EXIT
    events = [
        _event(5, enter, "z", tid=1),
        _event(12, enter, "z", tid=2),
        _event(14, leave, "z", tid=1),
        _event(14, enter, "z", tid=3),  # an exit and an enter at once: the peak stays 2
        _event(27, leave, "z", tid=2),
        _event(44, leave, "z", tid=3),
        _event(15, EventType.LINE_IN, "door"),  # ignored
    ]
    table = occupancy_series(events, 10)
    assert list(table.columns) == [
        "bucket_start",
        "camera_id",
        "zone",
        "occupancy",
        "max_occupancy",
    ]
    assert table["bucket_start"].tolist() == [0, 10, 20, 30, 40]
    assert table["occupancy"].tolist() == [1, 2, 1, 1, 0]
    assert table["max_occupancy"].tolist() == [1, 2, 2, 1, 1]
    window = occupancy_series(events, 10, start=20, end=40)  # earlier events set the start level
    assert window["bucket_start"].tolist() == [20, 30]
    assert window["occupancy"].tolist() == [1, 1] and window["max_occupancy"].tolist() == [2, 1]
    assert occupancy_series([], 10).empty
    assert occupancy_series(events, 10, start=100, end=50).empty


def test_events_frame_and_tables_from_a_real_stream():
    events = _analyze(_scene())
    frame = events_frame(events)
    assert len(frame) == len(events) and frame["timestamp"].is_monotonic_increasing
    counts = bucket_events(events, 60)
    total = counts.groupby("type")["count"].sum()
    assert total["track_start"] == 2 and total["line_in"] == 1
    occupancy = occupancy_series(events, 1.0)
    assert occupancy["max_occupancy"].max() == 1 and occupancy["occupancy"].iloc[-1] == 0
    assert isinstance(occupancy, pd.DataFrame)
