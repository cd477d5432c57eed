"""`fieldvision biomass ...` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="Pasture biomass regression (CSIRO Image2Biomass).", no_args_is_help=True)
