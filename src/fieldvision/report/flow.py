"""The flow report: counts over time, zone occupancy, dwell, heatmaps, camera-to-camera flow.

Everything is read back from the event store (never from the tracker's memory), so the
report of a site is the same whether it was filled by `flow run` on one machine or by many
edge boxes posting to the service.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from fieldvision.report.markdown import markdown_table, new_figure, save_figure, write_report

__all__ = ["flow_matrix", "write_flow_report", "zones_of"]


def zones_of(store: Any, camera: str) -> list[str]:
    """The zones of `camera` that have events in `store`, sorted."""
    return sorted({r["zone"] for r in store.current_occupancy(camera=camera)})


def _in_window(journeys: Sequence[Mapping[str, Any]], start: float | None, end: float | None):
    """Journeys with only their visits that overlap ``[start, end)``."""
    out = []
    for j in journeys:
        visits = [
            v for v in j["visits"]
            if (start is None or v["last"] >= start) and (end is None or v["first"] < end)
        ]  # fmt: skip
        if visits:
            out.append({**j, "visits": visits})
    return out


def flow_matrix(journeys: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], int]:
    """Camera A → camera B transition counts from global-id journeys.

    Args:
        journeys: ``[{"global_id", "visits": [{"camera_id", "start", "end"}, ...]}, ...]``
            with visits in time order (what `EventStore.journeys` returns).
    """
    counts: Counter[tuple[str, str]] = Counter()
    for journey in journeys:
        cams = [v["camera_id"] for v in journey["visits"]]
        for a, b in pairwise(cams):
            if a != b:
                counts[(a, b)] += 1
    return dict(counts)


def _counts_figure(rows: Sequence[Mapping[str, Any]], path: Path) -> Path | None:
    if not rows:
        return None
    series: dict[tuple[str, str], dict[float, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        series[(f"{r['camera_id']}/{r['line']}", r["direction"])][float(r["bucket_start"])] += int(
            r["count"]
        )
    fig = new_figure(8, 4)
    ax = fig.subplots()
    t0 = min(float(r["bucket_start"]) for r in rows)
    for (name, direction), points in sorted(series.items()):
        xs = np.array(sorted(points))
        ys = np.array([points[x] for x in xs])
        ax.plot((xs - t0) / 60, ys, marker="o", ms=3, label=f"{name} {direction}",
                ls="-" if direction == "in" else "--")  # fmt: skip
    ax.set_xlabel("minutes from start")
    ax.set_ylabel("crossings per bucket")
    ax.set_title("line counts over time")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def _occupancy_figure(rows: Sequence[Mapping[str, Any]], path: Path) -> Path | None:
    if not rows:
        return None
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in rows:
        series[f"{r['camera_id']}/{r['zone']}"].append(
            (float(r["bucket_start"]), float(r["occupancy"]))
        )
    t0 = min(float(r["bucket_start"]) for r in rows)
    fig = new_figure(8, 4)
    ax = fig.subplots()
    for name, pts in sorted(series.items()):
        pts.sort()
        ax.step([(t - t0) / 60 for t, _ in pts], [o for _, o in pts], where="post", label=name)
    ax.set_xlabel("minutes from start")
    ax.set_ylabel("people in zone")
    ax.set_title("zone occupancy")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def _dwell_figure(dwell: Mapping[str, Sequence[float]], path: Path) -> Path | None:
    if not any(len(v) for v in dwell.values()):
        return None
    fig = new_figure(7, 4)
    ax = fig.subplots()
    top = max(max(v) for v in dwell.values() if len(v))
    bins = np.linspace(0, top, 21)
    for name, values in sorted(dwell.items()):
        if len(values):
            ax.hist(values, bins=bins, alpha=0.5, label=name)
    ax.set_xlabel("dwell (s)")
    ax.set_ylabel("visits")
    ax.set_title("dwell time per zone")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def _heatmap(store: Any, camera: str, start: float | None, end: float | None, path: Path):
    from fieldvision.io import atomic_path
    from fieldvision.tracking.heatmaps import presence_heatmap, render_heatmap

    points, ids = store.positions(camera, start=start, end=end)
    if len(points) == 0:
        return None
    size = (int(np.ceil(points[:, 0].max() + 1)), int(np.ceil(points[:, 1].max() + 1)))
    grid = presence_heatmap(points, size, cell=16, ids=ids)
    image = render_heatmap(grid, size, cell=16)
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    return path


def write_flow_report(
    store: Any,
    out: Path,
    *,
    start: float | None = None,
    end: float | None = None,
    bucket_s: float = 300.0,
) -> Path:
    """Write ``report.md`` and its PNGs under `out` from the events in `store`.

    Args:
        store: An open `EventStore`.
        out: Output folder (created).
        start: Only events at or after this time (epoch seconds).
        end: Only events before this time.
        bucket_s: Time bucket of the over-time figures.

    Returns:
        The path of ``report.md``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    window = {"start": start, "end": end}
    cameras = store.cameras()
    sections: list[tuple[str, str]] = []
    span = store.time_range()
    people = store.people(**window)["global_ids"]
    overview = [
        {"cameras": len(cameras), "events": store.count(),
         "from (UTC epoch s)": "" if span is None else f"{span[0]:.0f}",
         "to": "" if span is None else f"{span[1]:.0f}",
         "people (global ids)": people}
    ]  # fmt: skip
    sections.append(("Overview", markdown_table(overview)))

    totals = store.totals(**window)
    rows = [
        {"camera": t["camera_id"], "line": t["line"], "in": t["in"], "out": t["out"],
         "net": t["in"] - t["out"]}
        for t in totals
    ]  # fmt: skip
    body = markdown_table(rows) or "No counting lines recorded.\n"
    fig = _counts_figure(store.line_counts(bucket_s, **window), out / "counts.png")
    if fig is not None:
        body += "\n![line counts over time](counts.png)\n"
    sections.append(("Line counts", body))

    dwell = {}
    zone_rows = []
    for cam in cameras:
        for zone in zones_of(store, cam):
            values = np.asarray(store.dwell(zone=zone, camera=cam, **window), dtype=float)
            dwell[f"{cam}/{zone}"] = values
            zone_rows.append(
                {"camera": cam, "zone": zone, "visits": len(values),
                 "median dwell (s)": float(np.median(values)) if len(values) else float("nan"),
                 "p90 dwell (s)": float(np.quantile(values, 0.9)) if len(values) else float("nan")}
            )  # fmt: skip
    body = markdown_table(zone_rows, digits=1) or "No zones recorded.\n"
    if _occupancy_figure(store.zone_occupancy(bucket_s, **window), out / "occupancy.png"):
        body += "\n![zone occupancy](occupancy.png)\n"
    if _dwell_figure(dwell, out / "dwell.png"):
        body += "\n![dwell histogram](dwell.png)\n"
    sections.append(("Zones: occupancy and dwell", body))

    heat = []
    for cam in cameras:
        if _heatmap(store, cam, start, end, out / f"heatmap_{cam}.png"):
            heat.append(
                f"**{cam}** (unique people per 16-px cell)\n\n![{cam}](heatmap_{cam}.png)\n"
            )
    sections.append(("Presence heatmaps", "\n".join(heat) or "No position samples recorded.\n"))

    matrix = flow_matrix(_in_window(store.journeys(), start, end))
    body = "Transitions between cameras of the same global identity.\n\n"
    if matrix:
        cams = sorted({c for pair in matrix for c in pair})
        body += markdown_table(
            [{"from \\ to": a, **{b: matrix.get((a, b), 0) for b in cams}} for a in cams]
        )
    else:
        body += "No cross-camera identities.\n"
    sections.append(("Camera-to-camera flow", body))
    return write_report(out / "report.md", "Flow report", sections)
