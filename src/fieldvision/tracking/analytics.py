"""Whole-camera analytics: tracks in, the camera's event stream out; events into tables.

`analyze_tracks` replays one camera's recorded tracks through its counting lines and
zones and adds the per-track events (start, end, sampled positions). It is vectorised over
the whole recording (`LineCounter.replay`, `ZoneMonitor.replay`), which gives the same
events as feeding the frames one by one and forgetting each track after its last frame.
`bucket_events` and `occupancy_series` turn any event list into time-bucketed tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from fieldvision.tracking.detections import Tracks
from fieldvision.tracking.events import Event, EventType
from fieldvision.tracking.lines import LineCounter, TrackRows
from fieldvision.tracking.zones import ZoneMonitor

__all__ = [
    "analyze_tracks",
    "bucket_events",
    "events_frame",
    "frame_timestamps",
    "occupancy_series",
]

# Order of events sharing a timestamp: a track starts before anything else it does and
# ends after; enters come before exits.
_RANK = {
    EventType.TRACK_START: 0,
    EventType.ZONE_ENTER: 1,
    EventType.LINE_IN: 2,
    EventType.LINE_OUT: 2,
    EventType.POSITION: 3,
    EventType.ZONE_EXIT: 4,
    EventType.TRACK_END: 5,
}


def frame_timestamps(frame: np.ndarray, fps: float, start_time: float) -> np.ndarray:
    """Seconds of 1-based frame numbers: ``start_time + (frame - 1) / fps``."""
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return start_time + (np.asarray(frame, dtype=np.float64) - 1) / fps


def _track_embeddings(
    embedding: np.ndarray | None, order: np.ndarray, track_index: np.ndarray, n_tracks: int
) -> list[tuple[float, ...] | None]:
    """Per track: the unit-length mean of its rows' unit-length embeddings.

    One sparse ``(tracks, rows)`` matrix of ``1 / |e|`` weights times the embeddings: no
    sorted or normalised copy of a possibly gigabyte-sized feature array is made.
    """
    if embedding is None or embedding.shape[1] == 0:
        return [None] * n_tracks
    from scipy.sparse import csr_matrix

    norm = np.sqrt(np.einsum("ij,ij->i", embedding, embedding, dtype=np.float64))
    valid = norm > 0  # an all-zero feature carries no appearance: leave it out
    weight = np.where(valid, 1 / np.where(valid, norm, 1), 0)[order].astype(embedding.dtype)
    pick = csr_matrix((weight, (track_index, order)), shape=(n_tracks, embedding.shape[0]))
    total = np.asarray(pick @ embedding, dtype=np.float64)
    size = np.linalg.norm(total, axis=1)
    counts = np.bincount(track_index, weights=valid[order], minlength=n_tracks)
    return [
        tuple((vec / n).tolist()) if k and n > 0 else None
        for vec, n, k in zip(total, size, counts, strict=True)
    ]


def _majority_class(track_index: np.ndarray, class_id: np.ndarray, n_tracks: int) -> np.ndarray:
    """Most frequent class of each track (ties: the smallest class id)."""
    low = int(class_id.min())
    span = int(class_id.max()) - low + 1
    if span * n_tracks < 2**62:  # one int64 key per (track, class): a fast 1-D unique
        keys, counts = np.unique(track_index * span + (class_id - low), return_counts=True)
        pairs = np.stack([keys // span, keys % span + low], axis=1)
    else:
        pairs, counts = np.unique(np.stack([track_index, class_id], 1), axis=0, return_counts=True)
    order = np.lexsort((pairs[:, 1], -counts, pairs[:, 0]))
    pairs = pairs[order]
    first = np.r_[True, pairs[1:, 0] != pairs[:-1, 0]]
    out = np.zeros(n_tracks, np.int64)
    out[pairs[first, 0]] = pairs[first, 1]
    return out


def analyze_tracks(
    tracks: Tracks,
    *,
    camera_id: str,
    fps: float,
    start_time: float,
    lines: Sequence[LineCounter] = (),
    zones: Sequence[ZoneMonitor] = (),
    sample_s: float | None = 1.0,
) -> list[Event]:
    """All events of one camera's recorded tracks, ordered by time.

    Per track: `EventType.TRACK_START` at its first frame and `EventType.TRACK_END` at its
    last (bbox of that frame, the track's most frequent class, and, when the tracks carry
    embeddings, the unit-length mean of the track's unit-length embeddings on both);
    `EventType.POSITION` at the first frame of every ``sample_s`` window since the track
    started (bbox of that frame). Plus each line's crossings and each zone's enters and
    exits; tracks end at their last frame (open visits exit at their last inside frame),
    so the counters and zones hold no state for these tracks afterwards.

    Args:
        tracks: One camera's tracks, any row order; frame numbers are 1-based.
        camera_id: The events' camera.
        fps: Frame rate; frame ``f`` is at ``start_time + (f - 1) / fps``.
        start_time: Unix time (s) of frame 1.
        lines: Counting lines of this camera (their counts accumulate).
        zones: Zones of this camera.
        sample_s: Seconds between POSITION samples of a track; ``None`` for none.

    Returns:
        Events sorted by (timestamp, start < enter < line < position < exit < end,
        track id).
    """
    if sample_s is not None and not sample_s > 0:
        raise ValueError(f"sample_s must be positive or None, got {sample_s}")
    ts_all = frame_timestamps(tracks.frame, fps, start_time)
    if not len(tracks):
        return []
    order = np.lexsort((tracks.frame, tracks.track_id))
    rows = TrackRows(
        tracks.track_id[order], tracks.xyxy[order], tracks.class_id[order], ts_all[order]
    )
    events: list[Event] = []
    for counter in lines:
        events += counter.replay_rows(rows, camera_id)
    for zone in zones:
        events += zone.replay_rows(rows, camera_id)

    frame, ts = tracks.frame[order], rows.timestamp
    n = len(rows)
    new_track = np.r_[True, rows.track_id[1:] != rows.track_id[:-1]]
    starts = np.flatnonzero(new_track)
    ends = np.r_[starts[1:] - 1, n - 1]
    track_index = np.cumsum(new_track) - 1
    classes = _majority_class(track_index, rows.class_id, starts.size).tolist()
    embeddings = _track_embeddings(tracks.embedding, order, track_index, starts.size)
    ids, boxes = rows.track_id.tolist(), rows.xyxy
    for k, (s, e) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        common = {"class_id": classes[k], "embedding": embeddings[k]}
        for row, kind in ((s, EventType.TRACK_START), (e, EventType.TRACK_END)):
            box = boxes[row].tolist()
            events.append(Event(float(ts[row]), camera_id, ids[row], kind, bbox=box, **common))
    if sample_s is not None:
        # Window index from frame numbers, not float seconds, so that exactly one frame
        # starts each window at integer frames per window (1e-9 absorbs rounding).
        since = frame - frame[starts][track_index]
        window = np.floor(since / (fps * sample_s) + 1e-9).astype(np.int64)
        sample = np.flatnonzero(new_track | np.r_[True, window[1:] != window[:-1]])
        events += [
            Event(t, camera_id, tid, EventType.POSITION, class_id=c, bbox=box)
            for t, tid, c, box in zip(
                ts[sample].tolist(),
                rows.track_id[sample].tolist(),
                rows.class_id[sample].tolist(),
                boxes[sample].tolist(),
                strict=True,
            )
        ]
    events.sort(key=lambda ev: (ev.timestamp, _RANK.get(ev.type, 3), ev.track_id))
    return events


def events_frame(events: Iterable[Event]) -> pd.DataFrame:
    """Events as a table: timestamp, camera_id, track_id, type (str), target, class_id,
    dwell_s (one row per event; bbox and embedding are left out)."""
    cols = ["timestamp", "camera_id", "track_id", "type", "target", "class_id", "dwell_s"]
    data = [
        (e.timestamp, e.camera_id, e.track_id, e.type.value, e.target, e.class_id, e.dwell_s)
        for e in events
    ]
    frame = pd.DataFrame(data, columns=cols)
    types = {"timestamp": float, "track_id": "int64", "class_id": "int64", "dwell_s": float}
    return frame.astype(types)


def _empty(cols: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})


def _bucket(ts: np.ndarray, bucket_s: float, origin: float) -> np.ndarray:
    return np.floor((ts - origin) / bucket_s).astype(np.int64)


def _check_bucket(bucket_s: float) -> None:
    if not bucket_s > 0:
        raise ValueError(f"bucket_s must be positive, got {bucket_s}")


def bucket_events(
    events: Iterable[Event],
    bucket_s: float,
    *,
    start: float | None = None,
    end: float | None = None,
) -> pd.DataFrame:
    """Event counts per time bucket.

    Buckets are ``[origin + k * bucket_s, origin + (k + 1) * bucket_s)`` with origin
    `start`, or the Unix epoch when `start` is ``None`` (so hourly buckets fall on the
    hour). Only non-empty groups appear.

    Args:
        events: Any events.
        bucket_s: Bucket length in seconds.
        start: Keep events at or after this time (and align buckets to it).
        end: Keep events before this time.

    Returns:
        Columns ``bucket_start, camera_id, type, target, class_id, count``; ``target`` is
        ``None`` for track events. Sorted by those columns.
    """
    _check_bucket(bucket_s)
    cols = ["bucket_start", "camera_id", "type", "target", "class_id"]
    frame = events_frame(events)
    keep = np.ones(len(frame), bool)
    if start is not None:
        keep &= frame["timestamp"].to_numpy() >= start
    if end is not None:
        keep &= frame["timestamp"].to_numpy() < end
    frame = frame[keep]
    origin = 0.0 if start is None else float(start)
    frame = frame.assign(
        bucket_start=origin + _bucket(frame["timestamp"].to_numpy(), bucket_s, origin) * bucket_s
    )
    # Grouping keys must not be NaN-dropped: track events have no target.
    frame = frame.assign(target=frame["target"].astype(object).where(frame["target"].notna(), ""))
    out = frame.groupby(cols, sort=True).size().reset_index(name="count")
    # object dtype: pandas' string dtype would turn the None back into NaN.
    out["target"] = pd.Series([t or None for t in out["target"]], index=out.index, dtype=object)
    out = out.astype({"bucket_start": float, "class_id": "int64", "count": "int64"})
    return out[[*cols, "count"]].reset_index(drop=True)


def occupancy_series(
    events: Iterable[Event],
    bucket_s: float,
    *,
    start: float | None = None,
    end: float | None = None,
) -> pd.DataFrame:
    """How many tracks are in each zone, per time bucket, from enter/exit events.

    Every bucket from the first to the last is listed for every (camera, zone), including
    buckets without events (the occupancy carries over). Events before `start` still
    count towards the occupancy it starts with; the history is assumed to begin with
    every zone empty. At equal timestamps exits are applied before enters.

    Args:
        events: Any events (only ``zone_enter`` / ``zone_exit`` are used).
        bucket_s: Bucket length in seconds; buckets are aligned as in `bucket_events`.
        start: First bucket starts here (default: the bucket of the first zone event).
        end: Buckets end before this time (default: the bucket of the last zone event).

    Returns:
        Columns ``bucket_start, camera_id, zone, occupancy`` (inside at the bucket's end),
        ``max_occupancy`` (the most inside at any moment of the bucket).
    """
    _check_bucket(bucket_s)
    cols = ["bucket_start", "camera_id", "zone", "occupancy", "max_occupancy"]
    frame = events_frame(events)
    frame = frame[frame["type"].isin([EventType.ZONE_ENTER.value, EventType.ZONE_EXIT.value])]
    if not len(frame):
        return _empty(cols)
    origin = 0.0 if start is None else float(start)
    ts_all = frame["timestamp"].to_numpy()
    first = 0 if start is not None else int(_bucket(ts_all.min(), bucket_s, origin))
    if end is not None:
        last = int(np.ceil((end - origin) / bucket_s)) - 1
    else:
        last = int(_bucket(ts_all.max(), bucket_s, origin))
    if last < first:
        return _empty(cols)
    buckets = np.arange(first, last + 1)
    parts = []
    for (camera, zone), group in frame.groupby(["camera_id", "target"], sort=True):
        delta = np.where(group["type"].to_numpy() == EventType.ZONE_ENTER.value, 1, -1)
        ts = group["timestamp"].to_numpy()
        o = np.lexsort((delta, ts))  # exits (-1) before enters at the same time
        delta, b = delta[o], _bucket(ts[o], bucket_s, origin)
        level = np.cumsum(delta)
        after = np.searchsorted(b, buckets, side="right")  # events up to each bucket's end
        level_end = np.where(after > 0, level[np.maximum(after - 1, 0)], 0)
        # A bucket starts at the level the previous one ended with; the first bucket at
        # the level of all earlier events.
        before = np.searchsorted(b, first, side="left")
        peak = np.r_[level[before - 1] if before > 0 else 0, level_end[:-1]]
        inside = (b >= first) & (b <= last)
        np.maximum.at(peak, b[inside] - first, level[inside])
        parts.append(
            pd.DataFrame(
                {
                    "bucket_start": origin + buckets * bucket_s,
                    "camera_id": camera,
                    "zone": zone,
                    "occupancy": level_end,
                    "max_occupancy": peak,
                }
            )
        )
    out = pd.concat(parts, ignore_index=True)
    return out.astype({"occupancy": "int64", "max_occupancy": "int64"})[cols]
