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
) -> None:
    """Run a pipeline end to end on embedded synthetic data (CPU, minutes)."""
    if pipeline not in PIPELINES:
        raise ConfigError(f"unknown demo {pipeline!r}; choose one of: {', '.join(PIPELINES)}")
    if pipeline == "biomass":
        from fieldvision.pipelines.biomass.demo import run_biomass_demo

        sets = [f"train.progress={str(progress).lower()}", *(overrides or [])]
        scores = run_biomass_demo(out / "biomass", overrides=sets)
        table = Table(title="biomass demo: weighted R² (competition metric)")
        table.add_column("model")
        table.add_column("OOF", justify="right")
        table.add_column("held-out test", justify="right")
        table.add_row(
            "global-only baseline",
            f"{scores['baseline_oof_r2']:.4f}",
            f"{scores['baseline_test_r2']:.4f}",
        )
        table.add_row(
            "full pipeline (tiles + attention + FiLM)",
            f"{scores['pipeline_oof_r2']:.4f}",
            f"{scores['pipeline_test_r2']:.4f}",
        )
        console.print(table)
        summary = " ".join(f"{k}={v:.4f}" for k, v in scores.items() if k != "seconds")
        typer.echo(f"{summary} seconds={scores['seconds']:.0f}")
        typer.echo(f"report: {out / 'biomass' / 'run' / 'report.md'}")
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


def _print_timing(summary: dict) -> None:
    """The demo's stage timings and report path (stdout)."""
    sec = summary["seconds"]
    typer.echo(" ".join(["seconds:", *(f"{k}={sec[k]:.0f}" for k in sec)]))
    typer.echo(f"report: {summary['report']}")
