"""`fieldvision reid ...` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="Animal / person re-identification.", no_args_is_help=True)
