"""The dashboard in headless Chromium: the numbers it shows are the API's.

Runs a real uvicorn server on 127.0.0.1 in a thread and drives the page with Playwright
(against the system Chromium: Playwright's own browser download needs internet). With
``FIELDVISION_SCREENSHOT=1`` it also writes docs/dashboard.png.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from fieldvision.service import create_app
from fieldvision.store import EventStore
from fieldvision.store.synthetic import synthetic_flow

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} missing (make test installs it with apt-get)"
)
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A uvicorn server on a free local port over a store of synthetic flow events."""
    import uvicorn

    path = tmp_path_factory.mktemp("dashboard") / "events.db"
    store = EventStore.open(f"sqlite:///{path}")
    # 3 cameras x 2 lines x 2 zones, 20 minutes of walkers: a few thousand events.
    events, links = synthetic_flow(3, 1200, 4.0, position_every_s=1.0, seed=7)
    store.ingest(events)
    store.set_global_ids(links)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(store, token="t"), host="127.0.0.1", port=port, log_level="warning"
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("uvicorn did not start within 20 s")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)
    store.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


def _text(page, testid):
    return page.get_by_test_id(testid).inner_text().strip()


def _wait_ready(page, camera, loads):
    page.wait_for_function(
        """([camera, loads]) => document.body.dataset.state === "ready"
            && document.body.dataset.camera === camera
            && Number(document.body.dataset.loads) >= loads""",
        arg=[camera, loads],
        timeout=20_000,
    )


def _check_against_api(page, base, camera):
    params = {"camera": camera} if camera else {}
    summary = httpx.get(f"{base}/api/summary", params=params).json()
    shown = {
        "total-in": summary["totals"]["in"],
        "total-out": summary["totals"]["out"],
        "occupancy-total": summary["occupancy_total"],
        "people-global-ids": summary["people"]["global_ids"],
        "people-tracks": summary["people"]["tracks"],
        "event-count": summary["events"],
    }
    assert {k: _text(page, k) for k in shown} == {k: str(v) for k, v in shown.items()}
    assert summary["events"] > 0 and summary["people"]["global_ids"] > 0
    for row in summary["lines"]:
        for key in ("in", "out", "net"):
            assert _text(page, f"line-{key}:{row['camera_id']}:{row['line']}") == str(row[key])
    assert page.locator('[data-testid^="line-in:"]').count() == len(summary["lines"])
    for row in summary["occupancy"]:
        testid = f"zone-occupancy:{row['camera_id']}:{row['zone']}"
        assert _text(page, testid) == str(row["occupancy"])
    assert page.locator('[data-testid^="zone-occupancy:"]').count() == len(summary["occupancy"])
    dwell = httpx.get(f"{base}/api/dwell", params=params).json()
    assert _text(page, "dwell-count") == str(dwell["count"])
    assert _text(page, "dwell-median") == f"{dwell['median_s']:.1f}"
    cameras = [camera] if camera else summary["cameras"]
    for cam in cameras:  # every heatmap image decoded
        width = page.get_by_test_id(f"heatmap:{cam}").evaluate("img => img.naturalWidth")
        assert width > 0, cam
    assert page.locator('[data-testid^="heatmap:"]').count() == len(cameras)
    assert page.locator("#counts-chart svg rect").count() > 0
    assert page.locator("#occupancy-chart svg path").count() > 0


def test_dashboard_shows_the_api_numbers(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    requests, problems = [], []
    page.on("request", lambda req: requests.append(req.url))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.goto(f"{server}/")
    page.get_by_test_id("refresh-select").select_option("0")  # no timer refresh mid-check
    _wait_ready(page, "", 1)
    _check_against_api(page, server, None)
    if os.environ.get("FIELDVISION_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)

    options = page.get_by_test_id("camera-select").locator("option").all_inner_texts()
    assert options == ["All cameras", "cam-01", "cam-02", "cam-03"]
    page.get_by_test_id("camera-select").select_option("cam-02")
    _wait_ready(page, "cam-02", 2)
    _check_against_api(page, server, "cam-02")

    loads = int(page.evaluate("document.body.dataset.loads"))
    page.get_by_test_id("refresh-button").click()
    _wait_ready(page, "cam-02", loads + 1)
    assert _text(page, "status").startswith("updated")
    assert all(url.startswith(server) for url in requests), requests  # nothing external
    assert problems == []
    page.close()
