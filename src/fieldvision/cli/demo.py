"""`fieldvision demo [PIPELINE]`: a pipeline end to end on embedded synthetic data."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from fieldvision.cli.options import ProgressOpt, SetOpt
from fieldvision.console import console
from fieldvision.errors import ConfigError

PIPELINES = ("biomass", "reid", "mil", "flow")


def demo(
    pipeline: str = typer.Argument("biomass", help="Which pipeline: biomass, reid, mil or flow."),
    out: Path = typer.Option(Path("demo_out"), "--out", help="Working directory for the demo."),
    overrides: SetOpt = None,
    progress: ProgressOpt = True,
    repeats: int = typer.Option(
        3,
        "--repeats",
        min=1,
        help="biomass: train each model R times (fold and model seeds) and print mean ± std.",
    ),
) -> None:
    """Run a pipeline end to end on embedded synthetic data (CPU, minutes)."""
    if pipeline not in PIPELINES:
        raise ConfigError(f"unknown demo {pipeline!r}; choose one of: {', '.join(PIPELINES)}")
    if pipeline == "biomass":
        from fieldvision.pipelines.biomass.demo import run_biomass_demo

        sets = [f"train.progress={str(progress).lower()}", *(overrides or [])]
        scores = run_biomass_demo(out / "biomass", overrides=sets, repeats=repeats)
        _print_biomass(scores, repeats)
        run = out / "biomass" / "run" / ("repeat0" if repeats > 1 else "")
        typer.echo(f"report: {run / 'report.md'}")
    elif pipeline == "flow":
        from fieldvision.cli.flow import print_site_scores
        from fieldvision.pipelines.flow.demo import run_flow_demo

        summary = run_flow_demo(out / "flow", progress=progress)
        print_site_scores(summary["scores"])
        _print_timing(summary)
    elif pipeline == "mil":
        from fieldvision.cli.mil import print_comparison
        from fieldvision.pipelines.mil.demo import run_mil_demo

        summary = run_mil_demo(out / "mil", progress=progress, overrides=overrides or [])
        print_comparison(summary["evaluate"])
        _print_timing(summary)
    else:
        from fieldvision.cli.reid import print_evaluation
        from fieldvision.pipelines.reid.demo import run_reid_demo

        summary = run_reid_demo(out / "reid", progress=progress, overrides=overrides or [])
        print_evaluation(summary["results"])
        _print_timing(summary)


def _print_biomass(scores: dict, repeats: int) -> None:
    """The biomass demo's table (mean ± std over repeats) and its key=value line."""
    title = "biomass demo: weighted R² (competition metric)"
    if repeats > 1:
        title += f", mean ± std over {repeats} repeats"
    table = Table(title=title)
    table.add_column("model")
    table.add_column("OOF", justify="right")
    table.add_column("held-out test", justify="right")

    def cell(key: str) -> str:
        std = scores.get(f"{key}_std", 0.0)
        return f"{scores[key]:.4f}" + (f" ± {std:.4f}" if repeats > 1 else "")

    for name, label in (("baseline", "global-only baseline"),
                        ("pipeline", "full pipeline (tiles + attention + FiLM)")):  # fmt: skip
        table.add_row(label, cell(f"{name}_oof_r2"), cell(f"{name}_test_r2"))
    console.print(table)
    keys = [f"{n}_{s}_r2{d}" for d in ("", "_std") for s in ("oof", "test")
            for n in ("pipeline", "baseline")]  # fmt: skip
    summary = " ".join(f"{k}={scores[k]:.4f}" for k in keys if k in scores)
    typer.echo(f"{summary} repeats={repeats} seconds={scores['seconds']:.0f}")


def _print_timing(summary: dict) -> None:
    """The demo's stage timings and report path (stdout)."""
    sec = summary["seconds"]
    typer.echo(" ".join(["seconds:", *(f"{k}={sec[k]:.0f}" for k in sec)]))
    typer.echo(f"report: {summary['report']}")
