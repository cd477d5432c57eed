"""Tests for the structured Event and its deterministic id."""

from __future__ import annotations

import dataclasses

import pytest

from fieldvision.tracking.events import Event, EventType


def test_round_trip_and_stable_id():
    e = Event(12.5, "cam1", 3, "zone_exit", target="shop", dwell_s=4.0, bbox=(1, 2, 3, 4),
              embedding=[0.6, 0.8], global_id=9)  # fmt: skip
    assert e.type is EventType.ZONE_EXIT
    back = Event.from_dict(e.to_dict())
    assert back == e and back.event_id == e.event_id
    assert len(e.event_id) == 32
    # The id names what happened, not who it was linked to: relinking keeps it.
    assert dataclasses.replace(e, global_id=1).event_id == e.event_id
    assert dataclasses.replace(e, timestamp=12.6).event_id != e.event_id
    assert dataclasses.replace(e, camera_id="cam2").event_id != e.event_id


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"type": "teleport"}, "teleport"),
        ({"type": "line_in"}, "need a target"),
        ({"type": "zone_enter", "target": ""}, "need a target"),
        ({"camera_id": ""}, "camera_id"),
        ({"timestamp": float("nan")}, "finite"),
        ({"bbox": (1, 2, 3)}, "4 values"),
    ],
)
def test_bad_events_are_refused(kwargs, message):
    base = {"timestamp": 1.0, "camera_id": "c", "track_id": 1, "type": "track_start"}
    with pytest.raises(ValueError, match=message):
        Event(**{**base, **kwargs})
