"""LineCounter: table-driven foot-point trajectories with their expected in/out counts."""

from __future__ import annotations

import numpy as np
import pytest

from fieldvision.tracking.detections import Tracks
from fieldvision.tracking.events import EventType
from fieldvision.tracking.lines import LineCounter

# The line runs left to right along y = 100 from x = 0 to x = 200. With y pointing down,
# "left" of a -> b is above it, so with the default in_side="left" walking up is "in".
LINE = [[0, 100], [200, 100]]
SPOT = {
    "U": (100, 50),  # above the line (left side): "in"
    "D": (100, 150),  # below (right side)
    "L": (100, 100),  # exactly on the line
    "u": (300, 50),  # above / below, beyond the segment's right end
    "d": (300, 150),
    "e": (200, 50),  # above / below the segment's end point: crossing touches it
    "f": (200, 150),
}


def _track(path: str, tid: int = 1, cls: int = 0, frames=None) -> Tracks:
    """One track whose foot point visits SPOT[c] for each character c, one per frame."""
    feet = np.array([SPOT[c] for c in path], float)
    boxes = np.c_[feet[:, 0] - 5, feet[:, 1] - 40, feet[:, 0] + 5, feet[:, 1]]
    frame = np.arange(1, len(path) + 1) if frames is None else np.asarray(frames)
    return Tracks(
        frame=frame, track_id=np.full(len(path), tid), xyxy=boxes, class_id=[cls] * len(path)
    )


def _stream(counter: LineCounter, tracks: Tracks, camera: str = "cam") -> list:
    """Feed frame by frame (timestamp = frame / 10), forgetting tracks after their end."""
    last = {int(t): int(tracks.frame[tracks.track_id == t].max()) for t in tracks.ids}
    events = []
    for f in np.unique(tracks.frame).tolist():
        events += counter.update(tracks[tracks.frame == f], f / 10, camera)
        counter.forget([t for t, end in last.items() if end == f])
    return events


def _run(mode: str, counter: LineCounter, tracks: Tracks) -> list:
    if mode == "update":
        return _stream(counter, tracks)
    return counter.replay(tracks, tracks.frame / 10, "cam")


CASES = [
    # (id, path, counter kwargs, class of the track, expected ins, expected outs)
    ("straight-in", "DDDUUU", {}, 0, 1, 0),
    ("straight-out", "UUUDDD", {}, 0, 0, 1),
    ("pauses-on-the-line", "DDDLLUUU", {}, 0, 1, 0),
    ("wobble-over-the-line", "DDDUDUDUDUDD", {}, 0, 0, 0),
    ("wobble-on-the-line", "DDDLDLDLLDLD", {}, 0, 0, 0),
    ("wobble-then-commit", "DDDUDUDLUUU", {}, 0, 1, 0),
    ("cross-and-return", "DDDUUUDDD", {}, 0, 1, 1),
    ("return-too-short", "DDDUUUDD", {}, 0, 1, 0),
    ("min-frames-minus-one", "DDDUU", {}, 0, 0, 0),
    ("min-frames-5-minus-one", "DDDDDUUUU", {"min_frames": 5}, 0, 0, 0),
    ("min-frames-5-exactly", "DDDDDUUUUU", {"min_frames": 5}, 0, 1, 0),
    ("old-side-never-held", "DDUUU", {}, 0, 0, 0),
    ("born-on-the-line", "LLLUUU", {}, 0, 0, 0),
    ("min-frames-1-counts-every-change", "DUDU", {"min_frames": 1}, 0, 2, 1),
    ("walks-past-the-end", "ddddduuuuu", {}, 0, 0, 0),
    ("past-the-end-infinite-line", "ddddduuuuu", {"segment_only": False}, 0, 1, 0),
    ("through-the-end-point", "fffeee", {}, 0, 1, 0),
    ("past-the-end-then-back-through", "ddduuuUUUDDD", {}, 0, 0, 1),
    ("in-side-right", "DDDUUU", {"in_side": "right"}, 0, 0, 1),
    ("in-side-right-out", "UUUDDD", {"in_side": "right"}, 0, 1, 0),
    ("class-not-counted", "DDDUUU", {"classes": {1}}, 0, 0, 0),
    ("class-counted", "DDDUUU", {"classes": {1, 2}}, 2, 1, 0),
    ("within-tolerance-is-on-the-line", "DDDUUU", {"tolerance_px": 60}, 0, 0, 0),
    ("outside-tolerance", "DDDUUU", {"tolerance_px": 40}, 0, 1, 0),
]


@pytest.mark.parametrize("mode", ["update", "replay"])
@pytest.mark.parametrize(
    ("path", "kwargs", "cls", "n_in", "n_out"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_crossings_are_counted_once(mode, path, kwargs, cls, n_in, n_out):
    counter = LineCounter("door", LINE, **kwargs)
    events = _run(mode, counter, _track(path, cls=cls))
    kinds = [e.type for e in events]
    assert kinds.count(EventType.LINE_IN) == n_in
    assert kinds.count(EventType.LINE_OUT) == n_out
    assert sum(counter.counts["in"].values()) == n_in
    assert sum(counter.counts["out"].values()) == n_out
    assert counter.net == n_in - n_out
    assert not counter.open_tracks  # every track was forgotten / replayed as complete


@pytest.mark.parametrize("mode", ["update", "replay"])
def test_event_is_stamped_where_the_committing_run_began(mode):
    # Frames 1..: D D D U D U U U -> the committing run starts at frame 6.
    tracks = _track("DDDUDUUU", tid=7, cls=3)
    (event,) = _run(mode, LineCounter("door", LINE), tracks)
    assert event.type == EventType.LINE_IN and event.target == "door"
    assert event.camera_id == "cam" and event.track_id == 7 and event.class_id == 3
    assert event.timestamp == pytest.approx(0.6)
    assert event.bbox == tuple(tracks.xyxy[5].tolist())


def test_update_returns_the_crossing_when_it_is_committed():
    counter = LineCounter("door", LINE)
    tracks = _track("DDDUUU")
    returned = [len(counter.update(tracks[tracks.frame == f], f / 10, "cam")) for f in range(1, 7)]
    assert returned == [0, 0, 0, 0, 0, 1]


def test_observations_not_frames_are_consecutive():
    # The tracker lost the person between frames 3 and 10: still one crossing.
    tracks = _track("DDDUUU", frames=[1, 2, 3, 10, 11, 12])
    assert len(_stream(LineCounter("door", LINE), tracks)) == 1


def test_counts_per_class_and_several_tracks():
    tracks = Tracks.concat(
        [
            _track("DDDUUU", tid=1, cls=0),
            _track("DDDUUU", tid=2, cls=0),
            _track("UUUDDD", tid=3, cls=1),
            _track("DDDUUUDDD", tid=4, cls=1),
        ]
    )
    for mode in ("update", "replay"):
        counter = LineCounter("door", LINE)
        _run(mode, counter, tracks)
        assert counter.counts == {"in": {0: 2, 1: 1}, "out": {1: 2}, "net": {0: 2, 1: -1}}
        assert counter.net == 1


def test_forget_drops_the_history():
    counter = LineCounter("door", LINE)
    below, above = _track("DDD"), _track("UUU", frames=[4, 5, 6])
    for f in (1, 2, 3):
        counter.update(below[below.frame == f], f, "cam")
    counter.forget([1, 99])  # unknown ids are ignored
    events = [e for f in (4, 5, 6) for e in counter.update(above[above.frame == f], f, "cam")]
    assert events == [] and counter.open_tracks == {1}


def _random_walks(rng: np.random.Generator) -> Tracks:
    parts = []
    for tid in range(int(rng.integers(1, 6))):
        n = int(rng.integers(1, 60))
        frames = np.sort(rng.choice(np.arange(1, 2 * n + 20), size=n, replace=False))
        x = 100 + rng.normal(0, 60) + np.cumsum(rng.normal(0, 8, n))
        y = 100 + np.cumsum(rng.normal(0, 8, n))
        y = np.where(rng.random(n) < 0.1, 100.0, y)  # some feet exactly on the line
        boxes = np.c_[x - 5, y - 40, x + 5, y]
        parts.append(
            Tracks(frame=frames, track_id=[tid] * n, xyxy=boxes, class_id=rng.integers(0, 2, n))
        )
    return Tracks.concat(parts)


def _key(e) -> tuple:
    return (e.type, e.track_id, round(e.timestamp, 9), e.class_id, e.bbox, e.target)


@pytest.mark.parametrize("seed", range(3))
def test_replay_equals_frame_by_frame_update_on_random_walks(seed):
    rng = np.random.default_rng(seed)
    total = 0
    for _ in range(25):
        tracks = _random_walks(rng)
        kwargs = {
            "min_frames": int(rng.integers(1, 4)),
            "segment_only": bool(rng.integers(0, 2)),
            "classes": None if rng.random() < 0.7 else {1},
            "tolerance_px": float(rng.choice([0.0, 3.0])),
        }
        live, batch = LineCounter("l", LINE, **kwargs), LineCounter("l", LINE, **kwargs)
        streamed = _stream(live, tracks)
        replayed = batch.replay(tracks, tracks.frame / 10, "cam")
        assert sorted(map(_key, streamed)) == sorted(map(_key, replayed))
        assert live.counts == batch.counts
        total += len(replayed)
    assert total > 20  # the walks do cross


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"line_id": ""}, "line_id"),
        ({"points": [[0, 0], [0, 0]]}, "zero length"),
        ({"in_side": "up"}, "in_side"),
        ({"min_frames": 0}, "min_frames"),
        ({"tolerance_px": -1.0}, "tolerance_px"),
        ({"anchor": "top"}, "anchor"),
    ],
    ids=["empty-id", "zero-length", "bad-side", "min-frames-0", "negative-tolerance", "anchor"],
)
def test_bad_configuration_is_refused(kwargs, message):
    args = {"line_id": "door", "points": LINE, **kwargs}
    with pytest.raises(ValueError, match=message):
        LineCounter(args.pop("line_id"), args.pop("points"), **args)


def test_misuse_is_refused_and_empty_input_gives_nothing():
    counter = LineCounter("door", LINE)
    assert counter.update(Tracks.empty(), 0.0, "cam") == []
    assert counter.replay(Tracks.empty(), np.zeros(0), "cam") == []
    counter.update(_track("D"), 5.0, "cam")
    with pytest.raises(ValueError, match="earlier"):
        counter.update(_track("D"), 4.0, "cam")
    with pytest.raises(ValueError, match="appears twice"):
        counter.update(_track("DD", frames=[6, 7]), 6.0, "cam")
    with pytest.raises(ValueError, match="live"):
        counter.replay(_track("DDDUUU"), np.arange(6.0), "cam")
    with pytest.raises(ValueError, match="timestamps"):
        LineCounter("x", LINE).replay(_track("DDDUUU"), np.arange(5.0), "cam")


@pytest.mark.parametrize(
    ("with_looks", "n_ids", "n_crossings"),
    [
        (True, 1, 1),  # re-identified by appearance: same id, so the held side carries over
        (False, 2, 0),  # motion alone loses them: a new track born past the line never counts
    ],
    ids=["reidentified", "fragmented"],
)
def test_a_crossing_hidden_from_the_tracker_counts_once_the_track_is_reidentified(
    with_looks, n_ids, n_crossings
):
    # Someone walks right at 10 px/frame towards a vertical line at x = 300, is hidden for
    # 8 frames while dawdling across it, and reappears at x = 320: the motion model
    # expected them near x = 380, so only their look can give the old id back.
    from fieldvision.tracking.detections import Detections
    from fieldvision.tracking.tracker import Tracker, TrackerConfig

    rng = np.random.default_rng(0)
    look = rng.normal(size=16)
    path = [(f, 150.0 + 10 * (f - 1)) for f in range(1, 16)]  # x = 150 .. 290
    path += [(f, 320.0 + 10 * (f - 24)) for f in range(24, 40)]  # x = 320 .. 470
    tracker = Tracker(TrackerConfig(), fps=10)
    rows = []
    for f, x in path:
        emb = (look + 0.05 * rng.normal(size=16))[None] if with_looks else None
        box = np.array([[x - 20, 150.0, x + 20, 250.0]])
        rows.append(tracker.update(Detections(xyxy=box, confidence=[0.95], embedding=emb), f))
    tracks = Tracks.concat(rows)
    assert len(tracks.ids) == n_ids
    counter = LineCounter("door", [[300, 0], [300, 400]])
    events = counter.replay(tracks, tracks.frame / 10, "cam")
    assert len(events) == n_crossings
