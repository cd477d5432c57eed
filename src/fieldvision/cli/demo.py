"""`fieldvision demo [PIPELINE]`: the whole pipeline on embedded synthetic data."""

from __future__ import annotations

from pathlib import Path

import typer


def demo(
    pipeline: str = typer.Argument("biomass", help="Which pipeline: biomass or reid."),
    out: Path = typer.Option(Path("demo_out"), "--out", help="Working directory for the demo."),
) -> None:
    """Run a pipeline end to end on embedded synthetic data (CPU, minutes)."""
    from fieldvision.errors import ConfigError

    raise ConfigError(f"demo {pipeline!r} is not available yet")
