"""Flow event store behind the HTTP service: sustained ingest and dashboard query latency.

For SQLite and PostgreSQL each:

1. **Ingest**: the service runs in its own process (uvicorn on 127.0.0.1); client threads
   post pre-serialised batches of new synthetic events to ``POST /api/events`` for a fixed
   time. Reports events/s and request latency p50/p95.
2. **Queries**: a 10-camera, 1-day synthetic table is loaded directly (`EventStore.ingest`,
   also timed), then every dashboard endpoint is requested repeatedly over HTTP: p50/p95.

PostgreSQL is a throwaway cluster (scripts/pg_throwaway.sh) with durable default settings
(fsync, synchronous commit), unless ``--pg-url`` names a server whose user may create
databases. SQLite runs in WAL mode with synchronous=NORMAL (the store's setting). Prints
Markdown tables::

    .venv/bin/python benchmarks/flow_store.py [--seconds 10] [--batch 500] [--clients 2]
        [--people-per-min 12] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np

from fieldvision.store import EventStore
from fieldvision.store.synthetic import START_TS, synthetic_flow

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-token"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def server(url: str):
    """The service in a child process (so client and server do not share one GIL)."""
    port = _free_port()
    cmd = [sys.executable, __file__, "--serve", url, "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/api/cameras", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the service did not start") from None
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextmanager
def databases(backends: list[str], pg_url: str | None):
    """A factory of fresh, empty database URLs per backend."""
    with tempfile.TemporaryDirectory(prefix="fv-bench-") as tmp:
        os.chmod(tmp, 0o755)  # the PostgreSQL server runs as `postgres` under root
        cluster = Path(tmp) / "pg"
        port = str(_free_port())
        if "postgresql" in backends and pg_url is None:
            env = {k: v for k, v in os.environ.items() if k != "PG_FSYNC"}  # durable
            out = subprocess.run(
                [str(ROOT / "scripts" / "pg_throwaway.sh"), "start", str(cluster), port],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            pg_url = out.stdout.strip().splitlines()[-1]

        def fresh(backend: str) -> str:
            if backend == "sqlite":
                return f"sqlite:///{tmp}/{uuid.uuid4().hex}.db"
            import psycopg

            name = f"fv_bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(pg_url, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            return pg_url.rsplit("/", 1)[0] + f"/{name}"

        try:
            yield fresh
        finally:
            if cluster.exists():
                script = str(ROOT / "scripts" / "pg_throwaway.sh")
                subprocess.run([script, "stop", str(cluster), port], capture_output=True)


def _pct(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values) * 1000
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 95))


def ingest_phase(base: str, payloads: list[tuple[bytes, int]], seconds: float, clients: int):
    """Post payloads from `clients` threads for `seconds`; returns (events/s, p50, p95, n)."""
    lock = threading.Lock()
    queue = iter(payloads)
    latencies: list[float] = []
    totals = {"events": 0, "inserted": 0}
    deadline = time.perf_counter() + seconds

    def worker() -> None:
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        with httpx.Client(base_url=base, timeout=60) as client:
            while time.perf_counter() < deadline:
                with lock:
                    item = next(queue, None)
                if item is None:
                    return
                body, n = item
                t0 = time.perf_counter()
                resp = client.post("/api/events", content=body, headers=headers)
                dt = time.perf_counter() - t0
                resp.raise_for_status()
                with lock:
                    latencies.append(dt)
                    totals["events"] += n
                    totals["inserted"] += resp.json()["inserted"]

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    assert totals["inserted"] == totals["events"], totals  # every payload is new
    return totals["events"] / elapsed, *_pct(latencies), totals["events"]


def query_phase(base: str, end: float, gid: int, repeats: int) -> list[tuple[str, float, float]]:
    hour = end - 3600
    endpoints = [
        ("/api/summary", {}),
        ("/api/summary", {"camera": "cam-03"}),
        ("/api/counts", {"bucket": 900}),
        ("/api/counts", {"bucket": 60, "from": hour, "camera": "cam-03"}),
        ("/api/occupancy", {"bucket": 900}),
        ("/api/occupancy", {"bucket": 60, "from": hour}),
        ("/api/dwell", {"bins": 24}),
        ("/api/heatmap.png", {"camera": "cam-03", "from": hour}),
        ("/api/heatmap.png", {"camera": "cam-03"}),
        ("/api/journeys", {"global_id": gid}),
    ]
    out = []
    with httpx.Client(base_url=base, timeout=60) as client:
        for path, params in endpoints:
            client.get(path, params=params).raise_for_status()  # warm-up
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                client.get(path, params=params).raise_for_status()
                times.append(time.perf_counter() - t0)
            shown = {k: ("1h" if k == "from" else v) for k, v in params.items()}
            label = path + ("?" + "&".join(f"{k}={v}" for k, v in shown.items()) if shown else "")
            out.append((label, *_pct(times)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="ingest time per backend")
    parser.add_argument("--batch", type=int, default=500, help="events per request")
    parser.add_argument("--clients", type=int, default=2, help="concurrent posting threads")
    parser.add_argument("--people-per-min", type=float, default=12.0, help="1-day table rate")
    parser.add_argument("--repeats", type=int, default=15, help="requests per endpoint")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pg-url", default=None, help="existing server (user needs CREATEDB)")
    parser.add_argument("--quick", action="store_true", help="3 s ingest, 2-hour table")
    parser.add_argument("--serve", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:  # the child process of `server`
        from fieldvision.service import serve

        serve(args.serve, port=args.port, token=TOKEN, log_level="warning")
        return
    backends = args.backends.split(",")
    day_s = 7200.0 if args.quick else 86400.0
    seconds = 3.0 if args.quick else args.seconds

    # Ingest payloads: more new events than the service can take in `seconds`, serialised
    # up front so that the client measures the service, not itself.
    pool, _ = synthetic_flow(10, 4 * 3600.0, 40.0, seed=1, start_ts=START_TS - 86400)
    payloads = [
        (json.dumps({"events": [e.to_dict() for e in pool[i : i + args.batch]]}).encode(), n)
        for i in range(0, len(pool), args.batch)
        if (n := len(pool[i : i + args.batch]))
    ]
    t0 = time.perf_counter()
    day, links = synthetic_flow(10, day_s, args.people_per_min, seed=2)
    gen_s = time.perf_counter() - t0
    print(
        f"ingest pool: {len(pool)} events in batches of {args.batch}, {args.clients} clients, "
        f"{seconds:g} s per backend; query table: {len(day)} events, 10 cameras, "
        f"{day_s / 3600:g} h ({len(links)} tracks; generated in {gen_s:.0f} s); "
        f"cpus={os.cpu_count()}",
        flush=True,
    )

    ingest_rows, query_rows, load_rows = [], {}, []
    with databases(backends, args.pg_url) as fresh:
        for backend in backends:
            with server(fresh(backend)) as base:
                rate, p50, p95, n = ingest_phase(base, payloads, seconds, args.clients)
            ingest_rows.append((backend, rate, p50, p95, n))
            print(f"{backend}: HTTP ingest {rate:,.0f} events/s", flush=True)

            url = fresh(backend)
            with EventStore.open(url) as store:
                t0 = time.perf_counter()
                for i in range(0, len(day), 20_000):
                    store.ingest(day[i : i + 20_000])
                store.set_global_ids(links)
                load_s = time.perf_counter() - t0
                store.analyze()
                end = store.time_range()[1]
            load_rows.append((backend, len(day) / load_s, load_s))
            print(f"{backend}: direct load {len(day) / load_s:,.0f} events/s", flush=True)
            with server(url) as base:
                gid = next(iter(links.values()))
                query_rows[backend] = query_phase(base, end, gid, args.repeats)

    print()
    print("| backend | HTTP ingest events/s | request p50 ms | request p95 ms | events posted |")
    print("|---|---|---|---|---|")
    for backend, rate, p50, p95, n in ingest_rows:
        print(f"| {backend} | {rate:,.0f} | {p50:.1f} | {p95:.1f} | {n:,} |")
    print()
    print("| backend | direct `EventStore.ingest` events/s (20k batches) | seconds |")
    print("|---|---|---|")
    for backend, rate, secs in load_rows:
        print(f"| {backend} | {rate:,.0f} | {secs:.1f} |")
    print()
    print(f"Dashboard endpoints over the {len(day):,}-event table, {args.repeats} requests each:")
    print()
    print("| endpoint | " + " | ".join(f"{b} p50 / p95 ms" for b in backends) + " |")
    print("|---|" + "---|" * len(backends))
    for i, (label, *_rest) in enumerate(query_rows[backends[0]]):
        cells = [f"{query_rows[b][i][1]:.1f} / {query_rows[b][i][2]:.1f}" for b in backends]
        print(f"| `{label}` | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
