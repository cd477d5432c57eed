"""Tests for the flow report (read back from the event store)."""

from __future__ import annotations

from fieldvision.report.flow import flow_matrix, write_flow_report, zones_of
from fieldvision.store.events import EventStore
from fieldvision.store.synthetic import synthetic_flow


def test_flow_matrix_counts_camera_changes_only():
    journeys = [
        {"global_id": 1, "visits": [{"camera_id": "a"}, {"camera_id": "b"}, {"camera_id": "a"}]},
        {"global_id": 2, "visits": [{"camera_id": "a"}, {"camera_id": "b"}]},
        {"global_id": 3, "visits": [{"camera_id": "c"}]},
        {"global_id": 4, "visits": [{"camera_id": "b"}, {"camera_id": "b"}]},
    ]
    assert flow_matrix(journeys) == {("a", "b"): 2, ("b", "a"): 1}
    assert flow_matrix([]) == {}


def test_report_has_every_section_and_its_figures(tmp_path):
    events, gids = synthetic_flow(cameras=2, duration_s=600, people_per_min=3, seed=2)
    with EventStore.open(f"sqlite:///{tmp_path / 'e.db'}") as store:
        store.ingest(events)
        store.set_global_ids(gids)
        path = write_flow_report(store, tmp_path / "report", bucket_s=60)
        totals = store.totals()
        zones = zones_of(store, store.cameras()[0])
    text = path.read_text()
    for heading in ("Overview", "Line counts", "Zones", "Presence heatmaps", "Camera-to-camera"):
        assert f"## {heading}" in text
    # The line table shows the store's totals.
    first = totals[0]
    assert f"| {first['camera_id']} | {first['line']} | {first['in']} | {first['out']} |" in text
    assert zones and all(f"| {z} |" in text for z in zones)
    for png in ("counts.png", "occupancy.png", "dwell.png"):
        assert (tmp_path / "report" / png).stat().st_size > 1000


def test_empty_store_gives_a_report_that_says_so(tmp_path):
    with EventStore.open(f"sqlite:///{tmp_path / 'e.db'}") as store:
        text = write_flow_report(store, tmp_path / "r").read_text()
    assert "No counting lines recorded" in text and "No cross-camera identities" in text
