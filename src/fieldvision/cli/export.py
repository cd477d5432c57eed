"""`fieldvision export`: every model of a run to ONNX, parity-checked, with a manifest."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from fieldvision.console import console


def export(
    run: Path = typer.Option(..., "--run", help="Finished run directory (any pipeline)."),
    out: Path = typer.Option(..., "--out", help="Folder for the .onnx files and manifest.json."),
    opset: int = typer.Option(18, "--opset", min=18, help="ONNX opset (18+: antialiased resize)."),
) -> None:
    """Export every model of a run to ONNX (dynamic batch axes) and check parity with torch."""
    from fieldvision.export import export_run

    manifest = export_run(run, out, opset=opset)
    table = Table(title=f"ONNX export ({out / 'manifest.json'})")
    for col in ("model", "inputs", "outputs", "MB", "max |onnx - torch|"):
        table.add_column(col)
    for name, entry in manifest["models"].items():
        inputs = ", ".join(f"{i['name']}{i['shape']}" for i in entry["inputs"])
        table.add_row(name, inputs, ", ".join(entry["outputs"]), f"{entry['bytes'] / 1e6:.2f}",
                      f"{entry['parity']['max_abs']:.2e}")  # fmt: skip
    console.print(table)
    typer.echo(f"exported {len(manifest['models'])} model(s) to {out}")
