"""The structured event: the only thing the flow system stores or sends (never pixels).

Every analytic (line crossings, zone enter/exit, track start/end, cross-camera links)
produces `Event` records; the store persists them, the service ingests and serves them. An
event's `event_id` is a deterministic hash of what identifies it (camera, track, type,
target, timestamp), so replaying the same batch is idempotent: the store keeps the first
copy and ignores the rest.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

__all__ = ["Event", "EventType"]


class EventType(StrEnum):
    """What happened. Line/zone events name their `target`; track events do not."""

    TRACK_START = "track_start"  # first confirmed frame of a track on one camera
    TRACK_END = "track_end"  # last frame of a track (it left or was lost for good)
    LINE_IN = "line_in"  # crossed a counting line in its "in" direction
    LINE_OUT = "line_out"
    ZONE_ENTER = "zone_enter"
    ZONE_EXIT = "zone_exit"  # carries `dwell_s`, the time since its enter event
    POSITION = "position"  # a foot-point sample (bbox) every `sample_s`: heatmaps, journeys


@dataclass(frozen=True)
class Event:
    """One event.

    Args:
        timestamp: Seconds since the Unix epoch (UTC) at which it happened.
        camera_id: The camera that saw it.
        track_id: The per-camera track id.
        type: An `EventType` (a plain string is accepted and checked).
        target: Line or zone id for line/zone events, else ``None``.
        global_id: Cross-camera identity, ``None`` until linked (or when unknown).
        class_id: Object class (0 = person).
        bbox: ``(x1, y1, x2, y2)`` in pixels of the camera's view at that moment.
        dwell_s: For ``zone_exit``: seconds spent in the zone; else ``None``.
        embedding: Appearance feature ``(D,)`` for track events, else ``None``.
    """

    timestamp: float
    camera_id: str
    track_id: int
    type: EventType
    target: str | None = None
    global_id: int | None = None
    class_id: int = 0
    bbox: tuple[float, float, float, float] | None = None
    dwell_s: float | None = None
    embedding: tuple[float, ...] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "type", EventType(self.type))
        if not np.isfinite(self.timestamp):
            raise ValueError("timestamp must be finite")
        if not self.camera_id:
            raise ValueError("camera_id must not be empty")
        needs_target = self.type in {
            EventType.LINE_IN,
            EventType.LINE_OUT,
            EventType.ZONE_ENTER,
            EventType.ZONE_EXIT,
        }
        if needs_target and not self.target:
            raise ValueError(f"{self.type.value} events need a target (line or zone id)")
        if self.bbox is not None:
            object.__setattr__(self, "bbox", tuple(float(v) for v in self.bbox))
            if len(self.bbox) != 4:
                raise ValueError("bbox must have 4 values (x1, y1, x2, y2)")
        if self.embedding is not None:
            object.__setattr__(self, "embedding", tuple(float(v) for v in self.embedding))

    @property
    def event_id(self) -> str:
        """Deterministic id: the same event always hashes to the same 32 hex digits."""
        key = (
            f"{self.camera_id}|{self.track_id}|{self.type.value}|{self.target or ''}|"
            f"{self.timestamp:.6f}"
        )
        return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the API's ingest payload item)."""
        return {
            "event_id": self.event_id,
            "timestamp": self.timestamp,
            "camera_id": self.camera_id,
            "track_id": self.track_id,
            "type": self.type.value,
            "target": self.target,
            "global_id": self.global_id,
            "class_id": self.class_id,
            "bbox": None if self.bbox is None else list(self.bbox),
            "dwell_s": self.dwell_s,
            "embedding": None if self.embedding is None else list(self.embedding),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        """Inverse of `to_dict` (`event_id`, if present, is recomputed, not trusted)."""
        bbox = data.get("bbox")
        emb = data.get("embedding")
        return cls(
            timestamp=float(data["timestamp"]),
            camera_id=str(data["camera_id"]),
            track_id=int(data["track_id"]),
            type=EventType(data["type"]),
            target=data.get("target"),
            global_id=None if data.get("global_id") is None else int(data["global_id"]),
            class_id=int(data.get("class_id", 0)),
            bbox=None if bbox is None else tuple(bbox),
            dwell_s=None if data.get("dwell_s") is None else float(data["dwell_s"]),
            embedding=None if emb is None else tuple(emb),
        )
