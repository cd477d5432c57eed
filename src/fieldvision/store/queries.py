"""Read side of the event store: flow aggregations as SQL (SQLAlchemy Core), one per method.

Grouping happens in the database so a dashboard query over a day of events moves a few
hundred rows, not millions. Time buckets are ``floor(timestamp / bucket_s)``, which both
databases compute natively; they are grouped by their output name (``GROUP BY bucket``)
because PostgreSQL only accepts a grouped expression that is identical to the selected one,
and two renderings of one bound parameter are not.

Every aggregation groups by event ``type`` *first* and only reads columns of the covering
index ``(type, camera_id, timestamp, target, class_id, dwell_s)``. That lets SQLite use it:
grouped by camera first, SQLite's planner prefers walking the ``(camera_id, timestamp)``
index in group order and looking every row up in the table, 10-20x slower on a day of
events. Per-type partial results (enters, exits) are combined in Python.

All time filters are half-open, ``start <= timestamp < end``; ``None`` means unbounded.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sqlalchemy import Engine, and_, bindparam, func, literal_column, select
from sqlalchemy.sql import ColumnElement

from fieldvision.store.schema import Double, cameras, events, global_ids, tracks
from fieldvision.tracking.events import Event, EventType

__all__ = ["MAX_BUCKETS", "EventQueries"]

MAX_BUCKETS = 20_000  # per zone: larger answers are a mistaken bucket size, not a chart

_LINE = (EventType.LINE_IN.value, EventType.LINE_OUT.value)
_ZONE = (EventType.ZONE_ENTER.value, EventType.ZONE_EXIT.value)


def _filters(
    *,
    start: float | None = None,
    end: float | None = None,
    camera: str | None = None,
    types: tuple[str, ...] | None = None,
    target: str | None = None,
) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if types is not None:
        conds.append(events.c.type == types[0] if len(types) == 1 else events.c.type.in_(types))
    if camera is not None:
        conds.append(events.c.camera_id == camera)
    if target is not None:
        conds.append(events.c.target == target)
    if start is not None:
        conds.append(events.c.timestamp >= float(start))
    if end is not None:
        conds.append(events.c.timestamp < float(end))
    return conds


def _query_error(message: str, hint: str | None = None) -> Exception:
    # Imported here: store.events imports this module for the EventQueries mixin.
    from fieldvision.store.events import QueryError

    return QueryError(message, hint)


def _net(counts: dict[str, int]) -> int:
    return counts[EventType.ZONE_ENTER.value] - counts[EventType.ZONE_EXIT.value]


_BUCKET = literal_column("bucket")  # GROUP BY the output name, see the module docstring


def _bucket(bucket_s: float) -> ColumnElement[Any]:
    if not (math.isfinite(bucket_s) and bucket_s > 0):
        raise _query_error(f"bucket must be a positive number of seconds, got {bucket_s!r}")
    expr = func.floor(events.c.timestamp / bindparam("bucket_s", float(bucket_s), Double))
    return expr.label("bucket")


def _linked_tracks() -> tuple[Any, ColumnElement[Any]]:
    """``tracks`` outer-joined to its links, and the identity expression over the join."""
    link = and_(
        global_ids.c.camera_id == tracks.c.camera_id,
        global_ids.c.track_id == tracks.c.track_id,
    )
    gid = func.coalesce(global_ids.c.global_id, tracks.c.ingest_gid)
    return tracks.outerjoin(global_ids, link), gid


class EventQueries:
    """Query methods of `fieldvision.store.EventStore` (mixed in; needs ``self._engine``)."""

    _engine: Engine

    def _all(self, stmt: Any) -> list[Any]:
        with self._engine.connect() as conn:
            return list(conn.execute(stmt).all())

    def count(self, *, camera: str | None = None) -> int:
        """Number of stored events (of one camera)."""
        stmt = select(func.coalesce(func.sum(cameras.c.n_events), 0))
        if camera is not None:
            stmt = stmt.where(cameras.c.camera_id == camera)
        return int(self._all(stmt)[0][0])

    def cameras(self) -> list[str]:
        """Camera ids that have events, sorted."""
        stmt = select(cameras.c.camera_id).order_by(cameras.c.camera_id)
        return [r[0] for r in self._all(stmt)]

    def time_range(self, *, camera: str | None = None) -> tuple[float, float] | None:
        """``(first, last)`` event timestamp (of one camera), or ``None`` when there is none."""
        stmt = select(func.min(cameras.c.first_ts), func.max(cameras.c.last_ts))
        if camera is not None:
            stmt = stmt.where(cameras.c.camera_id == camera)
        lo, hi = self._all(stmt)[0]
        return None if lo is None else (float(lo), float(hi))

    def line_counts(
        self,
        bucket_s: float,
        *,
        start: float | None = None,
        end: float | None = None,
        camera: str | None = None,
    ) -> list[dict[str, Any]]:
        """Line crossings per time bucket, camera, line, direction and class.

        Returns:
            Rows ``{bucket_start, camera_id, line, direction ("in"/"out"), class_id,
            count}`` ordered by bucket, camera, line, direction, class; empty buckets are
            absent.
        """
        keys = (events.c.type, _BUCKET, events.c.camera_id, events.c.target, events.c.class_id)
        stmt = (
            select(events.c.type, _bucket(bucket_s), *keys[2:], func.count())
            .where(*_filters(start=start, end=end, camera=camera, types=_LINE))
            .group_by(*keys)
        )
        rows = sorted(self._all(stmt), key=lambda r: (r[1], r[2], r[3], r[0], r[4]))
        return [
            {
                "bucket_start": float(b) * bucket_s,
                "camera_id": cam,
                "line": line,
                "direction": "in" if kind == EventType.LINE_IN.value else "out",
                "class_id": int(cls),
                "count": int(n),
            }
            for kind, b, cam, line, cls, n in rows
        ]

    def _per_target(
        self,
        types: tuple[str, ...],
        *,
        start: float | None = None,
        end: float | None = None,
        camera: str | None = None,
        bucket_s: float | None = None,
    ) -> dict[tuple[Any, ...], dict[str, int]]:
        """Event counts per (camera, target[, bucket]) and type."""
        keys = [events.c.type, events.c.camera_id, events.c.target]
        cols = list(keys)
        if bucket_s is not None:
            keys.append(_BUCKET)
            cols.append(_bucket(bucket_s))
        stmt = (
            select(*cols, func.count())
            .where(*_filters(start=start, end=end, camera=camera, types=types))
            .group_by(*keys)
        )
        out: dict[tuple[Any, ...], dict[str, int]] = {}
        for kind, *key, n in self._all(stmt):
            out.setdefault(tuple(key), dict.fromkeys(types, 0))[kind] = int(n)
        return out

    def totals(
        self,
        *,
        start: float | None = None,
        end: float | None = None,
        camera: str | None = None,
    ) -> list[dict[str, Any]]:
        """Crossings per camera and line over the window (all classes).

        Returns:
            Rows ``{camera_id, line, in, out, net}`` sorted by camera and line.
        """
        per = self._per_target(_LINE, start=start, end=end, camera=camera)
        rows = []
        for (cam, line), n in sorted(per.items()):
            n_in, n_out = n[EventType.LINE_IN.value], n[EventType.LINE_OUT.value]
            rows.append(
                {"camera_id": cam, "line": line, "in": n_in, "out": n_out, "net": n_in - n_out}
            )
        return rows

    def current_occupancy(
        self, *, camera: str | None = None, at: float | None = None
    ) -> list[dict[str, Any]]:
        """People in each zone at time ``at`` (default: after the last event).

        Occupancy is enters minus exits before ``at``; it goes negative only if exits were
        stored without their enters (e.g. a producer that started mid-visit).

        Returns:
            Rows ``{camera_id, zone, occupancy}`` sorted by camera and zone.
        """
        per = self._per_target(_ZONE, end=at, camera=camera)
        return [
            {"camera_id": cam, "zone": zone, "occupancy": _net(v)}
            for (cam, zone), v in sorted(per.items())
        ]

    def zone_occupancy(
        self,
        bucket_s: float,
        *,
        start: float | None = None,
        end: float | None = None,
        camera: str | None = None,
    ) -> list[dict[str, Any]]:
        """Occupancy of each zone at the end of every time bucket in the window.

        Enters and exits before ``start`` count towards the first bucket's value, so a
        window shows the true occupancy, not a change since ``start``. Every zone gets one
        row per bucket, including buckets without events.

        Returns:
            Rows ``{bucket_start, bucket_end, camera_id, zone, occupancy}`` ordered by
            bucket, camera and zone.

        Raises:
            QueryError: The window holds more than `MAX_BUCKETS` buckets.
        """
        per = self._per_target(_ZONE, start=start, end=end, camera=camera, bucket_s=bucket_s)
        base: dict[tuple[str, str], int] = {}
        if start is not None:
            before = self._per_target(_ZONE, end=start, camera=camera)
            base = {key: _net(v) for key, v in before.items()}
        if not per and not base:
            return []
        buckets = [int(b) for _, _, b in per]
        first = math.floor(start / bucket_s) if start is not None else min(buckets)
        last = math.ceil(end / bucket_s) - 1 if end is not None else max(buckets, default=first)
        if last - first + 1 > MAX_BUCKETS:
            raise _query_error(
                f"{last - first + 1} buckets of {bucket_s:g} s (at most {MAX_BUCKETS})",
                hint="use a larger bucket or a shorter window",
            )
        zones = sorted(set(base) | {(c, z) for c, z, _ in per})
        index = {key: i for i, key in enumerate(zones)}
        deltas = np.zeros((len(zones), max(last - first + 1, 0)), dtype=np.int64)
        for (cam, zone, b), v in per.items():
            deltas[index[(cam, zone)], int(b) - first] += _net(v)
        occupancy = np.cumsum(deltas, axis=1)
        occupancy += np.array([base.get(k, 0) for k in zones], dtype=np.int64)[:, None]
        return [
            {
                "bucket_start": float((first + j) * bucket_s),
                "bucket_end": float((first + j + 1) * bucket_s),
                "camera_id": cam,
                "zone": zone,
                "occupancy": int(occupancy[i, j]),
            }
            for j in range(deltas.shape[1])
            for i, (cam, zone) in enumerate(zones)
        ]

    def dwell(
        self,
        zone: str | None = None,
        camera: str | None = None,
        *,
        start: float | None = None,
        end: float | None = None,
    ) -> list[float]:
        """Dwell times (s) of zone exits in the window, in time order."""
        stmt = (
            select(events.c.dwell_s)
            .where(
                *_filters(start=start, end=end, camera=camera, types=(_ZONE[1],), target=zone),
                events.c.dwell_s.is_not(None),
            )
            .order_by(events.c.timestamp)
        )
        return [float(r[0]) for r in self._all(stmt)]

    def positions(
        self, camera: str, start: float | None = None, end: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Foot points of one camera's POSITION events: what heatmaps are built from.

        Returns:
            ``(points (N, 2) float64, track_ids (N,) int64)`` in no particular order; a
            point is the bbox's bottom centre ``((x1 + x2) / 2, y2)`` in that camera's
            pixels.
        """
        stmt = select((events.c.x1 + events.c.x2) / 2, events.c.y2, events.c.track_id).where(
            *_filters(start=start, end=end, camera=camera, types=(EventType.POSITION.value,)),
            events.c.x1.is_not(None),
        )
        rows = self._all(stmt)
        if not rows:
            return np.zeros((0, 2)), np.zeros(0, dtype=np.int64)
        arr = np.asarray([tuple(r) for r in rows], dtype=np.float64)  # Row objects: 10x slower
        return arr[:, :2].copy(), arr[:, 2].astype(np.int64)

    def people(
        self,
        *,
        camera: str | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> dict[str, int]:
        """Distinct ``tracks`` (per camera) and ``global_ids`` (linked identities) seen.

        A track counts for a window when its span (first to last event) overlaps it.
        """
        joined, gid = _linked_tracks()
        conds = []
        if camera is not None:
            conds.append(tracks.c.camera_id == camera)
        if start is not None:
            conds.append(tracks.c.last_ts >= float(start))
        if end is not None:
            conds.append(tracks.c.first_ts < float(end))
        stmt = select(func.count(), func.count(func.distinct(gid))).select_from(joined)
        n_tracks, n_gids = self._all(stmt.where(*conds))[0]
        return {"tracks": int(n_tracks), "global_ids": int(n_gids)}

    def journeys(self, global_id: int | None = None) -> list[dict[str, Any]]:
        """Each identity's path across cameras.

        Consecutive tracks of one identity on the same camera (a track broken and restarted)
        merge into one visit.

        Returns:
            Per global id, ascending: ``{global_id, first, last, cameras, visits}`` where
            ``visits`` is the time-ordered list of ``{camera_id, first, last, track_ids}``
            and ``cameras`` the visited cameras in order of first visit.
        """
        joined, gid = _linked_tracks()
        cols = (tracks.c.camera_id, tracks.c.track_id, tracks.c.first_ts, tracks.c.last_ts)
        stmt = select(gid, *cols).select_from(joined)
        stmt = stmt.where(gid.is_not(None) if global_id is None else gid == int(global_id))
        rows = self._all(stmt.order_by(gid, tracks.c.first_ts, tracks.c.camera_id))
        out: list[dict[str, Any]] = []
        for g, cam, track, first, last in rows:
            if not out or out[-1]["global_id"] != g:
                out.append({"global_id": int(g), "first": float(first), "visits": []})
            visits = out[-1]["visits"]
            if visits and visits[-1]["camera_id"] == cam:
                visits[-1]["last"] = max(visits[-1]["last"], float(last))
                visits[-1]["track_ids"].append(int(track))
            else:
                visits.append(
                    {
                        "camera_id": cam,
                        "first": float(first),
                        "last": float(last),
                        "track_ids": [int(track)],
                    }
                )
        for journey in out:
            journey["last"] = max(v["last"] for v in journey["visits"])
            journey["cameras"] = list(dict.fromkeys(v["camera_id"] for v in journey["visits"]))
        return out

    def events(
        self,
        *,
        camera: str | None = None,
        start: float | None = None,
        end: float | None = None,
        types: tuple[EventType | str, ...] | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        """Stored events in time order, with identities as linked by `set_global_ids`."""
        kinds = None if types is None else tuple(EventType(t).value for t in types)
        link = and_(
            global_ids.c.camera_id == events.c.camera_id,
            global_ids.c.track_id == events.c.track_id,
        )
        gid = func.coalesce(global_ids.c.global_id, events.c.global_id)
        stmt = (
            select(events, gid.label("linked_gid"))
            .select_from(events.outerjoin(global_ids, link))
            .where(*_filters(start=start, end=end, camera=camera, types=kinds))
            .order_by(events.c.timestamp, events.c.event_id)
        )
        if limit is not None:
            stmt = stmt.limit(int(limit))
        return [_event(r._mapping) for r in self._all(stmt)]


def _event(row: Any) -> Event:
    box = (row["x1"], row["y1"], row["x2"], row["y2"])
    emb = row["embedding"]
    return Event(
        timestamp=float(row["timestamp"]),
        camera_id=row["camera_id"],
        track_id=int(row["track_id"]),
        type=EventType(row["type"]),
        target=row["target"],
        global_id=None if row["linked_gid"] is None else int(row["linked_gid"]),
        class_id=int(row["class_id"]),
        bbox=None if box[0] is None else tuple(float(v) for v in box),
        dwell_s=None if row["dwell_s"] is None else float(row["dwell_s"]),
        embedding=None if emb is None else tuple(np.frombuffer(bytes(emb), dtype="<f8").tolist()),
    )
