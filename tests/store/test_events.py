"""EventStore against SQLite and a real PostgreSQL: ingest, aggregations, identities, errors."""

from __future__ import annotations

import math
import socket
import time

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from fieldvision.store import EventStore, QueryError, StoreError
from fieldvision.store import events as store_events
from fieldvision.tracking.events import Event, EventType

T0 = 1200.0  # a multiple of 60, so minute buckets start at T0 + 60k


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/db/events.db"
    else:
        url = request.getfixturevalue("fresh_pg_url")
    with EventStore.open(url) as opened:
        yield opened


def line(t, cam, track, kind, name, cls=0):
    return Event(T0 + t, cam, track, kind, target=name, class_id=cls)


def zone(t, cam, track, kind, name, dwell=None):
    return Event(T0 + t, cam, track, kind, target=name, dwell_s=dwell)


IN, OUT = EventType.LINE_IN, EventType.LINE_OUT
ENTER, EXIT = EventType.ZONE_ENTER, EventType.ZONE_EXIT

LINE_EVENTS = [
    line(0, "A", 1, IN, "L"),
    line(30, "A", 2, IN, "L"),
    line(59.999, "A", 3, OUT, "L"),
    line(60, "A", 4, IN, "L"),
    line(125, "A", 1, OUT, "L", cls=2),
    line(300, "B", 1, IN, "M"),
]
# Zone Z on camera A: 1 enters at 5, 2 at 20, 1 leaves at 70, 3 enters at 100, 2 leaves at
# 130, 3 leaves at 200. Occupancy at minute ends (1260, 1320, 1380, 1440): 2, 2, 1, 0.
ZONE_EVENTS = [
    zone(5, "A", 1, ENTER, "Z"),
    zone(20, "A", 2, ENTER, "Z"),
    zone(70, "A", 1, EXIT, "Z", 65.0),
    zone(100, "A", 3, ENTER, "Z"),
    zone(130, "A", 2, EXIT, "Z", 110.0),
    zone(200, "A", 3, EXIT, "Z", 100.0),
    zone(310, "B", 1, ENTER, "Y"),
]
POSITIONS = [
    Event(T0 + 1, "A", 1, EventType.POSITION, bbox=(10, 20, 30, 40)),
    Event(T0 + 2, "A", 2, EventType.POSITION, bbox=(0, 0, 100, 50)),
    Event(T0 + 3, "B", 1, EventType.POSITION, bbox=(0, 0, 2, 2)),
]
ALL = LINE_EVENTS + ZONE_EVENTS + POSITIONS


def test_ingest_is_idempotent(store):
    assert store.ingest(ALL) == len(ALL)
    before = (store.count(), store.totals(), store.zone_occupancy(60))
    assert store.ingest(ALL) == 0
    assert store.ingest(ALL[:3] + ALL[:3]) == 0  # duplicates inside one batch, too
    assert (store.count(), store.totals(), store.zone_occupancy(60)) == before
    extra = line(400, "B", 2, OUT, "M")
    assert store.ingest([*ALL, extra, extra]) == 1
    assert store.count() == len(ALL) + 1


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("not an event", "event 2: expected an Event"),
        (Event(T0, "A", 2**70, IN, target="L"), "event 2: track_id"),
        (Event(T0, "A", 1, IN, target="L", global_id=-(2**64)), "event 2: global_id"),
        (Event(T0, "A" * 129, 1, IN, target="L"), "event 2: camera_id"),
        (Event(T0, "A", 1, IN, target="L" * 129), "event 2: target"),
        (Event(T0, "A", 1, EXIT, target="Z", dwell_s=math.nan), "event 2: dwell_s"),
        (Event(T0, "A", 1, EventType.POSITION, bbox=(0, 0, math.inf, 1)), "event 2: bbox"),
    ],
)
def test_a_bad_item_writes_nothing(store, bad, message):
    with pytest.raises(StoreError, match=message):
        store.ingest([*ALL[:2], bad, *ALL[2:]])
    assert store.count() == 0


def test_a_failed_database_write_rolls_back_the_whole_batch(store, monkeypatch):
    monkeypatch.setattr(store_events, "_CHUNK", 2)
    calls = []
    real = EventStore._execute_chunk

    def flaky(self, conn, rows):
        calls.append(len(rows))
        if len(calls) == 2:  # the first chunk is already in the transaction
            raise OperationalError("INSERT", {}, RuntimeError("disk full"))
        return real(self, conn, rows)

    monkeypatch.setattr(EventStore, "_execute_chunk", flaky)
    with pytest.raises(StoreError, match="nothing was written: disk full"):
        store.ingest(ALL)
    assert calls == [2, 2]
    assert store.count() == 0


def test_line_counts_by_bucket(store):
    store.ingest(ALL)
    got = store.line_counts(60)
    expected = [
        (1200.0, "A", "L", "in", 0, 2),
        (1200.0, "A", "L", "out", 0, 1),  # 59.999 s is still the first minute
        (1260.0, "A", "L", "in", 0, 1),
        (1320.0, "A", "L", "out", 2, 1),
        (1500.0, "B", "M", "in", 0, 1),
    ]
    keys = ("bucket_start", "camera_id", "line", "direction", "class_id", "count")
    assert got == [dict(zip(keys, row, strict=True)) for row in expected]
    assert [r["count"] for r in store.line_counts(60, camera="B")] == [1]
    window = store.line_counts(60, start=T0 + 30, end=T0 + 60)  # half-open: 60 s excluded
    assert [(r["direction"], r["count"]) for r in window] == [("in", 1), ("out", 1)]
    assert sum(r["count"] for r in store.line_counts(3600)) == len(LINE_EVENTS)
    halves = store.line_counts(0.5, camera="A", end=T0 + 31)
    assert [r["bucket_start"] for r in halves] == [1200.0, 1230.0]


def test_totals(store):
    store.ingest(ALL)
    assert store.totals() == [
        {"camera_id": "A", "line": "L", "in": 3, "out": 2, "net": 1},
        {"camera_id": "B", "line": "M", "in": 1, "out": 0, "net": 1},
    ]
    assert store.totals(camera="A", start=T0 + 60) == [
        {"camera_id": "A", "line": "L", "in": 1, "out": 1, "net": 0}
    ]


def test_zone_occupancy(store):
    store.ingest(ALL)
    rows = store.zone_occupancy(60, camera="A")
    assert [(r["bucket_start"], r["bucket_end"], r["occupancy"]) for r in rows] == [
        (1200.0, 1260.0, 2),
        (1260.0, 1320.0, 2),
        (1320.0, 1380.0, 1),
        (1380.0, 1440.0, 0),
    ]
    # Enters before the window still count: the first bucket starts at 2 people, not 0.
    later = store.zone_occupancy(60, camera="A", start=T0 + 60)
    assert [r["occupancy"] for r in later] == [2, 1, 0]
    assert [r["occupancy"] for r in store.zone_occupancy(60, camera="A", end=T0 + 120)] == [2, 2]
    # Every zone gets a row per bucket, also where it had no events.
    both = store.zone_occupancy(60, start=T0 + 240, end=T0 + 360)
    assert [(r["bucket_start"], r["zone"], r["occupancy"]) for r in both] == [
        (1440.0, "Z", 0),  # camera A
        (1440.0, "Y", 0),  # camera B
        (1500.0, "Z", 0),
        (1500.0, "Y", 1),
    ]
    assert store.current_occupancy() == [
        {"camera_id": "A", "zone": "Z", "occupancy": 0},
        {"camera_id": "B", "zone": "Y", "occupancy": 1},
    ]
    assert store.current_occupancy(camera="A", at=T0 + 110) == [
        {"camera_id": "A", "zone": "Z", "occupancy": 2}
    ]


def test_dwell(store):
    store.ingest(ALL)
    assert store.dwell() == [65.0, 110.0, 100.0]
    assert store.dwell(zone="Z", camera="A", start=T0 + 100) == [110.0, 100.0]
    assert store.dwell(zone="Y") == []


def test_positions_are_bbox_bottom_centres(store):
    store.ingest(ALL)
    points, tracks = store.positions("A")
    order = np.argsort(tracks)  # no particular order: a heatmap does not need one
    np.testing.assert_allclose(points[order], [[20.0, 40.0], [50.0, 50.0]])
    assert tracks[order].tolist() == [1, 2] and tracks.dtype == np.int64
    points, tracks = store.positions("A", start=T0 + 1.5)
    assert points.shape == (1, 2) and tracks.tolist() == [2]
    points, tracks = store.positions("nowhere")
    assert points.shape == (0, 2) and tracks.shape == (0,)


def test_global_ids_link_without_rewriting_events(store):
    pre_linked = Event(T0 + 500, "B", 9, EventType.TRACK_START, global_id=42)
    store.ingest([*ALL, pre_linked])
    assert store.journeys() == [_journey(42, [("B", T0 + 500, T0 + 500, [9])])]
    store.set_global_ids({("A", 1): 7, ("B", 1): 7, ("A", 2): 8})
    journeys = store.journeys()
    assert [j["global_id"] for j in journeys] == [7, 8, 42]
    assert journeys[0] == _journey(7, [("A", T0 + 0, T0 + 125, [1]), ("B", T0 + 3, T0 + 310, [1])])
    assert store.journeys(global_id=8) == [_journey(8, [("A", T0 + 2, T0 + 130, [2])])]
    assert store.people() == {"tracks": 6, "global_ids": 3}
    # Re-linking replaces identities (the link table wins over an ingest-time global id).
    store.set_global_ids({("A", 2): 7, ("B", 9): 7})
    assert [j["global_id"] for j in store.journeys()] == [7]
    visits = store.journeys(7)[0]["visits"]
    assert [(v["camera_id"], v["track_ids"]) for v in visits] == [("A", [1, 2]), ("B", [1, 9])]
    linked = {e.track_id: e.global_id for e in store.events(camera="A")}
    assert linked == {1: 7, 2: 7, 3: None, 4: None}
    assert store.count() == len(ALL) + 1  # no event rows were added or rewritten


def _journey(gid, visits):
    return {
        "global_id": gid,
        "first": visits[0][1],
        "last": max(v[2] for v in visits),
        "cameras": list(dict.fromkeys(v[0] for v in visits)),
        "visits": [
            {"camera_id": c, "first": a, "last": b, "track_ids": t} for c, a, b, t in visits
        ],
    }


def test_events_round_trip(store):
    rich = Event(
        T0 + 0.123456,
        "A",
        5,
        EventType.TRACK_END,
        global_id=3,
        class_id=1,
        bbox=(1.5, 2.5, 3.5, 4.5),
        embedding=(0.1, -1 / 3, 1e-300),
    )
    store.ingest([*ALL, rich])
    (got,) = store.events(types=(EventType.TRACK_END,))
    assert got == rich and got.embedding == rich.embedding and got.event_id == rich.event_id
    assert store.events(camera="A", start=T0, end=T0 + 6, limit=3) == [
        ALL[0],
        rich,
        POSITIONS[0],
    ]


def test_empty_store(store):
    assert store.count() == 0 and store.cameras() == [] and store.time_range() is None
    assert store.line_counts(60) == [] and store.zone_occupancy(60) == []
    assert store.journeys() == [] and store.people() == {"tracks": 0, "global_ids": 0}
    store.ingest(ALL)
    assert store.cameras() == ["A", "B"]
    assert store.time_range() == (T0, T0 + 310)
    assert store.time_range(camera="B") == (T0 + 3, T0 + 310)


def test_spans_and_counts_follow_ingest_in_any_order(store):
    late, early = ALL[6:], ALL[:6]
    store.ingest(late)
    assert store.count() == len(late) and store.count(camera="B") == 2
    store.ingest(early)  # older events arrive last: the spans widen backwards
    store.ingest(early + late)  # and a replay changes nothing
    assert store.count() == len(ALL) and store.count(camera="B") == 3
    assert store.time_range() == (T0, T0 + 310)
    assert store.people() == {"tracks": 5, "global_ids": 0}
    # A track counts for a window its span (first..last event) overlaps.
    window = {"start": T0 + 126, "end": T0 + 200}
    assert store.people(**window)["tracks"] == 3  # A/2 until 130, A/3 until 200, B/1 3..310
    assert store.people(camera="A", **window)["tracks"] == 2
    assert store.people(camera="B", end=T0 + 3)["tracks"] == 0


@pytest.mark.parametrize("bucket", [0, -60, math.inf, math.nan])
def test_bad_bucket(store, bucket):
    with pytest.raises(QueryError, match="bucket"):
        store.line_counts(bucket)


def test_too_many_buckets(store):
    store.ingest(ALL)
    with pytest.raises(QueryError, match="buckets"):
        store.zone_occupancy(0.001)


def test_sqlite_is_wal_with_foreign_keys(tmp_path):
    path = tmp_path / "deep" / "er" / "events.db"
    with EventStore.open(f"sqlite:///{path}") as store, store._engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 1000
    assert path.exists()


def test_in_memory_sqlite():
    with EventStore.open("sqlite://") as store:
        assert store.ingest(ALL) == len(ALL) and store.count() == len(ALL)


@pytest.mark.parametrize(
    "url", ["mysql://u:p@h/db", "mongodb://h/db", "not a url", "postgresql+asyncpg://u:p@h/db"]
)
def test_unsupported_url(url):
    with pytest.raises(StoreError) as info:
        EventStore.open(url)
    assert ":p@" not in str(info.value)


def test_wrong_password_names_the_server_not_the_password(pg_url):
    good = make_url(pg_url)
    secret = "Wr0ng-s3cret-" + "x" * 8
    bad = good.set(password=secret).render_as_string(hide_password=False)
    try:
        EventStore.open(bad).close()
    except StoreError as exc:
        message = str(exc)
    else:
        pytest.skip("this server does not check passwords (trust authentication)")
    assert secret not in message and "password authentication failed" in message
    assert f"{good.host}:{good.port}" in message and repr(good.database) in message


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_server_fails_fast():
    port = _closed_port()
    started = time.monotonic()
    with pytest.raises(StoreError, match=f"127.0.0.1:{port}") as info:
        EventStore.open(f"postgresql://u:secret@127.0.0.1:{port}/db", connect_timeout_s=2)
    assert time.monotonic() - started < 5
    assert "secret" not in str(info.value)


def test_silent_server_times_out():
    # A server that accepts TCP but never answers: only connect_timeout ends the wait.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(StoreError, match=f"127.0.0.1:{port}"):
            EventStore.open(f"postgresql://u:secret@127.0.0.1:{port}/db", connect_timeout_s=2)
        assert time.monotonic() - started < 8
