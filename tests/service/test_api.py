"""The flow service's HTTP API (FastAPI TestClient): auth, limits, validation, reads."""

from __future__ import annotations

import io
import json
import re
from typing import get_args

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from fieldvision.errors import ConfigError
from fieldvision.service import create_app, serve
from fieldvision.service.api import DASHBOARD
from fieldvision.service.models import EventTypeName
from fieldvision.store import EventStore
from fieldvision.store.synthetic import synthetic_flow
from fieldvision.tracking.events import EventType

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EVENTS, LINKS = synthetic_flow(cameras=3, duration_s=600, people_per_min=3, seed=1)
ITEMS = [e.to_dict() for e in EVENTS]


@pytest.fixture
def store(tmp_path):
    with EventStore.open(f"sqlite:///{tmp_path}/events.db") as opened:
        yield opened


@pytest.fixture
def client(store):
    app = create_app(store, token=TOKEN, max_batch_events=500, max_body_bytes=100_000)
    with TestClient(app) as test_client:
        yield test_client


def post(client, items, headers=AUTH):
    return client.post("/api/events", json={"events": items}, headers=headers)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": f"Bearer {TOKEN}x"}, 401),
        ({"Authorization": f"Basic {TOKEN}"}, 401),
        ({"Authorization": "Bearer"}, 401),
        ({"Authorization": TOKEN}, 401),
        ({"Authorization": f"bearer {TOKEN}"}, 200),  # the scheme is case-insensitive
        (AUTH, 200),
    ],
)
def test_ingest_needs_the_token(client, store, headers, status):
    resp = post(client, ITEMS[:10], headers=headers)
    assert resp.status_code == status
    if status == 401:
        assert resp.headers["www-authenticate"] == "Bearer"
        assert store.count() == 0
    else:
        assert resp.json() == {"received": 10, "inserted": 10}


def test_reads_need_no_token(client):
    post(client, ITEMS[:10])
    for path in ("/api/cameras", "/api/summary", "/api/counts", "/api/occupancy", "/api/dwell"):
        assert client.get(path).status_code == 200, path


def test_body_size_limit_by_header_and_by_bytes(client, store):
    big = json.dumps({"events": ITEMS[:400]}).encode()
    assert len(big) > 100_000
    resp = client.post("/api/events", content=big, headers={**AUTH, "Content-Type": "json"})
    assert resp.status_code == 413 and "100000 bytes" in resp.json()["detail"]

    def chunked():  # no Content-Length: only counting what is read can stop it
        for lo in range(0, len(big), 4096):
            yield big[lo : lo + 4096]

    resp = client.post("/api/events", content=chunked(), headers=AUTH)
    assert resp.status_code == 413
    assert store.count() == 0


def test_too_many_events(store):
    app = create_app(store, token=TOKEN, max_batch_events=20)
    with TestClient(app) as client:
        resp = post(client, ITEMS[:21])
        assert resp.status_code == 413 and "at most 20" in resp.json()["detail"]
        assert post(client, ITEMS[:20]).status_code == 200


def _mutated(index, field, value):
    items = [dict(item) for item in ITEMS[:6]]
    items[index][field] = value
    return items


def _target_less():
    items = [dict(item) for item in ITEMS[:6]]
    items[0].update(type="zone_exit", target=None)
    return items


@pytest.mark.parametrize(
    ("items", "field"),
    [
        (_mutated(3, "timestamp", "soon"), "events[3].timestamp"),
        (_mutated(0, "timestamp", None), "events[0].timestamp"),
        (_mutated(1, "camera_id", ""), "events[1].camera_id"),
        (_mutated(2, "camera_id", "c" * 129), "events[2].camera_id"),
        (_mutated(0, "type", "teleport"), "events[0].type"),
        (_mutated(4, "track_id", 2**70), "events[4].track_id"),
        (_mutated(5, "track_id", 1.5), "events[5].track_id"),
        (_mutated(2, "bbox", [1, 2, 3]), "events[2].bbox[3]"),
        (_mutated(2, "bbox", [1, 2, 3, "x"]), "events[2].bbox[3]"),
        (_mutated(0, "dwell_s", -1), "events[0].dwell_s"),
        (_mutated(1, "embedding", [0.1, "x"]), "events[1].embedding[1]"),
        (_mutated(3, "global_id", "seven"), "events[3].global_id"),
        (_mutated(1, "colour", "red"), "events[1].colour"),  # misspelt fields are refused
        (_target_less(), "events[0].target"),
    ],
)
def test_bad_item_is_named_and_nothing_is_written(client, store, items, field):
    resp = post(client, items)
    assert resp.status_code == 422
    body = resp.json()
    assert body["errors"][0]["field"] == field
    assert body["detail"].startswith(f"{field}: ")
    assert store.count() == 0


@pytest.mark.parametrize(
    ("content", "field"),
    [(b"{not json", "body"), (b'{"evts": []}', "events"), (b"[1, 2]", "body")],
)
def test_bad_body(client, store, content, field):
    resp = client.post("/api/events", content=content, headers=AUTH)
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == field
    assert store.count() == 0


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_ingest_then_reads_equal_the_store(request, tmp_path, backend):
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path}/e.db"
    else:
        url = request.getfixturevalue("fresh_pg_url")
    with EventStore.open(url) as store, TestClient(create_app(store, token=TOKEN)) as client:
        for lo in range(0, len(ITEMS), 500):
            resp = post(client, ITEMS[lo : lo + 500])
            assert resp.status_code == 200
            n = len(ITEMS[lo : lo + 500])
            assert resp.json() == {"received": n, "inserted": n}
        assert post(client, ITEMS[:500]).json() == {"received": 500, "inserted": 0}
        assert store.count() == len(ITEMS)
        store.set_global_ids(LINKS)

        counts = client.get("/api/counts", params={"bucket": 120}).json()
        assert counts == {"bucket_s": 120, "rows": store.line_counts(120)}
        cam = {"camera": "cam-02", "bucket": 30, "from": EVENTS[0].timestamp + 100}
        occupancy = client.get("/api/occupancy", params=cam).json()
        assert occupancy["rows"] == store.zone_occupancy(
            30, camera="cam-02", start=EVENTS[0].timestamp + 100
        )
        summary = client.get("/api/summary").json()
        totals = store.totals()
        assert summary["totals"] == {
            "in": sum(r["in"] for r in totals),
            "out": sum(r["out"] for r in totals),
        }
        assert summary["lines"] == totals
        assert summary["occupancy"] == store.current_occupancy()
        assert summary["people"] == store.people() and summary["people"]["global_ids"] > 0
        assert summary["events"] == len(ITEMS) and summary["cameras"] == store.cameras()
        dwell = client.get("/api/dwell", params={"zone": "queue", "bins": 5}).json()
        assert dwell["count"] == len(store.dwell(zone="queue")) and len(dwell["counts"]) == 5
        assert sum(dwell["counts"]) == dwell["count"] and len(dwell["edges"]) == 6
        gid = next(iter(LINKS.values()))
        assert client.get("/api/journeys", params={"global_id": gid}).json() == {
            "journeys": store.journeys(gid)
        }


def test_heatmap_is_a_png(client):
    post(client, ITEMS[:150])
    resp = client.get("/api/heatmap.png", params={"camera": EVENTS[0].camera_id, "cell": 40})
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(resp.content))
    assert image.format == "PNG" and image.width > 100 and image.height > 100
    assert client.get("/api/heatmap.png", params={"camera": "nope"}).status_code == 404
    no_positions = [i for i in ITEMS if i["type"] == "line_in"][:3]
    post(client, [dict(i, camera_id="cam-lines-only") for i in no_positions])
    empty = client.get("/api/heatmap.png", params={"camera": "cam-lines-only"})
    assert empty.status_code == 200 and empty.content.startswith(b"\x89PNG")
    assert client.get("/api/heatmap.png").status_code == 422  # which camera: required


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/counts?bucket=0", 422),
        ("/api/counts?bucket=-5", 422),
        ("/api/occupancy?bucket=0.0001", 400),  # valid number, absurd bucket count
        ("/api/dwell?bins=0", 422),
        ("/api/summary?from=yesterday", 422),
    ],
)
def test_bad_query(client, path, status):
    post(client, ITEMS[:50])
    resp = client.get(path)
    assert resp.status_code == status, resp.text


def test_openapi_docs(client):
    assert "swagger" in client.get("/docs").text.lower()
    spec = client.get("/openapi.json").json()
    assert {"/api/events", "/api/summary", "/api/counts", "/api/heatmap.png"} <= set(spec["paths"])
    body = spec["paths"]["/api/events"]["post"]["requestBody"]["content"]["application/json"]
    item = body["schema"]["properties"]["events"]["items"]
    assert set(item["properties"]["type"]["enum"]) == {t.value for t in EventType}


def test_event_type_names_match_the_enum():
    assert set(get_args(EventTypeName)) == {t.value for t in EventType}


def test_dashboard_is_served_without_external_resources(client):
    resp = client.get("/")
    assert resp.status_code == 200 and "text/html" in resp.headers["content-type"]
    assert "default-src 'self'" in resp.headers["content-security-policy"]
    for name in ("dashboard.js", "dashboard.css"):
        assert client.get(f"/dashboard/{name}").status_code == 200
    for path in DASHBOARD.iterdir():
        text = path.read_text()
        refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", text)
        refs += re.findall(r"url\(([^)]+)\)", text)
        refs += re.findall(r"fetch\(\s*[\"'`]([^\"'`]+)", text)
        assert all(ref.startswith(("/", "#", "data:")) for ref in refs), (path.name, refs)
        assert not re.search(r"\.innerHTML\s*=", text)  # producer strings stay text


def test_serve_refuses_a_public_address_without_token():
    with pytest.raises(ConfigError, match="0.0.0.0"):
        serve("sqlite://", host="0.0.0.0")
