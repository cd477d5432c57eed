"""`fieldvision demo flow`: synth → run (into SQLite) → report → scores, on CPU.

A synthetic three-camera mall (two overlapping views and one beyond an unseen corridor),
tracked with the ByteTrack preset and appearance, counted, linked across cameras and stored;
then the report is written from the store and the figures are scored against the
generator's truth (counts read back from the store, per-camera IDF1, link precision/recall).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fieldvision.console import console

__all__ = ["DEMO_SITE", "run_flow_demo"]

#: Size of the demo site (the CLI's `flow synth` defaults are a 20-minute, 300-person day).
DEMO_SITE: dict[str, Any] = {"cameras": 3, "people": 120, "minutes": 8, "seed": 0}


def run_flow_demo(out: Path, progress: bool = True) -> dict[str, Any]:
    """Run the flow demo under `out` (re-running regenerates nothing and re-ingests nothing).

    Returns:
        ``{"scores": evaluate_site(...), "run": SiteRun, "seconds": {...}, "report": path,
        "store": url}``.
    """
    from fieldvision.data.synthetic.site import SiteTruth, generate_site
    from fieldvision.pipelines.flow.evaluate import evaluate_site
    from fieldvision.pipelines.flow.run import run_site
    from fieldvision.pipelines.flow.site import load_site
    from fieldvision.report.flow import write_flow_report
    from fieldvision.store.events import EventStore

    out = Path(out)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    site_dir = out / "site"
    if not (site_dir / "truth" / "truth.json").is_file():
        console.print(f"[bold]flow demo[/]: writing a synthetic site to {site_dir}")
        generate_site(site_dir, **DEMO_SITE)
    truth = SiteTruth.load(site_dir)
    site = load_site(site_dir / "site.yaml")
    seconds["synth"] = time.perf_counter() - t0
    url = f"sqlite:///{(out / 'events.db').resolve()}"
    t1 = time.perf_counter()
    run = run_site(site, url, tracks_dir=out / "tracks", progress=progress)
    seconds["run"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    store = EventStore.open(url)
    try:
        report = write_flow_report(store, out / "report", bucket_s=60)
        seconds["report"] = time.perf_counter() - t2
        scores = evaluate_site(site, run, truth, store)
    finally:
        store.close()
    seconds["total"] = time.perf_counter() - t0
    return {"scores": scores, "run": run, "seconds": seconds, "report": str(report), "store": url}
