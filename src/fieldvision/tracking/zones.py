"""Zones: polygons on the image that tracks enter, stay in (dwell) and leave.

`ZoneMonitor` uses the same hysteresis as `fieldvision.tracking.lines.LineCounter`: a
track enters after ``min_frames`` consecutive observations inside and exits after
``min_frames`` consecutive observations outside, so a foot flickering across the border
makes one visit, not many. Live use goes through `ZoneMonitor.update`, whole recorded
tracks through `ZoneMonitor.replay`; both give the same events.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fieldvision.tracking.detections import Tracks
from fieldvision.tracking.events import Event, EventType
from fieldvision.tracking.geometry import Anchor, anchor_points, check_polygon, points_in_polygon
from fieldvision.tracking.lines import TrackRows, _held_transitions, _Hold, class_mask

__all__ = ["ZoneMonitor"]


@dataclass
class _Visit:
    hold: _Hold = field(default_factory=lambda: _Hold(held=False))
    camera_id: str = ""
    enter_ts: float = 0.0
    cls: int = 0  # the visit's class: the class at its enter event, reused at exit
    last_inside: tuple[float, list[float]] | None = None  # (timestamp, box)


class ZoneMonitor:
    """Enter/exit events and dwell time for one polygon zone.

    Semantics, per track (observations are the frames the track appears in):

    - a track *enters* after ``min_frames`` consecutive observations with its anchor
      inside (edges count as inside); `EventType.ZONE_ENTER` is stamped with the first
      of those observations;
    - an entered track *exits* after ``min_frames`` consecutive observations outside;
      `EventType.ZONE_EXIT` is stamped with the first of those;
    - a visit still open when its track ends (`forget`) or the stream ends (`close`)
      exits at the track's last observation inside the zone;
    - ``dwell_s`` on the exit is exit time minus enter time; enter and exit carry the
      class the track had at its enter.

    Args:
        zone_id: The events' ``target``.
        points: ``(K, 2)`` polygon vertices in pixels (`geometry.check_polygon`).
        min_frames: Consecutive observations needed to enter or to exit (>= 1).
        anchor: The box point followed (`geometry.anchor_points`).
        classes: Only these class ids are monitored; ``None`` monitors every class.
    """

    def __init__(
        self,
        zone_id: str,
        points: Any,
        *,
        min_frames: int = 3,
        anchor: Anchor = "bottom_center",
        classes: Iterable[int] | None = None,
    ) -> None:
        if not zone_id:
            raise ValueError("zone_id must not be empty")
        if int(min_frames) < 1:
            raise ValueError(f"min_frames must be >= 1, got {min_frames}")
        anchor_points(np.zeros((0, 4)), anchor)  # validates the name
        self.zone_id = zone_id
        self.polygon = check_polygon(points)
        self.min_frames = int(min_frames)
        self.anchor = anchor
        self.classes = None if classes is None else frozenset(int(c) for c in classes)
        self._tracks: dict[int, _Visit] = {}
        self._last_ts = -np.inf

    @property
    def occupancy(self) -> int:
        """How many tracks are inside now (entered, not yet exited)."""
        return sum(v.hold.held for v in self._tracks.values())

    @property
    def occupancy_by_class(self) -> dict[int, int]:
        """``{class_id: tracks inside now}`` (classes with nobody inside are left out)."""
        out: dict[int, int] = {}
        for v in self._tracks.values():
            if v.hold.held:
                out[v.cls] = out.get(v.cls, 0) + 1
        return dict(sorted(out.items()))

    @property
    def open_tracks(self) -> set[int]:
        """Track ids the monitor holds state for."""
        return set(self._tracks)

    def _event(
        self,
        kind: EventType,
        ts: float,
        camera_id: str,
        tid: int,
        cls: int,
        box: Any,
        dwell: float | None = None,
    ) -> Event:
        return Event(
            ts, camera_id, tid, kind, target=self.zone_id, class_id=cls, bbox=box, dwell_s=dwell
        )

    def update(self, tracks: Tracks, timestamp: float, camera_id: str) -> list[Event]:
        """Feed the rows of one frame.

        Args:
            tracks: The tracks visible in this frame (one row per track).
            timestamp: The frame's time in seconds; never earlier than the previous call's.
            camera_id: The events' camera.

        Returns:
            Enters and exits committed by this frame (stamped up to ``min_frames - 1``
            frames earlier, see the class doc).
        """
        if timestamp < self._last_ts:
            raise ValueError(f"timestamp {timestamp} is earlier than the previous frame's")
        self._last_ts = timestamp
        rows = tracks[class_mask(self.classes, tracks.class_id)]
        if not len(rows):
            return []
        if np.unique(rows.track_id).shape[0] != len(rows):
            raise ValueError("update takes the rows of one frame: a track id appears twice")
        inside = points_in_polygon(anchor_points(rows.xyxy, self.anchor), self.polygon)
        boxes, classes = rows.xyxy.tolist(), rows.class_id.tolist()
        events = []
        for i, (tid, now_in) in enumerate(
            zip(rows.track_id.tolist(), inside.tolist(), strict=True)
        ):
            visit = self._tracks.get(tid)
            if visit is None:
                visit = self._tracks[tid] = _Visit()
            visit.camera_id = camera_id
            if visit.hold.observe(now_in, (timestamp, boxes[i], classes[i]), self.min_frames):
                ts, box, cls = visit.hold.start
                if now_in:
                    visit.enter_ts, visit.cls = ts, cls
                    events.append(self._event(EventType.ZONE_ENTER, ts, camera_id, tid, cls, box))
                else:
                    dwell = ts - visit.enter_ts
                    events.append(
                        self._event(EventType.ZONE_EXIT, ts, camera_id, tid, visit.cls, box, dwell)
                    )
            if now_in:
                visit.last_inside = (timestamp, boxes[i])
        return events

    def forget(self, track_ids: Iterable[int]) -> list[Event]:
        """End tracks: open visits exit at their last inside observation.

        Returns:
            The exits of the visits that were open (unknown ids are ignored).
        """
        events = []
        for tid in track_ids:
            visit = self._tracks.pop(int(tid), None)
            if visit is None or not visit.hold.held:
                continue
            ts, box = visit.last_inside  # type: ignore[misc]  # set whenever held
            events.append(
                self._event(
                    EventType.ZONE_EXIT,
                    ts,
                    visit.camera_id,
                    int(tid),
                    visit.cls,
                    box,
                    ts - visit.enter_ts,
                )
            )
        return events

    def close(self, timestamp: float | None = None) -> list[Event]:
        """End the stream: every open visit exits at its last inside observation.

        Args:
            timestamp: The stream's end, if known; a check only (no exit is later than the
                last frame that showed the track inside).

        Returns:
            The exits, ordered by timestamp; the monitor holds no track state afterwards.
        """
        if timestamp is not None and timestamp < self._last_ts:
            raise ValueError(f"close({timestamp}) is earlier than the last frame fed")
        events = self.forget(list(self._tracks))
        return sorted(events, key=lambda e: (e.timestamp, e.track_id))

    def replay(self, tracks: Tracks, timestamps: np.ndarray, camera_id: str) -> list[Event]:
        """Monitor whole recorded tracks at once (vectorised; same events as `update`).

        Every track in `tracks` is treated as complete: visits open at its end exit at its
        last inside row, and the monitor holds no state for it afterwards.

        Args:
            tracks: Rows of any number of frames, in any order.
            timestamps: ``(N,)`` time of each row in seconds.
            camera_id: The events' camera.

        Returns:
            Enter and exit events, ordered by (track, time).

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
        ts = rows.timestamp
        inside = points_in_polygon(anchor_points(rows.xyxy, self.anchor), self.polygon)
        state = inside.astype(np.int64)
        first, _ = _held_transitions(
            rows.track_id, state, np.ones(len(rows), bool), self.min_frames, 0
        )
        # A track whose last change of state was an enter is still inside at its end: it
        # exits at its last inside row.
        n = len(rows)
        new_track = np.r_[True, rows.track_id[1:] != rows.track_id[:-1]]
        ends = np.r_[np.flatnonzero(new_track)[1:] - 1, n - 1]
        last_inside = np.maximum.accumulate(np.where(inside, np.arange(n), -1))
        track_of = np.cumsum(new_track) - 1
        t_of = track_of[first]
        is_last = np.r_[t_of[1:] != t_of[:-1], True]
        open_tracks = t_of[is_last & (state[first] == 1)]
        enters = first[state[first] == 1]
        exits = np.r_[first[state[first] == 0], last_inside[ends[open_tracks]]]
        # Visits alternate enter, exit within a track and tracks are contiguous rows, so
        # sorting all of them by row pairs each enter with the exit that follows it.
        rows_all = np.r_[enters, exits]
        kind = np.r_[np.zeros(enters.size, np.int64), np.ones(exits.size, np.int64)]
        o = np.lexsort((kind, rows_all))
        enter_rows, exit_rows = rows_all[o][0::2], rows_all[o][1::2]
        events = []
        for e, x in zip(enter_rows.tolist(), exit_rows.tolist(), strict=True):
            tid, cls = int(rows.track_id[e]), int(rows.class_id[e])
            t_in, t_out = float(ts[e]), float(ts[x])
            events.append(
                self._event(EventType.ZONE_ENTER, t_in, camera_id, tid, cls, rows.xyxy[e].tolist())
            )
            events.append(
                self._event(
                    EventType.ZONE_EXIT,
                    t_out,
                    camera_id,
                    tid,
                    cls,
                    rows.xyxy[x].tolist(),
                    t_out - t_in,
                )
            )
        return events
