"""Event store for the flow system: `Event` records in SQLite or PostgreSQL, never pixels.

`EventStore.open("sqlite:///events.db")` or ``EventStore.open("postgresql://...")``;
`EventStore.ingest` is idempotent (events are keyed by their deterministic id) and the query
methods aggregate in SQL (line counts, zone occupancy, dwell, positions, journeys).
"""

from fieldvision.store.events import EventStore, QueryError, StoreError

__all__ = ["EventStore", "QueryError", "StoreError"]
