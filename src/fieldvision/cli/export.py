"""`fieldvision export`: every model of a run to ONNX, parity-checked, with a manifest;
with ``--int8`` also a quantized copy of each, calibrated on the given images, and its
accuracy next to FP32. Parity is checked on real images: ``--parity-data``, the calibration
images, or by default the run's own training data (random inputs only, with a warning,
when that is gone)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from fieldvision.console import console
from fieldvision.errors import DataError


def _fmt(value: float | None, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def _change(record: dict[str, Any]) -> str:
    rel = record.get("relative_change")
    return "-" if rel is None else f"{100 * rel:+.2f} %"


def _print_int8(manifest: dict[str, Any]) -> None:
    """The INT8 accuracy figures: per model, then per fold ensemble (stdout: results)."""
    info = manifest["int8"]
    ev = info["evaluation"]
    same = " (the calibration images)" if ev["same_as_calibration"] else ""
    typer.echo(f"INT8 accuracy on {ev['used']} image(s) of {ev['source']}{same}:")
    for name, entry in manifest["models"].items():
        q = entry["int8"]
        acc = q["accuracy"]
        worst = min(a["cosine"] for a in acc["agreement"].values())
        max_abs = max(a["max_abs"] for a in acc["agreement"].values())
        top1 = [a["top1"] for a in acc["agreement"].values() if "top1" in a]
        line = f"  {name}: {q['method']}, cosine {worst:.6f}, max |int8 - fp32| {max_abs:.3g}"
        line += f", top-1 agreement {min(top1):.3f}" if top1 else ""
        if acc["metric"] != "agreement":
            line += (
                f"; {acc['metric']} FP32 {_fmt(acc['metric_fp32'])} INT8 "
                f"{_fmt(acc['metric_int8'])} ({_change(acc)})"
            )
        if q["fallback_reason"]:
            line += f" [{q['fallback_reason']}]"
        typer.echo(line)
    for group, t in info["task"].items():
        typer.echo(
            f"  task, {group} ensemble of {t['models']}: {t['metric']} FP32 "
            f"{_fmt(t['metric_fp32'])} INT8 {_fmt(t['metric_int8'])} ({_change(t)})"
            + (f" [{t['note']}]" if t.get("note") else "")
        )


def _print_parity_inputs(manifest: dict[str, Any], given: bool) -> None:
    """Which images parity was checked on (stdout), or why only random inputs (stderr)."""
    from fieldvision.export.parity import PARITY_HINT

    entry = next(iter(manifest["models"].values()))
    if entry.get("parity_inputs") == "real":
        used = entry["parity_real"]["images"]["used"]
        what = "" if given else " (the run's training data)"
        typer.echo(f"parity on {used} images of {entry['parity_source']}{what}")
    else:
        note = entry.get("parity_note", "no real images")
        # One line, however long the paths: no wrapping, no markup read into them.
        console.print(f"warning: parity checked on random inputs only: {note}; {PARITY_HINT}",
                      style="yellow", soft_wrap=True, markup=False, highlight=False)  # fmt: skip


def export(
    run: Path = typer.Option(..., "--run", help="Finished run directory (any pipeline)."),
    out: Path = typer.Option(..., "--out", help="Folder for the .onnx files and manifest.json."),
    opset: int = typer.Option(18, "--opset", min=18, help="ONNX opset (18+: antialiased resize)."),
    int8: bool = typer.Option(
        False, "--int8", help="Also write an INT8 copy of every model (static QDQ, calibrated)."
    ),
    calibration: Path | None = typer.Option(
        None, "--calibration", help="Folder or CSV of calibration images (needed by --int8)."
    ),
    n: int = typer.Option(64, "--n", min=1, help="Calibration images (evenly spread choice)."),
    validation: Path | None = typer.Option(
        None,
        "--validation",
        help="Labelled folder or CSV for the INT8 task metric "
        "(default: the calibration images when they carry labels).",
    ),
    parity_data: Path | None = typer.Option(
        None,
        "--parity-data",
        help="Folder or CSV of real images to check FP32 parity on too (default: the "
        "run's training data when still there; with --int8: the calibration images).",
    ),
) -> None:
    """Export every model of a run to ONNX (dynamic batch axes) and check parity with torch."""
    if int8 and calibration is None:
        raise DataError("--int8 needs --calibration DIR_OR_CSV (images to calibrate on)")
    if not int8 and (calibration is not None or validation is not None):
        raise DataError("--calibration and --validation are options of --int8")
    if int8 and parity_data is not None:
        raise DataError("with --int8, parity is checked on the --calibration images")
    if int8:
        from fieldvision.export.quantize import export_run_int8

        manifest = export_run_int8(run, out, calibration, n=n, validation=validation, opset=opset)
    else:
        from fieldvision.export.parity import export_run_with_parity

        # Without --parity-data: the run's own training data (random inputs if it is gone).
        manifest = export_run_with_parity(run, out, parity_data, n=min(n, 16), opset=opset)
    table = Table(title=f"ONNX export ({out / 'manifest.json'})")
    columns = ["model", "inputs", "outputs", "MB", "max |onnx - torch|"]
    for col in columns + (["INT8 MB", "INT8"] if int8 else []):
        table.add_column(col)
    for name, entry in manifest["models"].items():
        inputs = ", ".join(f"{i['name']}{i['shape']}" for i in entry["inputs"])
        row = [
            name,
            inputs,
            ", ".join(entry["outputs"]),
            f"{entry['bytes'] / 1e6:.2f}",
            f"{entry['parity']['max_abs']:.2e}"
            + (f" (real {entry['parity_real']['max_abs']:.2e})" if "parity_real" in entry else ""),
        ]
        if int8:
            row += [f"{entry['int8']['bytes'] / 1e6:.2f}", entry["int8"]["method"]]
        table.add_row(*row)
    console.print(table)
    _print_parity_inputs(manifest, given=int8 or parity_data is not None)
    if int8:
        _print_int8(manifest)
    typer.echo(
        f"exported {len(manifest['models'])} model(s) to {out}"
        + (" (FP32 and INT8)" if int8 else "")
    )
