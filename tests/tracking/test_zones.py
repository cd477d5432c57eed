"""ZoneMonitor: enter/exit timing in seconds, border flicker, dwell, forget and close."""

from __future__ import annotations

import numpy as np
import pytest

from fieldvision.tracking.detections import Tracks
from fieldvision.tracking.events import EventType
from fieldvision.tracking.zones import ZoneMonitor

FPS = 10.0
SQUARE = [[0, 0], [100, 0], [100, 100], [0, 100]]
# Concave: the square minus a notch x in (40, 60), y in [0, 60) cut from the top edge.
NOTCHED = [[0, 0], [40, 0], [40, 60], [60, 60], [60, 0], [100, 0], [100, 100], [0, 100]]
SPOT = {"I": (50, 80), "O": (150, 80), "B": (100, 80), "N": (50, 30)}  # in, out, border, notch


def _track(path: str, tid: int = 1, cls: int = 0, first_frame: int = 1) -> Tracks:
    feet = np.array([SPOT[c] for c in path], float)
    boxes = np.c_[feet[:, 0] - 5, feet[:, 1] - 40, feet[:, 0] + 5, feet[:, 1]]
    frames = np.arange(first_frame, first_frame + len(path))
    return Tracks(frame=frames, track_id=[tid] * len(path), xyxy=boxes, class_id=[cls] * len(path))


def _ts(frame: int) -> float:
    return (frame - 1) / FPS


def _stream(zone: ZoneMonitor, tracks: Tracks, *, forget: bool = True) -> list:
    """Feed frame by frame; forget tracks after their last frame, or close at the end."""
    last = {int(t): int(tracks.frame[tracks.track_id == t].max()) for t in tracks.ids}
    events = []
    for f in np.unique(tracks.frame).tolist():
        events += zone.update(tracks[tracks.frame == f], _ts(f), "cam")
        if forget:
            events += zone.forget([t for t, end in last.items() if end == f])
    return events + zone.close(_ts(int(tracks.frame.max())))


def _run(mode: str, zone: ZoneMonitor, tracks: Tracks) -> list:
    if mode == "replay":
        return zone.replay(tracks, _ts(tracks.frame), "cam")
    return _stream(zone, tracks, forget=mode == "update+forget")


MODES = ["update+forget", "update+close", "replay"]

CASES = [
    # (id, path, kwargs, [(enter frame, exit frame)], exit kind per visit)
    ("walk-through", "OOOIIIIIIIIIIOOOOO", {}, [(4, 14)]),
    ("flicker-at-border-stays-one-visit", "OOOIIIOIOOIIIIOOO", {}, [(4, 15)]),
    ("flicker-outside-never-enters", "OOIOIIOIOOO", {}, []),
    ("in-for-min-frames-minus-one", "OOOIIOOO", {}, []),
    ("in-for-exactly-min-frames", "OOOIIIOOO", {}, [(4, 7)]),
    ("born-inside", "IIIIIOOO", {}, [(1, 6)]),
    ("two-visits", "IIIOOOIIIOOO", {}, [(1, 4), (7, 10)]),
    ("border-point-is-inside", "OOOBBBOOO", {}, [(4, 7)]),
    ("min-frames-1", "OIO", {"min_frames": 1}, [(2, 3)]),
    ("out-too-briefly-to-exit", "IIIIOOIIII", {}, [(1, None)]),
    ("still-inside-at-the-end", "OOOIIIIII", {}, [(4, None)]),
    ("left-but-not-long-enough", "OOOIIIIOO", {}, [(4, None)]),
    ("through-the-notch", "OOONNNNOOO", {"points": NOTCHED}, []),
    ("class-not-monitored", "IIIIOOO", {"classes": {1}}, []),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("path", "kwargs", "visits"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_visits_enter_exit_and_dwell_in_seconds(mode, path, kwargs, visits):
    args = {"points": SQUARE, **kwargs}
    zone = ZoneMonitor("shop", args.pop("points"), **args)
    tracks = _track(path)
    events = _run(mode, zone, tracks)
    enters = [e for e in events if e.type == EventType.ZONE_ENTER]
    exits = [e for e in events if e.type == EventType.ZONE_EXIT]
    assert len(enters) == len(exits) == len(visits)
    last_inside = max((i + 1 for i, c in enumerate(path) if c in "IB"), default=None)
    for (enter_f, exit_f), enter, exit_ in zip(visits, enters, exits, strict=True):
        # An open visit ends at the track's last frame inside (forget, close or replay).
        exit_f = last_inside if exit_f is None else exit_f
        assert enter.timestamp == pytest.approx(_ts(enter_f))
        assert exit_.timestamp == pytest.approx(_ts(exit_f))
        assert exit_.dwell_s == pytest.approx((exit_f - enter_f) / FPS)
        assert enter.dwell_s is None and enter.target == exit_.target == "shop"
        assert enter.bbox == tuple(tracks.xyxy[enter_f - 1].tolist())
        assert exit_.bbox == tuple(tracks.xyxy[exit_f - 1].tolist())
    assert zone.occupancy == 0 and not zone.open_tracks


def test_occupancy_now_and_per_class():
    zone = ZoneMonitor("shop", SQUARE)
    tracks = Tracks.concat(
        [_track("IIIII", 1, cls=0), _track("IIIII", 2, cls=0), _track("IIIII", 3, cls=2),
         _track("OOOOO", 4), _track("IIOOO", 5)]
    )  # fmt: skip
    history = []
    for f in range(1, 6):
        zone.update(tracks[tracks.frame == f], _ts(f), "cam")
        history.append(zone.occupancy)
    assert history == [0, 0, 3, 3, 3]
    assert zone.occupancy_by_class == {0: 2, 2: 1}
    exits = zone.close(1.0)
    assert [e.track_id for e in exits] == [1, 2, 3] and zone.occupancy == 0
    assert all(e.timestamp == pytest.approx(_ts(5)) and e.camera_id == "cam" for e in exits)
    assert [e.class_id for e in exits] == [0, 0, 2]


def test_visit_keeps_the_class_it_entered_with():
    tracks = _track("IIIIOOO")
    tracks = Tracks(frame=tracks.frame, track_id=tracks.track_id, xyxy=tracks.xyxy,
                    class_id=[0, 0, 0, 1, 1, 1, 1])  # fmt: skip
    for mode in MODES:
        events = _run(mode, ZoneMonitor("shop", SQUARE), tracks)
        assert [e.class_id for e in events] == [0, 0], mode


def _random_walks(rng: np.random.Generator) -> Tracks:
    parts = []
    for tid in range(int(rng.integers(1, 6))):
        n = int(rng.integers(1, 60))
        frames = np.sort(rng.choice(np.arange(1, 2 * n + 20), size=n, replace=False))
        x = 100 + rng.normal(0, 30) + np.cumsum(rng.normal(0, 10, n))
        y = 60 + np.cumsum(rng.normal(0, 10, n))
        boxes = np.c_[x - 5, y - 40, x + 5, y]
        parts.append(
            Tracks(frame=frames, track_id=[tid] * n, xyxy=boxes, class_id=rng.integers(0, 2, n))
        )
    return Tracks.concat(parts)


def _key(e) -> tuple:
    return (e.type, e.track_id, round(e.timestamp, 9), e.class_id, e.bbox, round(e.dwell_s or 0, 9))


@pytest.mark.parametrize("seed", range(3))
def test_replay_equals_frame_by_frame_update_on_random_walks(seed):
    rng = np.random.default_rng(seed)
    total = 0
    for _ in range(25):
        tracks = _random_walks(rng)
        kwargs = {
            "min_frames": int(rng.integers(1, 4)),
            "classes": None if rng.random() < 0.7 else {1},
        }
        live, batch = ZoneMonitor("z", NOTCHED, **kwargs), ZoneMonitor("z", NOTCHED, **kwargs)
        streamed = _stream(live, tracks, forget=bool(rng.integers(0, 2)))
        replayed = batch.replay(tracks, _ts(tracks.frame), "cam")
        assert sorted(map(_key, streamed)) == sorted(map(_key, replayed))
        total += len(replayed)
    assert total > 20


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"zone_id": ""}, "zone_id"),
        ({"points": [[0, 0], [10, 10], [10, 0], [0, 10]]}, "edges 0 and 2"),
        ({"min_frames": 0}, "min_frames"),
        ({"anchor": "feet"}, "anchor"),
    ],
    ids=["empty-id", "bow-tie", "min-frames-0", "anchor"],
)
def test_bad_configuration_is_refused(kwargs, message):
    args = {"zone_id": "shop", "points": SQUARE, **kwargs}
    with pytest.raises(ValueError, match=message):
        ZoneMonitor(args.pop("zone_id"), args.pop("points"), **args)


def test_misuse_is_refused_and_empty_input_gives_nothing():
    zone = ZoneMonitor("shop", SQUARE)
    assert zone.update(Tracks.empty(), 0.0, "cam") == []
    assert zone.replay(Tracks.empty(), np.zeros(0), "cam") == []
    assert zone.close() == [] and zone.forget([3]) == []
    zone.update(_track("I"), 5.0, "cam")
    with pytest.raises(ValueError, match="earlier"):
        zone.update(_track("I"), 4.0, "cam")
    with pytest.raises(ValueError, match="earlier"):
        zone.close(4.0)
    with pytest.raises(ValueError, match="live"):
        zone.replay(_track("IIII"), np.arange(4.0), "cam")
