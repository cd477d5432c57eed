"""Counting lines: people crossing a segment drawn on the image, in and out.

`LineCounter` is flicker-proof: a crossing counts only once the track has *held* the new
side for ``min_frames`` consecutive observations after holding the old one, so a box
jittering on the line never counts. It runs live (`LineCounter.update`, one frame at a
time) or over whole recorded tracks at once (`LineCounter.replay`, vectorised); both give
the same events, which the tests check on random trajectories.

The hysteresis ("hold") logic is shared with `fieldvision.tracking.zones`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from fieldvision.tracking.detections import Tracks
from fieldvision.tracking.events import Event, EventType
from fieldvision.tracking.geometry import (
    Anchor,
    anchor_points,
    check_line,
    segments_intersect,
    side_of_line,
)

__all__ = ["LineCounter", "TrackRows", "class_mask"]


def class_mask(classes: frozenset[int] | None, class_id: np.ndarray) -> np.ndarray:
    """``(N,)`` bool: rows whose class is monitored (all rows when `classes` is ``None``)."""
    if classes is None:
        return np.ones(class_id.shape[0], dtype=bool)
    return np.isin(class_id, list(classes))


class _Hold:
    """Per-track hysteresis: which state a track holds, and its current run of equal states.

    A track *holds* a state once it has been observed in it for ``min_frames`` consecutive
    observations; `observe` says when the held state changes. ``start`` is the payload of
    the run's first observation (the moment the change is stamped with).
    """

    __slots__ = ("held", "length", "prev", "run", "start")

    def __init__(self, held: Any) -> None:
        self.held, self.prev = held, held
        self.run: Any = None
        self.length = 0
        self.start: Any = None

    def observe(self, state: Any, payload: Any, min_frames: int, holdable: bool = True) -> bool:
        if state == self.run:
            self.length += 1
        else:
            self.run, self.length, self.start = state, 1, payload
        if holdable and self.length == min_frames and state != self.held:
            self.prev, self.held = self.held, state
            return True
        return False


def _held_transitions(
    track_id: np.ndarray, state: np.ndarray, holdable: np.ndarray, min_frames: int, initial: int
) -> tuple[np.ndarray, np.ndarray]:
    """`_Hold` over whole tracks at once.

    Args:
        track_id: ``(N,)`` rows sorted by (track, frame).
        state: ``(N,)`` int state per row.
        holdable: ``(N,)`` whether a row's state can be held at all.
        min_frames: Observations needed to hold a state.
        initial: The state every track holds before its first row (a value that never
            occurs in `state` means "nothing held yet").

    Returns:
        ``(first_row, previous_state)`` of every change of held state, in row order: the
        first row of the run that made the track hold ``state[first_row]``.
    """
    n = state.shape[0]
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    new_track = np.r_[True, track_id[1:] != track_id[:-1]]
    starts = np.flatnonzero(new_track | np.r_[True, state[1:] != state[:-1]])
    lengths = np.diff(np.r_[starts, n])
    keep = holdable[starts] & (lengths >= min_frames)
    held, held_state = starts[keep], state[starts[keep]]
    first_of_track = new_track[held] | np.r_[True, track_id[held[1:]] != track_id[held[:-1]]]
    prev = np.where(first_of_track, initial, np.r_[initial, held_state[:-1]])
    change = held_state != prev
    return held[change], prev[change]


@dataclass(frozen=True)
class TrackRows:
    """Whole tracks as plain columns sorted by (track, frame): what `replay_rows` takes.

    Built once per camera (`from_tracks`) and shared by every line and zone, so the
    replay neither re-sorts nor re-validates hundreds of thousands of rows per counter.

    Args:
        track_id: ``(N,)`` int64, grouped by track, each track in frame order.
        xyxy: ``(N, 4)`` float64 boxes.
        class_id: ``(N,)`` int64.
        timestamp: ``(N,)`` float64 seconds.
    """

    track_id: np.ndarray
    xyxy: np.ndarray
    class_id: np.ndarray
    timestamp: np.ndarray

    def __len__(self) -> int:
        return int(self.track_id.shape[0])

    @classmethod
    def from_tracks(cls, tracks: Tracks, timestamps: np.ndarray) -> TrackRows:
        """Sort `tracks` (any order) with their ``(N,)`` row timestamps."""
        ts = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        if ts.shape[0] != len(tracks):
            raise ValueError(f"{ts.shape[0]} timestamps for {len(tracks)} rows")
        order = np.lexsort((tracks.frame, tracks.track_id))
        return cls(tracks.track_id[order], tracks.xyxy[order], tracks.class_id[order], ts[order])

    def select(self, mask: np.ndarray) -> TrackRows:
        """The rows where `mask` is true (order kept)."""
        if mask.all():
            return self
        return TrackRows(
            self.track_id[mask], self.xyxy[mask], self.class_id[mask], self.timestamp[mask]
        )

    def check_not_live(self, live: dict[int, Any]) -> None:
        """Refuse to replay tracks that a streaming `update` is still following."""
        if live and len(self):
            clash = np.intersect1d(np.fromiter(live, np.int64, len(live)), self.track_id)
            if clash.size:
                raise ValueError(
                    f"tracks {clash[:5].tolist()} are live in update(); forget them first"
                )


@dataclass
class _LineTrack:
    hold: _Hold
    last_held_point: np.ndarray | None = None  # last foot point on the held side


class LineCounter:
    """Counts tracks crossing a line segment, per direction and class.

    Semantics, per track (observations are the frames the track appears in):

    - each observation's anchor point is on side A, side B, or on the line (within
      `tolerance_px` of it; with the default 0 only exactly on it);
    - a track *holds* a side after ``min_frames`` consecutive observations on it; an
      on-the-line observation interrupts a run;
    - a crossing counts exactly once, when the track comes to hold the side opposite the
      one it held before. The first side a track holds only establishes it, so a track
      born on the line or walking out of frame mid-crossing never counts, a box wobbling
      on the line (A, B, A, B, ...) never counts, and one that wobbles and finally
      commits counts once. Crossing and coming back counts one in and one out;
    - with `segment_only`, the step from the track's last point on the old side to its
      first point of the committing run must intersect the drawn segment: people walking
      past an end of the line change side without counting;
    - the event is stamped with the timestamp, box and class of the first observation of
      the committing run (`update` returns it ``min_frames - 1`` frames later).

    Args:
        line_id: The events' ``target``.
        points: The segment's two end points ``[[xa, ya], [xb, yb]]`` in pixels.
        in_side: Which side of the direction a → b, as seen on screen (y down), is
            "in": arriving on it is `EventType.LINE_IN`, leaving it `EventType.LINE_OUT`.
        min_frames: Consecutive observations needed to hold a side (>= 1).
        anchor: The box point followed (`fieldvision.tracking.geometry.anchor_points`).
        classes: Only these class ids are counted (rows of other classes are ignored);
            ``None`` counts every class.
        segment_only: Require the crossing to pass through the finite segment.
        tolerance_px: Distance from the line within which a point is "on the line".
    """

    def __init__(
        self,
        line_id: str,
        points: Any,
        *,
        in_side: Literal["left", "right"] = "left",
        min_frames: int = 3,
        anchor: Anchor = "bottom_center",
        classes: Iterable[int] | None = None,
        segment_only: bool = True,
        tolerance_px: float = 0.0,
    ) -> None:
        if not line_id:
            raise ValueError("line_id must not be empty")
        if in_side not in ("left", "right"):
            raise ValueError(f"in_side must be 'left' or 'right', got {in_side!r}")
        if int(min_frames) < 1:
            raise ValueError(f"min_frames must be >= 1, got {min_frames}")
        if not tolerance_px >= 0:
            raise ValueError(f"tolerance_px must be >= 0, got {tolerance_px}")
        anchor_points(np.zeros((0, 4)), anchor)  # validates the name
        self.line_id = line_id
        self.line = check_line(points)
        self.in_side = in_side
        self.min_frames = int(min_frames)
        self.anchor = anchor
        self.classes = None if classes is None else frozenset(int(c) for c in classes)
        self.segment_only = segment_only
        self.tolerance_px = float(tolerance_px)
        self._in_sign = -1 if in_side == "left" else 1  # side_of_line: -1 left, +1 right
        self._tracks: dict[int, _LineTrack] = {}
        self._counts: dict[str, dict[int, int]] = {"in": {}, "out": {}}
        self._last_ts = -np.inf

    @property
    def counts(self) -> dict[str, dict[int, int]]:
        """Cumulative ``{'in': {class_id: n}, 'out': {...}, 'net': {class_id: in - out}}``."""
        ins, outs = dict(self._counts["in"]), dict(self._counts["out"])
        net = {c: ins.get(c, 0) - outs.get(c, 0) for c in sorted(ins.keys() | outs.keys())}
        return {"in": ins, "out": outs, "net": net}

    @property
    def net(self) -> int:
        """Total ins minus total outs, all classes."""
        return sum(self._counts["in"].values()) - sum(self._counts["out"].values())

    @property
    def open_tracks(self) -> set[int]:
        """Track ids the counter holds state for."""
        return set(self._tracks)

    def forget(self, track_ids: Iterable[int]) -> None:
        """Drop the state of ended tracks (unknown ids are ignored)."""
        for tid in track_ids:
            self._tracks.pop(int(tid), None)

    def _event(self, to_side: int, ts: float, camera_id: str, tid: int, cls: int, box) -> Event:
        kind = "in" if to_side == self._in_sign else "out"
        self._counts[kind][cls] = self._counts[kind].get(cls, 0) + 1
        etype = EventType.LINE_IN if kind == "in" else EventType.LINE_OUT
        return Event(ts, camera_id, tid, etype, target=self.line_id, class_id=cls, bbox=box)

    def update(self, tracks: Tracks, timestamp: float, camera_id: str) -> list[Event]:
        """Feed the rows of one frame.

        Args:
            tracks: The tracks visible in this frame (one row per track).
            timestamp: The frame's time in seconds; never earlier than the previous call's.
            camera_id: The events' camera.

        Returns:
            The crossings committed by this frame (possibly stamped earlier, see class doc).
        """
        if timestamp < self._last_ts:
            raise ValueError(f"timestamp {timestamp} is earlier than the previous frame's")
        self._last_ts = timestamp
        rows = tracks[class_mask(self.classes, tracks.class_id)]
        if not len(rows):
            return []
        if np.unique(rows.track_id).shape[0] != len(rows):
            raise ValueError("update takes the rows of one frame: a track id appears twice")
        points = anchor_points(rows.xyxy, self.anchor)
        sides = side_of_line(points, self.line, self.tolerance_px).tolist()
        boxes, classes, pts = rows.xyxy.tolist(), rows.class_id.tolist(), points.tolist()
        events = []
        for i, tid in enumerate(rows.track_id.tolist()):
            state = self._tracks.get(tid)
            if state is None:
                state = self._tracks[tid] = _LineTrack(_Hold(held=None))
            side, hold = sides[i], state.hold
            payload = (timestamp, boxes[i], classes[i], pts[i])
            if hold.observe(side, payload, self.min_frames, holdable=side != 0):
                ts, box, cls, first = hold.start
                if hold.prev is not None and (
                    not self.segment_only
                    or bool(segments_intersect(state.last_held_point, first, *self.line))
                ):
                    events.append(self._event(side, ts, camera_id, tid, cls, box))
            if side == hold.held:
                state.last_held_point = pts[i]
        return events

    def replay(self, tracks: Tracks, timestamps: np.ndarray, camera_id: str) -> list[Event]:
        """Count whole recorded tracks at once (vectorised; same events as `update`).

        Every track in `tracks` is treated as complete: afterwards the counter holds no
        state for it, as if it had been fed frame by frame and then forgotten. Counts
        accumulate as with `update`.

        Args:
            tracks: Rows of any number of frames, in any order.
            timestamps: ``(N,)`` time of each row in seconds.
            camera_id: The events' camera.

        Returns:
            The crossings, ordered by (track, time).

        Raises:
            ValueError: A track in `tracks` has live state from `update`.
        """
        return self.replay_rows(TrackRows.from_tracks(tracks, timestamps), camera_id)

    def replay_rows(self, rows: TrackRows, camera_id: str) -> list[Event]:
        """`replay` on rows already sorted by track and time (sort once, replay many)."""
        rows = rows.select(class_mask(self.classes, rows.class_id))
        rows.check_not_live(self._tracks)
        if not len(rows):
            return []
        points = anchor_points(rows.xyxy, self.anchor)
        side = side_of_line(points, self.line, self.tolerance_px)
        first, prev = _held_transitions(rows.track_id, side, side != 0, self.min_frames, 2)
        crossing = prev != 2  # the first side a track holds only establishes it
        first, prev = first[crossing], prev[crossing]
        if self.segment_only and first.size:
            idx = np.arange(len(rows))
            last_neg = np.maximum.accumulate(np.where(side == -1, idx, -1))
            last_pos = np.maximum.accumulate(np.where(side == 1, idx, -1))
            # The held-before side was last seen just before the committing run began.
            last = np.where(prev == -1, last_neg[first - 1], last_pos[first - 1])
            ok = segments_intersect(points[last], points[first], self.line[0], self.line[1])
            first = first[ok]
        return [
            self._event(
                int(side[r]),
                float(rows.timestamp[r]),
                camera_id,
                int(rows.track_id[r]),
                int(rows.class_id[r]),
                rows.xyxy[r].tolist(),
            )
            for r in first.tolist()
        ]
