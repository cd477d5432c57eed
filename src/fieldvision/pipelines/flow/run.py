"""``flow run``: cameras → tracks → events → cross-camera identities → store.

Order of work, so that bad input never leaves a half-filled store:

1. open every camera's source (each detections file and its embeddings fully validated);
2. open the store (an unreachable server or wrong password fails here, before any work;
   an SQLite file is only created once every source has passed);
3. per camera: track, replay the tracks through its lines and zones (events);
4. link tracklets across cameras under the camera graph's transit windows (global ids);
5. ingest all events in batches. Ingest is idempotent (events have deterministic ids), so a
   re-run after an interruption, or of the same site twice, never double-counts.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fieldvision.console import console, progress_iter
from fieldvision.pipelines.flow.sources import CameraSource, open_source
from fieldvision.pipelines.flow.track import load_tracker_config, track_frames_timed
from fieldvision.tracking.detections import Tracks
from fieldvision.tracking.events import Event

__all__ = ["CameraRun", "SiteRun", "process_site", "run_site"]

INGEST_BATCH = 5000


@dataclasses.dataclass
class CameraRun:
    """What one camera produced."""

    camera_id: str
    frames: int
    fps: float
    tracks: Tracks
    events: list[Event]
    seconds: float  # association time only

    @property
    def n_tracks(self) -> int:
        return len(self.tracks.ids)


@dataclasses.dataclass
class SiteRun:
    """A processed site, before (or after) it is stored."""

    cameras: list[CameraRun]
    global_ids: dict[tuple[str, int], int]
    links: list[Any]
    inserted: int = 0

    @property
    def events(self) -> list[Event]:
        return sorted((e for c in self.cameras for e in c.events), key=lambda e: e.timestamp)


def _counters(camera: Any) -> tuple[list[Any], list[Any]]:
    from fieldvision.tracking.lines import LineCounter
    from fieldvision.tracking.zones import ZoneMonitor

    lines = [
        LineCounter(ln.id, ln.points, in_side=ln.in_side, min_frames=ln.min_frames)
        for ln in camera.lines
    ]
    zones = [ZoneMonitor(z.id, z.points, min_frames=z.min_frames) for z in camera.zones]
    return lines, zones


def process_site(
    site: Any, *, progress: bool = True, sources: Sequence[CameraSource] | None = None
) -> SiteRun:
    """Track, analyse and link every camera of `site` (nothing is written).

    Args:
        site: A `SiteConfig` (`load_site`).
        progress: Show a progress bar per camera.
        sources: The cameras' opened sources (default: opened here, validating each).
    """
    from fieldvision.tracking.analytics import analyze_tracks
    from fieldvision.tracking.linking import link_tracklets, tracklets_from_tracks

    tracker_section = dict(site.tracker)
    preset = str(tracker_section.pop("preset", "bytetrack"))
    cfg = load_tracker_config(preset, extra=tracker_section)
    if sources is None:
        sources = [open_source(cam) for cam in site.cameras]  # validates every camera first
    t_site = site.start.timestamp()
    cameras: list[CameraRun] = []
    tracklets = []
    for cam, source in zip(site.cameras, sources, strict=True):
        frames = progress_iter(
            source.frames(), f"track {cam.id}", total=source.n_frames, enabled=progress
        )
        tracks, seconds, n = track_frames_timed(frames, cfg, source.fps)
        start = t_site + cam.start_offset_s
        lines, zones = _counters(cam)
        events = analyze_tracks(
            tracks, camera_id=cam.id, fps=source.fps, start_time=start, lines=lines,
            zones=zones, sample_s=site.sample_s,
        )  # fmt: skip
        cameras.append(CameraRun(cam.id, n, source.fps, tracks, events, seconds))
        if tracks.embedding is not None:
            tracklets.extend(tracklets_from_tracks(tracks, cam.id, source.fps, start))
    result = link_tracklets(tracklets, site.graph, threshold=site.linking.threshold)
    for cam in cameras:
        cam.events = [
            dataclasses.replace(e, global_id=result.global_ids.get((cam.camera_id, e.track_id)))
            for e in cam.events
        ]
    return SiteRun(cameras=cameras, global_ids=dict(result.global_ids), links=list(result.links))


def run_site(
    site: Any,
    store_url: str,
    *,
    tracks_dir: Path | None = None,
    progress: bool = True,
) -> SiteRun:
    """`process_site`, then store the events (and optionally write per-camera tracks).

    Args:
        site: A `SiteConfig`.
        store_url: ``sqlite:///path.db`` or ``postgresql://user:pass@host:port/db``.
        tracks_dir: If given, ``<camera>.txt`` MOTChallenge tracks are written there.
        progress: Progress bars on stderr.
    """
    from fieldvision.data.mot import write_mot_tracks
    from fieldvision.store.events import EventStore

    sources = [open_source(cam) for cam in site.cameras]  # every input checked first
    store = EventStore.open(store_url)  # connection problems surface before any work
    try:
        run = process_site(site, progress=progress, sources=sources)
        events = run.events
        t0 = time.perf_counter()
        inserted = 0
        for i in range(0, len(events), INGEST_BATCH):
            inserted += store.ingest(events[i : i + INGEST_BATCH])
        store.set_global_ids(run.global_ids)
        run.inserted = inserted
        console.print(
            f"stored {inserted} new of {len(events)} events in {time.perf_counter() - t0:.1f} s"
        )
    finally:
        store.close()
    if tracks_dir is not None:
        for cam in run.cameras:
            write_mot_tracks(Path(tracks_dir) / f"{cam.camera_id}.txt", cam.tracks)
    return run


def camera_lines(run: SiteRun) -> Sequence[str]:
    """One ``camera=… frames=… tracks=… events=… fps=…`` line per camera."""
    return [
        f"camera={c.camera_id} frames={c.frames} tracks={c.n_tracks} events={len(c.events)} "
        f"fps={c.frames / max(c.seconds, 1e-9):.0f}"
        for c in run.cameras
    ]
