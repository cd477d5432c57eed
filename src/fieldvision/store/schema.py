"""The event store's tables (SQLAlchemy Core), identical on SQLite and PostgreSQL.

Tables:

* ``events``: one row per `fieldvision.tracking.events.Event`, keyed by its deterministic
  ``event_id``, so re-sending a batch inserts nothing new. Rows are never updated.
* ``tracks`` and ``cameras``: the time span of every track and camera (and each camera's
  event count), kept up to date by ingest in the same transaction as the events. People
  counts, journeys, the camera list, the time range and the event count read these few rows
  instead of scanning millions of events. Spans are min/max and counts add only newly
  inserted events, so re-ingesting a batch leaves them unchanged (ingest stays idempotent).
* ``global_ids``: ``(camera_id, track_id) -> global_id``, written by cross-camera linking.
  Linking runs after the events were stored (and can be re-run with better settings), so
  identities live here instead of being rewritten into possibly millions of event rows; a
  query's identity is ``COALESCE(global_ids.global_id, events.global_id)``: the link table wins
  over whatever global id the producer already knew at ingest time.

The embedding is stored as raw little-endian float64 bytes (``LargeBinary``: BLOB on SQLite,
BYTEA on PostgreSQL) rather than JSON: it is never filtered or aggregated in SQL, the bytes
round-trip the Python floats exactly, take 8 bytes a value instead of ~20 characters of text,
and decode with one ``numpy.frombuffer`` instead of a JSON parse.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
)
from sqlalchemy.dialects import postgresql

__all__ = ["MAX_ID_CHARS", "cameras", "events", "global_ids", "metadata", "tracks"]

MAX_ID_CHARS = 128  # camera, line and zone ids; PostgreSQL enforces it, SQLite does not

# float on SQLite is already 8 bytes; on PostgreSQL, plain Float would be REAL (4 bytes), which
# rounds epoch seconds to about 2 minutes. DOUBLE PRECISION keeps microseconds.
Double = Float().with_variant(postgresql.DOUBLE_PRECISION(), "postgresql")

metadata = MetaData()

events = Table(
    "events",
    metadata,
    Column("event_id", String(32), primary_key=True),
    Column("timestamp", Double, nullable=False),
    Column("camera_id", String(MAX_ID_CHARS), nullable=False),
    Column("track_id", BigInteger, nullable=False),
    Column("global_id", BigInteger, nullable=True),
    Column("type", String(16), nullable=False),
    Column("target", String(MAX_ID_CHARS), nullable=True),
    Column("class_id", Integer, nullable=False),
    Column("x1", Double, nullable=True),
    Column("y1", Double, nullable=True),
    Column("x2", Double, nullable=True),
    Column("y2", Double, nullable=True),
    Column("dwell_s", Double, nullable=True),
    Column("embedding", LargeBinary, nullable=True),
    # Event listings and per-camera counts: one camera's time range.
    Index("ix_events_camera_ts", "camera_id", "timestamp"),
    # The dashboard's aggregations (line counts, occupancy, dwell) filter on type, camera and
    # time and read only the trailing columns too: the index answers them on its own, with no
    # lookups into the table (a covering index; both databases use it as such).
    Index(
        "ix_events_type_camera_ts",
        "type",
        "camera_id",
        "timestamp",
        "target",
        "class_id",
        "dwell_s",
    ),
)

tracks = Table(
    "tracks",
    metadata,
    Column("camera_id", String(MAX_ID_CHARS), primary_key=True),
    Column("track_id", BigInteger, primary_key=True),
    Column("first_ts", Double, nullable=False),
    Column("last_ts", Double, nullable=False),
    # A global id some event of the track carried at ingest (`global_ids` overrides it).
    Column("ingest_gid", BigInteger, nullable=True),
    Index("ix_tracks_span", "first_ts", "last_ts"),
)

cameras = Table(
    "cameras",
    metadata,
    Column("camera_id", String(MAX_ID_CHARS), primary_key=True),
    Column("first_ts", Double, nullable=False),
    Column("last_ts", Double, nullable=False),
    Column("n_events", BigInteger, nullable=False),  # stored events: count() without a scan
)

global_ids = Table(
    "global_ids",
    metadata,
    Column("camera_id", String(MAX_ID_CHARS), primary_key=True),
    Column("track_id", BigInteger, primary_key=True),
    Column("global_id", BigInteger, nullable=False),
    Index("ix_global_ids_global_id", "global_id"),
)
