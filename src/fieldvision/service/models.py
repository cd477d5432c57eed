"""Request bodies of the flow service (pydantic): what ``POST /api/events`` accepts.

Each item mirrors `fieldvision.tracking.events.Event.to_dict`. Validation happens here, per
field, so a bad item is reported as ``events[3].timestamp`` instead of a generic failure, and
nothing of the batch reaches the store.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from fieldvision.store.schema import MAX_ID_CHARS

__all__ = ["EventIn", "EventTypeName", "IngestBody", "field_path", "ingest_openapi"]

# A Literal rather than the EventType enum: its JSON schema is inline, with no $defs, so the
# hand-written OpenAPI request body below stays self-contained. (A test checks that it
# lists exactly the EventType values.)
EventTypeName = Literal[
    "track_start", "track_end", "line_in", "line_out", "zone_enter", "zone_exit", "position"
]

_NEEDS_TARGET = {"line_in", "line_out", "zone_enter", "zone_exit"}
Finite = Annotated[float, Field(allow_inf_nan=False)]
Int64 = Annotated[int, Field(ge=-(2**63), lt=2**63)]
Ident = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]


class EventIn(BaseModel):
    """One event, as `Event.to_dict` writes it."""

    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not ignored

    event_id: str | None = Field(
        None, description="Ignored: the server recomputes it from the other fields."
    )
    timestamp: Finite = Field(description="Seconds since the Unix epoch (UTC).")
    camera_id: Ident
    track_id: Int64
    type: EventTypeName
    target: Ident | None = Field(
        None, validate_default=True, description="Line or zone id (line/zone events only)."
    )
    global_id: Int64 | None = None
    class_id: int = Field(0, ge=-(2**31), lt=2**31)
    bbox: tuple[Finite, Finite, Finite, Finite] | None = None
    dwell_s: Finite | None = Field(None, ge=0)
    embedding: list[Finite] | None = Field(None, max_length=4096)

    @field_validator("target")
    @classmethod
    def _target_when_needed(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("type") in _NEEDS_TARGET:
            raise ValueError("line and zone events need a target (line or zone id)")
        return value


class IngestBody(BaseModel):
    """``POST /api/events`` body."""

    model_config = ConfigDict(extra="forbid")

    events: list[EventIn]


def field_path(loc: tuple[Any, ...]) -> str:
    """A pydantic error location as a path: ``("events", 3, "bbox", 1)`` -> ``events[3].bbox[1]``.

    An empty location (the body as a whole) is ``body``.
    """
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def ingest_openapi(max_events: int) -> dict[str, Any]:
    """OpenAPI request body of the ingest route (it reads the body itself, see api.py)."""
    item = EventIn.model_json_schema()
    body = {
        "type": "object",
        "required": ["events"],
        "properties": {"events": {"type": "array", "items": item, "maxItems": max_events}},
    }
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": body}}}}
