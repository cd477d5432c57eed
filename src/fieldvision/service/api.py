"""The flow service: HTTP ingest of events and the read API behind the dashboard.

Writes need the bearer token (``Authorization: Bearer <token>``); reads do not, so the
dashboard works without credentials. That is safe only where the listening address is
private: `serve` binds 127.0.0.1 by default and refuses a non-loopback address without a
token; put a reverse proxy with its own authentication in front to share reads wider.

The ingest route reads its body itself instead of declaring a pydantic parameter, so the
checks run cheapest first: token (401), declared and actual size (413), then parsing and
validation (422, naming ``events[i].field``); nothing is written unless the whole batch is
valid.
"""

from __future__ import annotations

import hmac
import ipaddress
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError

from fieldvision.errors import ConfigError
from fieldvision.service.heatmap import render_png
from fieldvision.service.models import IngestBody, field_path, ingest_openapi
from fieldvision.store import EventStore, QueryError, StoreError
from fieldvision.tracking.events import Event
from fieldvision.tracking.heatmaps import presence_heatmap

__all__ = ["create_app", "serve"]

DASHBOARD = Path(__file__).parent / "dashboard"
_MAX_ERRORS = 20  # per 422 response: enough to fix a producer, small enough to read
# The page loads only its own files: no CDN, no inline script.
_CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'"


def _problem(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": message, **extra}, status_code=status)


def _validation_422(exc: ValidationError) -> JSONResponse:
    errors = [
        {"field": field_path(e["loc"]), "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_input=False)[:_MAX_ERRORS]
    ]
    first = errors[0]
    return _problem(
        422, f"{first['field']}: {first['msg']}", errors=errors, error_count=exc.error_count()
    )


def _histogram(values: list[float], bins: int) -> dict[str, Any]:
    if not values:
        return {"count": 0, "edges": [], "counts": [], "mean_s": None, "median_s": None}
    arr = np.asarray(values)
    counts, edges = np.histogram(arr, bins=bins, range=(0.0, max(float(arr.max()), 1.0)))
    return {
        "count": len(values),
        "edges": edges.tolist(),
        "counts": counts.tolist(),
        "mean_s": float(arr.mean()),
        "median_s": float(np.median(arr)),
        "p95_s": float(np.percentile(arr, 95)),
    }


def create_app(
    store: EventStore,
    *,
    token: str | None,
    max_batch_events: int = 5000,
    max_body_bytes: int = 2_000_000,
) -> FastAPI:
    """Build the service around an open store (the caller closes it).

    Args:
        store: Where events go and queries come from.
        token: Bearer token that ``POST /api/events`` requires; ``None`` accepts writes
            from anyone who can reach the server (only for a loopback address).
        max_batch_events: Most events in one request (413 beyond).
        max_body_bytes: Largest request body (413 beyond, by header or by bytes read).
    """
    app = FastAPI(
        title="fieldvision flow",
        version="1",
        summary="Ingest people-flow events; line counts, zone occupancy, dwell, heatmaps.",
    )
    app.state.store = store
    expected = None if token is None else token.encode()

    @app.exception_handler(QueryError)
    async def _bad_query(_request: Request, exc: QueryError) -> JSONResponse:
        return _problem(400, str(exc))

    @app.exception_handler(StoreError)
    async def _store_down(_request: Request, exc: StoreError) -> JSONResponse:
        return _problem(503, str(exc))

    def _authorized(header: str | None) -> bool:
        if expected is None:
            return True
        scheme, _, credential = (header or "").partition(" ")
        # compare_digest: the time taken does not tell how much of a guess was right.
        return scheme.lower() == "bearer" and hmac.compare_digest(
            credential.strip().encode(), expected
        )

    @app.post(
        "/api/events",
        summary="Ingest a batch of events (idempotent)",
        openapi_extra=ingest_openapi(max_batch_events),
        responses={401: {}, 413: {}, 422: {}},
    )
    async def post_events(request: Request) -> Any:
        if not _authorized(request.headers.get("authorization")):
            return JSONResponse(
                {"detail": "missing or wrong bearer token"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > max_body_bytes):
            return _problem(413, f"body larger than {max_body_bytes} bytes")
        # Count what actually arrives: chunked bodies have no Content-Length, and a header
        # can lie.
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body_bytes:
                return _problem(413, f"body larger than {max_body_bytes} bytes")
            chunks.append(chunk)
        try:
            body = IngestBody.model_validate_json(b"".join(chunks))
        except ValidationError as exc:
            return _validation_422(exc)
        if len(body.events) > max_batch_events:
            n = len(body.events)
            return _problem(413, f"{n} events in one batch (at most {max_batch_events})")
        try:
            batch = [Event.from_dict(item.model_dump()) for item in body.events]
        except ValueError as exc:  # pydantic already checks all of Event's own rules
            return _problem(422, str(exc))
        inserted = await run_in_threadpool(store.ingest, batch)
        return {"received": len(batch), "inserted": inserted}

    @app.get("/api/cameras", summary="Cameras that have events")
    def cameras() -> dict[str, Any]:
        return {"cameras": store.cameras()}

    @app.get("/api/summary", summary="Totals, current occupancy, people and time range")
    def summary(
        camera: str | None = None,
        start: float | None = Query(None, alias="from"),
        end: float | None = Query(None, alias="to"),
    ) -> dict[str, Any]:
        lines = store.totals(camera=camera, start=start, end=end)
        zones = store.current_occupancy(camera=camera, at=end)
        span = store.time_range(camera=camera)
        return {
            "camera": camera,
            "cameras": store.cameras(),
            "events": store.count(camera=camera),
            "time_range": None if span is None else {"start": span[0], "end": span[1]},
            "totals": {
                "in": sum(r["in"] for r in lines),
                "out": sum(r["out"] for r in lines),
            },
            "lines": lines,
            "occupancy": zones,
            "occupancy_total": sum(r["occupancy"] for r in zones),
            "people": store.people(camera=camera, start=start, end=end),
        }

    @app.get("/api/counts", summary="Line crossings per time bucket")
    def counts(
        bucket: float = Query(60.0, gt=0, description="Bucket length in seconds"),
        start: float | None = Query(None, alias="from"),
        end: float | None = Query(None, alias="to"),
        camera: str | None = None,
    ) -> dict[str, Any]:
        rows = store.line_counts(bucket, start=start, end=end, camera=camera)
        return {"bucket_s": bucket, "rows": rows}

    @app.get("/api/occupancy", summary="Zone occupancy at the end of each time bucket")
    def occupancy(
        bucket: float = Query(60.0, gt=0, description="Bucket length in seconds"),
        start: float | None = Query(None, alias="from"),
        end: float | None = Query(None, alias="to"),
        camera: str | None = None,
    ) -> dict[str, Any]:
        rows = store.zone_occupancy(bucket, start=start, end=end, camera=camera)
        return {"bucket_s": bucket, "rows": rows}

    @app.get("/api/dwell", summary="Dwell-time histogram of zone visits")
    def dwell(
        zone: str | None = None,
        camera: str | None = None,
        bins: int = Query(20, ge=1, le=200),
        start: float | None = Query(None, alias="from"),
        end: float | None = Query(None, alias="to"),
    ) -> dict[str, Any]:
        values = store.dwell(zone=zone, camera=camera, start=start, end=end)
        return {"zone": zone, "camera": camera, **_histogram(values, bins)}

    @app.get(
        "/api/heatmap.png",
        summary="Presence heatmap of one camera (distinct tracks per cell)",
        response_class=Response,
        responses={200: {"content": {"image/png": {}}}, 404: {}},
    )
    def heatmap(
        camera: str,
        start: float | None = Query(None, alias="from"),
        end: float | None = Query(None, alias="to"),
        cell: int = Query(32, ge=4, le=512, description="Cell side in pixels"),
        width: int | None = Query(None, ge=1, le=16384, description="View width (px)"),
        height: int | None = Query(None, ge=1, le=16384, description="View height (px)"),
    ) -> Response:
        if camera not in store.cameras():
            return _problem(404, f"no events from camera {camera!r}")
        points, tracks = store.positions(camera, start, end)
        # Without a given view size, the smallest one that holds every foot point.
        far = points.max(axis=0) if len(points) else np.array([cell, cell])
        w = width or max(int(np.ceil(far[0])), cell)
        h = height or max(int(np.ceil(far[1])), cell)
        grid = presence_heatmap(points, (w, h), cell, ids=tracks)
        title = f"{camera}: {len(np.unique(tracks))} tracks, {len(points)} positions"
        png = render_png(grid, w, h, title)
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})

    @app.get("/api/journeys", summary="Cross-camera journeys per global id")
    def journeys(global_id: int | None = None) -> dict[str, Any]:
        return {"journeys": store.journeys(global_id)}

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(
            DASHBOARD / "index.html",
            headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-cache"},
        )

    app.mount("/dashboard", StaticFiles(directory=DASHBOARD), name="dashboard")
    return app


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    store_url: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    *,
    log_level: str = "info",
) -> None:
    """Open the store and run the service with uvicorn until interrupted.

    Args:
        store_url: `EventStore.open` URL.
        host: Listening address; anything but loopback requires a token.
        port: Listening port.
        token: Bearer token for ingest.
        log_level: uvicorn's; ``"warning"`` drops the per-request access log.

    Raises:
        ConfigError: A non-loopback ``host`` without a ``token``.
    """
    import uvicorn

    if token is None and not _loopback(host):
        raise ConfigError(
            f"refusing to accept unauthenticated events on {host}",
            hint="pass a token, or bind 127.0.0.1",
        )
    store = EventStore.open(store_url)
    try:
        uvicorn.run(create_app(store, token=token), host=host, port=port, log_level=log_level)
    finally:
        store.close()
