"""`fieldvision flow ...` commands: parsing and printing only; logic lives in pipelines."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import typer

from fieldvision.cli.options import ConfigOpt, ProgressOpt, SetOpt
from fieldvision.errors import ConfigError

app = typer.Typer(
    help="People flow: tracks, line counts, zones and dwell, cross-camera identities.",
    no_args_is_help=True,
)

_STORE = typer.Option(..., "--store", help="sqlite:///path.db or postgresql://user:pw@host/db")


def parse_time(value: str | None, flag: str) -> float | None:
    """``--from``/``--to``: an ISO 8601 time (UTC unless it says otherwise) or epoch seconds."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"{flag} {value!r}: not a time", hint="use ISO 8601 (2026-01-01T09:00) or epoch s"
        ) from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.timestamp()


@app.command()
def track(
    out: Path = typer.Option(..., "--out", help="MOTChallenge tracks file to write."),
    sequence: Path | None = typer.Option(
        None, "--sequence", help="MOTChallenge sequence folder (det/det.txt, seqinfo.ini)."
    ),
    detections: Path | None = typer.Option(None, "--detections", help="A MOT det.txt file."),
    fps: float | None = typer.Option(None, "--fps", help="Frame rate (default: seqinfo.ini)."),
    embeddings: Path | None = typer.Option(
        None, "--embeddings", help=".npy with one appearance row per detection line."
    ),
    tracker: str = typer.Option("bytetrack", "--tracker", help="bytetrack or sort."),
    config: ConfigOpt = None,
    overrides: SetOpt = None,
) -> None:
    """Track one camera's detections; print frames, association seconds and frames/s."""
    from fieldvision.data.mot import read_mot_detections, read_sequence, write_mot_tracks
    from fieldvision.pipelines.flow.track import load_tracker_config, track_frames_timed

    if (sequence is None) == (detections is None):
        raise ConfigError("give exactly one of --sequence DIR or --detections FILE")
    cfg = load_tracker_config(tracker, config, overrides or [])
    if sequence is not None:
        seq = read_sequence(sequence, fps=fps, embeddings=embeddings)
        frames, rate = seq.frames, seq.info.fps
    else:
        if fps is None or fps <= 0:
            raise ConfigError("--detections needs --fps (a positive frame rate)")
        frames, rate = read_mot_detections(detections, embeddings=embeddings), fps
    tracks, seconds, n = track_frames_timed(frames, cfg, float(rate))
    write_mot_tracks(out, tracks)
    typer.echo(f"tracks={len(tracks.ids)} out={out}")
    typer.echo(f"frames={n} seconds={seconds:.3f} fps={n / max(seconds, 1e-9):.0f}")


@app.command()
def evaluate(
    tracks: Path = typer.Option(..., "--tracks", help="Folder of <sequence>.txt tracks."),
    gt: Path = typer.Option(..., "--gt", help="Folder of <sequence>/gt/gt.txt (MOT layout)."),
) -> None:
    """HOTA, MOTA, IDF1 per sequence and combined (TrackEval)."""
    from fieldvision.metrics.tracking import evaluate_dirs

    per_seq, combined = evaluate_dirs(tracks, gt)
    for s in [*per_seq, combined]:
        typer.echo(s.line())


@app.command()
def synth(
    out: Path = typer.Option(..., "--out", help="Folder to write the site to."),
    cameras: int = typer.Option(3, "--cameras", help="Number of cameras (3 or more)."),
    people: int = typer.Option(300, "--people", help="People who visit."),
    minutes: float = typer.Option(20, "--minutes", help="Length of the recording."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
) -> None:
    """Write a synthetic multi-camera site: site.yaml, detections, embeddings, ground truth."""
    from fieldvision.data.synthetic.site import generate_site

    truth = generate_site(out, cameras=cameras, people=people, minutes=minutes, seed=seed)
    typer.echo(f"wrote {cameras} cameras, {truth.n_people} people to {out} (site: {out}/site.yaml)")


@app.command()
def run(
    site: Path = typer.Option(..., "--site", help="site.yaml: cameras, lines, zones, graph."),
    store: str = _STORE,
    tracks_out: Path | None = typer.Option(
        None, "--tracks-out", help="Also write <camera>.txt MOT tracks to this folder."
    ),
    progress: ProgressOpt = True,
) -> None:
    """Cameras → tracks → events → cross-camera identities → store (idempotent)."""
    from fieldvision.pipelines.flow.run import camera_lines, run_site
    from fieldvision.pipelines.flow.site import load_site

    result = run_site(load_site(site), store, tracks_dir=tracks_out, progress=progress)
    for line in camera_lines(result):
        typer.echo(line)
    people = len(set(result.global_ids.values()))
    typer.echo(
        f"events={len(result.events)} inserted={result.inserted} links={len(result.links)} "
        f"global_ids={people}"
    )


@app.command()
def report(
    store: str = _STORE,
    out: Path = typer.Option(..., "--out", help="Folder for report.md and its PNGs."),
    start: str | None = typer.Option(None, "--from", help="Start time (ISO 8601 or epoch s)."),
    end: str | None = typer.Option(None, "--to", help="End time (ISO 8601 or epoch s)."),
    bucket: float = typer.Option(300, "--bucket", help="Time bucket in seconds."),
) -> None:
    """Counts over time, occupancy, dwell, heatmaps and camera-to-camera flow (Markdown+PNG)."""
    from fieldvision.report.flow import write_flow_report
    from fieldvision.store.events import EventStore

    t0, t1 = parse_time(start, "--from"), parse_time(end, "--to")
    if t0 is not None and t1 is not None and t1 <= t0:
        raise ConfigError("--to must be after --from")
    if bucket <= 0:
        raise ConfigError("--bucket must be positive")
    db = EventStore.open(store)
    try:
        path = write_flow_report(db, out, start=t0, end=t1, bucket_s=bucket)
    finally:
        db.close()
    typer.echo(f"report: {path}")


@app.command()
def serve(
    store: str = _STORE,
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind (loopback)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    token: str | None = typer.Option(
        None, "--token", help="Ingest token (default: $FIELDVISION_TOKEN; none = no ingest)."
    ),
) -> None:
    """Serve the API (ingest + read) and the dashboard page."""
    from fieldvision.service.api import serve as run_server

    run_server(store, host=host, port=port, token=token or os.environ.get("FIELDVISION_TOKEN"))


def _pct(value: float | None) -> str:
    return "nan" if value is None else f"{value:.1f}%"


def print_site_scores(scores: dict) -> None:
    """Counting, tracking and linking scores of a site (table on stderr, key=value on stdout)."""
    from rich.table import Table

    from fieldvision.console import console

    table = Table(title="flow demo: scored against the synthetic site's truth")
    for col in ("camera", "HOTA", "MOTA", "IDF1", "IDSW"):
        table.add_column(col, justify="left" if col == "camera" else "right")
    for s in [*scores["cameras"], scores["combined"]]:
        table.add_row(s.seq, f"{s.hota:.1f}", f"{s.mota:.1f}", f"{s.idf1:.1f}", str(s.idsw))
    console.print(table)
    counts = Table(title="line counts (read back from the store) vs truth")
    for col in ("camera/line/direction", "counted", "true"):
        counts.add_column(col, justify="left" if col.startswith("camera") else "right")
    for key, v in scores["lines"]["per_key"].items():
        counts.add_row(key, str(v["predicted"]), str(v["truth"]))
    console.print(counts)
    links = scores["links"]
    idf1 = " ".join(f"idf1_{s.seq}={s.idf1:.2f}" for s in scores["cameras"])
    typer.echo(
        f"line_count_mape={_pct(scores['lines']['mape'])} "
        f"zone_count_mape={_pct(scores['zones']['mape'])} {idf1} "
        f"link_precision={links['precision']:.3f} link_recall={links['recall']:.3f} "
        f"global_idf1={scores['global_idf1']:.3f}"
    )
