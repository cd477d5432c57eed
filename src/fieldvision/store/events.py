"""`EventStore`: persist flow `Event` records in SQLite or PostgreSQL and query them.

One code path for both databases: SQLAlchemy **Core** (tables and SQL expressions, no ORM).
Core rather than psycopg directly because the same statements must run on SQLite too:
written once as expressions, SQLAlchemy renders each dialect's spelling (parameter style,
casts, ``floor``, ``INSERT .. ON CONFLICT``), pools connections and raises both drivers'
errors as one hierarchy, from which `StoreError` is built. No ORM: rows are append-only and
never loaded as objects, so an identity map would be overhead with nothing to track. The
only dialect-specific pieces are the ``INSERT .. ON CONFLICT`` constructor (SQLAlchemy has
no generic one; chosen in `_insert`) and the statistics command in `EventStore.analyze`.

Only events are stored, never pixels. Time filters are half-open: ``start <= t < end``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, case, create_engine, event, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from fieldvision.errors import FieldVisionError
from fieldvision.store.queries import EventQueries
from fieldvision.store.schema import MAX_ID_CHARS, cameras, events, global_ids, metadata, tracks
from fieldvision.tracking.events import Event

__all__ = ["EventStore", "QueryError", "StoreError"]

_INT64 = 2**63
_INT32 = 2**31
_CHUNK = 1000  # rows per executemany call and per span upsert
_SQLITE_BUSY_MS = 10_000  # concurrent writers queue on SQLite's one write lock this long


class StoreError(FieldVisionError):
    """The store cannot be opened or written (bad URL, server unreachable, bad event)."""


class QueryError(StoreError):
    """A query's arguments are invalid (e.g. a bucket so small it makes too many buckets)."""


def _where(url: URL) -> str:
    """Human-readable target of a URL, without the password."""
    if url.get_backend_name() == "sqlite":
        return f"SQLite database {url.database or ':memory:'}"
    return (
        f"PostgreSQL database {url.database or ''!r} at {url.host or 'localhost'}:"
        f"{url.port or 5432} (user {url.username or ''!r})"
    )


def _reason(exc: BaseException, password: str | None) -> str:
    """The driver's one-line reason, with the password scrubbed should it ever appear."""
    orig = getattr(exc, "orig", None) or exc
    text = " ".join(str(orig).split())
    if password:
        text = text.replace(password, "***")
    return text


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        # The text itself is not echoed: it may hold a password.
        raise StoreError(
            "not a database URL",
            hint="use sqlite:///path/to/events.db or postgresql://user:pass@host:port/db",
        ) from None
    name = parsed.drivername
    if name in {"sqlite", "sqlite+pysqlite"}:
        return parsed.set(drivername="sqlite+pysqlite")
    if name in {"postgresql", "postgres", "postgresql+psycopg"}:
        return parsed.set(drivername="postgresql+psycopg")
    raise StoreError(
        f"unsupported database URL scheme {name!r}",
        hint="use sqlite:///path/to/events.db or postgresql://user:pass@host:port/db",
    )


def _sqlite_engine(url: URL) -> Engine:
    database = url.database or ""
    if database in {"", ":memory:"}:
        # One shared connection: every new one would open a different, empty database.
        return create_engine(
            "sqlite+pysqlite://",
            poolclass=StaticPool,
            connect_args={"check_same_thread": False},
        )
    path = Path(database).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the directory of {path}: {exc.strerror}") from None
    engine = create_engine(
        url.set(database=str(path)),
        connect_args={"check_same_thread": False, "timeout": _SQLITE_BUSY_MS / 1000},
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        # WAL: readers (the dashboard) never block the writer (ingest) and vice versa.
        cur.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL cannot corrupt the database; a power cut may lose the last
        # commits, which producers re-send (ingest is idempotent).
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_MS}")
        try:
            cur.execute("SELECT floor(1.5)")
        except Exception:  # SQLite built without its math functions (before 3.35, or opted out)
            dbapi_conn.create_function("floor", 1, _floor, deterministic=True)
        cur.close()

    return engine


def _floor(value: float | None) -> float | None:
    return None if value is None else float(math.floor(value))


def _postgres_engine(url: URL, connect_timeout_s: int) -> Engine:
    connect_args: dict[str, Any] = {"application_name": "fieldvision"}
    if "connect_timeout" not in url.query:  # a timeout in the URL wins
        connect_args["connect_timeout"] = connect_timeout_s
    # pre_ping: a pooled connection that the server dropped (restart) is replaced, not raised.
    return create_engine(url, connect_args=connect_args, pool_pre_ping=True)


def _insert(dialect: str):
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def _int(value: Any, bound: int, item: str, name: str) -> int:
    try:
        out = operator.index(value)
    except TypeError:
        raise StoreError(f"{item}: {name} must be an integer, got {value!r}") from None
    if not -bound <= out < bound:
        raise StoreError(f"{item}: {name} {out} is out of range")
    return out


def _float(value: Any, item: str, name: str) -> float | None:
    if value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise StoreError(f"{item}: {name} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise StoreError(f"{item}: {name} must be finite, got {value!r}")
    return out


def _ident(value: Any, item: str, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_ID_CHARS:
        raise StoreError(f"{item}: {name} must be a string of <= {MAX_ID_CHARS} chars")
    return value


def _row(index: int, ev: Any) -> dict[str, Any]:
    """Validate one event and turn it into a row; errors name the item's index."""
    item = f"event {index}"
    if not isinstance(ev, Event):
        raise StoreError(f"{item}: expected an Event, got {type(ev).__name__}")
    box = (None,) * 4 if ev.bbox is None else ev.bbox
    coords = [_float(v, item, "bbox") for v in box]
    emb = ev.embedding
    return {
        "event_id": ev.event_id,
        "timestamp": float(ev.timestamp),
        "camera_id": _ident(ev.camera_id, item, "camera_id"),
        "track_id": _int(ev.track_id, _INT64, item, "track_id"),
        "global_id": (
            None if ev.global_id is None else _int(ev.global_id, _INT64, item, "global_id")
        ),
        "type": ev.type.value,
        "target": _ident(ev.target, item, "target"),
        "class_id": _int(ev.class_id, _INT32, item, "class_id"),
        "x1": coords[0],
        "y1": coords[1],
        "x2": coords[2],
        "y2": coords[3],
        "dwell_s": _float(ev.dwell_s, item, "dwell_s"),
        "embedding": None if emb is None else np.asarray(emb, dtype="<f8").tobytes(),
    }


def _spans(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per-batch time spans of tracks and cameras (sorted by key: see `EventStore.ingest`)."""
    per_track: dict[tuple[str, int], dict[str, Any]] = {}
    per_camera: dict[str, dict[str, Any]] = {}
    for row in rows:
        ts = row["timestamp"]
        key = (row["camera_id"], row["track_id"])
        span = per_track.get(key)
        if span is None:
            per_track[key] = {
                "camera_id": key[0],
                "track_id": key[1],
                "first_ts": ts,
                "last_ts": ts,
                "ingest_gid": row["global_id"],
            }
        else:
            span["first_ts"] = min(span["first_ts"], ts)
            span["last_ts"] = max(span["last_ts"], ts)
            if row["global_id"] is not None:
                span["ingest_gid"] = row["global_id"]
        cam = per_camera.setdefault(key[0], {"camera_id": key[0], "first_ts": ts, "last_ts": ts})
        cam["first_ts"] = min(cam["first_ts"], ts)
        cam["last_ts"] = max(cam["last_ts"], ts)
    return [per_track[k] for k in sorted(per_track)], [per_camera[k] for k in sorted(per_camera)]


def _upsert_span(insert: Any, table: Any) -> Any:
    """INSERT a span row, or widen the stored span to cover it (min/max: idempotent)."""
    stmt = insert(table)
    new, old = stmt.excluded, table.c
    # CASE rather than LEAST/GREATEST (PostgreSQL) or two-argument min/max (SQLite): the one
    # spelling both understand.
    widen = {
        "first_ts": case((new.first_ts < old.first_ts, new.first_ts), else_=old.first_ts),
        "last_ts": case((new.last_ts > old.last_ts, new.last_ts), else_=old.last_ts),
    }
    if "ingest_gid" in table.c:
        widen["ingest_gid"] = func.coalesce(new.ingest_gid, old.ingest_gid)
    if "n_events" in table.c:  # counts only the batch's newly inserted events
        widen["n_events"] = old.n_events + new.n_events
    keys = [c.name for c in table.primary_key.columns]
    return stmt.on_conflict_do_update(index_elements=keys, set_=widen)


class EventStore(EventQueries):
    """Events in a SQL database: idempotent ingest, identity links and flow aggregations.

    Create it with `EventStore.open`; it is safe to share between threads (the service's
    worker threads do). Query methods come from `fieldvision.store.queries.EventQueries`.
    """

    def __init__(self, engine: Engine, url: URL) -> None:
        self._engine = engine
        self._url = url
        self.dialect = engine.dialect.name
        self._insert_sql: tuple[str, tuple[str, ...] | None] | None = None

    @classmethod
    def open(cls, url: str, *, connect_timeout_s: int = 5) -> EventStore:
        """Connect to (and if needed create the tables of) a SQLite or PostgreSQL store.

        Args:
            url: ``sqlite:///path/events.db`` (parent directory created; ``sqlite://`` is an
                in-memory store) or ``postgresql://user:pass@host:port/db``.
            connect_timeout_s: PostgreSQL connect timeout (libpq counts whole seconds).

        Raises:
            StoreError: Unsupported scheme, unreachable server, refused credentials; the
                message names host, port and database, never the password.
        """
        parsed = _parse(url)
        if parsed.get_backend_name() == "sqlite":
            engine = _sqlite_engine(parsed)
        else:
            engine = _postgres_engine(parsed, connect_timeout_s)
        try:
            metadata.create_all(engine)
        except SQLAlchemyError as exc:
            engine.dispose()
            raise StoreError(
                f"cannot open the {_where(parsed)}: {_reason(exc, parsed.password)}",
                hint="check that the server runs and the URL's user and password",
            ) from None
        return cls(engine, parsed)

    def __repr__(self) -> str:
        return f"EventStore({self._url.render_as_string(hide_password=True)!r})"

    def close(self) -> None:
        """Close every pooled connection (the store cannot be used afterwards)."""
        self._engine.dispose()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ingest(self, batch: Iterable[Event]) -> int:
        """Store a batch of events in one transaction; events already stored are skipped.

        Args:
            batch: Events; duplicates (same ``event_id``, in the batch or the store) are
                ignored, so re-sending a batch is harmless.

        Returns:
            How many events were newly inserted.

        Raises:
            StoreError: An item is not a valid `Event` (its index is named) or the database
                refused the write. Either way nothing from the batch is written.
        """
        rows: dict[str, dict[str, Any]] = {}
        for index, ev in enumerate(batch):
            row = _row(index, ev)
            rows.setdefault(row["event_id"], row)  # the first copy wins, as in the store
        if not rows:
            return 0
        # Sorted by (camera, id), so that concurrent PostgreSQL transactions take row locks in
        # one order and wait for each other instead of deadlocking.
        values = sorted(rows.values(), key=lambda r: (r["camera_id"], r["event_id"]))
        track_rows, camera_rows = _spans(values)
        per_camera: dict[str, list[dict[str, Any]]] = {}
        for row in values:
            per_camera.setdefault(row["camera_id"], []).append(row)
        insert = _insert(self.dialect)
        try:
            with self._engine.begin() as conn:
                for cam in camera_rows:  # the row counts give each camera's new events
                    group = per_camera[cam["camera_id"]]
                    cam["n_events"] = sum(
                        self._execute_chunk(conn, group[lo : lo + _CHUNK])
                        for lo in range(0, len(group), _CHUNK)
                    )
                for table, span_rows in ((tracks, track_rows), (cameras, camera_rows)):
                    for lo in range(0, len(span_rows), _CHUNK):
                        conn.execute(_upsert_span(insert, table), span_rows[lo : lo + _CHUNK])
        except DBAPIError as exc:
            raise StoreError(
                f"writing {len(values)} events to the {_where(self._url)} failed, nothing was "
                f"written: {_reason(exc, self._url.password)}"
            ) from None
        return sum(cam["n_events"] for cam in camera_rows)

    def _execute_chunk(self, conn: Any, rows: list[dict[str, Any]]) -> int:
        """INSERT .. ON CONFLICT DO NOTHING the rows; returns how many were new.

        The Core statement, compiled once for the dialect, goes to the driver's own
        ``executemany``: that reports the exact row count on both drivers (SQLAlchemy's
        executemany path reports none for psycopg), and psycopg runs one prepared
        14-parameter statement in a pipeline. ``RETURNING`` would work too, but SQLAlchemy
        then renders a multi-row VALUES statement with 14,000 parameters per page, whose
        parsing in psycopg took 3x as long as the insert itself.
        """
        if self._insert_sql is None:
            stmt = _insert(self.dialect)(events).on_conflict_do_nothing(index_elements=["event_id"])
            compiled = stmt.compile(dialect=self._engine.dialect)
            order = tuple(compiled.positiontup) if compiled.positional else None
            self._insert_sql = (str(compiled), order)
        sql, order = self._insert_sql
        # Plain values only (str, int, float, bytes, None): no SQLAlchemy bind processing needed.
        params = rows if order is None else [tuple(r[k] for k in order) for r in rows]
        return conn.exec_driver_sql(sql, params).rowcount

    def analyze(self) -> None:
        """Refresh the query planner's statistics; worth it after a large bulk load.

        PostgreSQL gets ``VACUUM ANALYZE``: the vacuum also marks pages all-visible, which
        its index-only scans of the covering index need. (Autovacuum gets there too, later.)
        """
        statement = "VACUUM ANALYZE" if self.dialect == "postgresql" else "ANALYZE"
        with self._engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(statement)

    def set_global_ids(self, mapping: Mapping[tuple[str, int], int]) -> None:
        """Link per-camera tracks to cross-camera identities (replacing earlier links).

        Events are not rewritten: queries read identities through this mapping, which wins
        over any ``global_id`` the events carried at ingest.

        Args:
            mapping: ``(camera_id, track_id) -> global_id``.
        """
        rows = []
        for i, ((camera, track), gid) in enumerate(mapping.items()):
            rows.append(
                {
                    "camera_id": _ident(camera, f"mapping {i}", "camera_id"),
                    "track_id": _int(track, _INT64, f"mapping {i}", "track_id"),
                    "global_id": _int(gid, _INT64, f"mapping {i}", "global_id"),
                }
            )
        if not rows:
            return
        stmt = _insert(self.dialect)(global_ids)
        stmt = stmt.on_conflict_do_update(
            index_elements=["camera_id", "track_id"],
            set_={"global_id": stmt.excluded.global_id},
        )
        try:
            with self._engine.begin() as conn:
                for lo in range(0, len(rows), _CHUNK):
                    conn.execute(stmt, rows[lo : lo + _CHUNK])
        except DBAPIError as exc:
            raise StoreError(
                f"writing global ids failed: {_reason(exc, self._url.password)}"
            ) from None
