"""`fieldvision mil ...` commands: parsing and printing only; logic lives in pipelines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from fieldvision.cli.options import (
    ConfigOpt,
    DeviceOpt,
    OnnxOpt,
    ProgressOpt,
    RuntimeOpt,
    SetOpt,
    export_folder,
    runtime_flags,
)
from fieldvision.console import console
from fieldvision.errors import ConfigError

app = typer.Typer(
    help="Weakly-supervised high-resolution classification (multiple-instance learning).",
    no_args_is_help=True,
)

_BUDGET = typer.Option(None, "--budget", help="Glance budget: fraction of tiles (default: run's).")


def print_comparison(result: dict[str, Any]) -> None:
    """Full vs glance table (stderr) and the key=value line (stdout)."""
    table = Table(title="full tiling vs glance and focus")
    for col in ("metric", "full", "glance"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    keys = ("accuracy", "macro_f1", "auc", "tiles_per_image", "tile_fraction",
            "ms_per_image", "gflops_per_image")  # fmt: skip
    for key in keys:
        table.add_row(key, *(f"{result[m].get(key, float('nan')):.4f}" for m in ("full", "glance")))
    for key in ("pointing_game", "lesion_recall"):
        if "localisation" in result["full"]:
            table.add_row(
                key, *(f"{result[m]['localisation'][key]:.4f}" for m in ("full", "glance"))
            )
    console.print(table)
    typer.echo(result["line"])


@app.command()
def synth(
    out: Path = typer.Option(..., "--out", help="Directory to write the dataset to."),
    n: int = typer.Option(400, "--n", help="Number of images."),
    size: int = typer.Option(1024, "--size", help="Image side in pixels."),
    classes: int = typer.Option(3, "--classes", help="Classes including healthy (2-4)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
) -> None:
    """Write synthetic leaf photos with small lesions (labels.csv, images/, masks/)."""
    from fieldvision.data.synthetic.leaves import generate_leaf_dataset

    s = generate_leaf_dataset(out, n=n, size=size, classes=classes, seed=seed)
    typer.echo(f"wrote {s.n_images} images of {len(s.classes)} classes to {out}")


@app.command()
def train(
    data: Path = typer.Option(..., "--data", help="Folder per class, or CSV image,label[,group]."),
    out: Path = typer.Option(..., "--out", help="Run directory (re-run to resume)."),
    config: ConfigOpt = None,
    overrides: SetOpt = None,
    device: DeviceOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Train the tile expert from image labels, then the scouter from the expert."""
    from fieldvision.config import load_config
    from fieldvision.pipelines.mil import MILConfig
    from fieldvision.pipelines.mil import train as run_train

    cfg = load_config(
        MILConfig, config, [*runtime_flags("train", device, progress), *(overrides or [])]
    )
    s = run_train(data, out, cfg)
    typer.echo(
        f"val_full_macro_f1={s['full']['macro_f1']:.4f} "
        f"val_glance_macro_f1={s['glance']['macro_f1']:.4f} "
        f"val_glance_tiles={s['glance']['tile_fraction']:.3f} run={out}"
    )


@app.command()
def predict(
    run: Path = typer.Option(..., "--run", help="Finished run directory."),
    images: Path = typer.Option(..., "--images", help="Image folder or CSV."),
    out: Path = typer.Option(..., "--out", help="preds.csv to write (tiles.csv beside it)."),
    mode: str = typer.Option("glance", "--mode", help="glance or full."),
    budget: float | None = _BUDGET,
    heatmaps: Path | None = typer.Option(None, "--heatmaps", help="Folder for one PNG per image."),
    overrides: SetOpt = None,
    device: DeviceOpt = None,
    progress: ProgressOpt = True,
    runtime: RuntimeOpt = "torch",
    onnx: OnnxOpt = None,
) -> None:
    """Classify images; per-tile scores in tiles.csv; optional heatmaps."""
    from fieldvision.deploy.session import check_runtime

    if mode not in ("glance", "full"):
        raise ConfigError(f"--mode {mode!r}: choose glance or full")
    check_runtime(runtime, onnx)
    sets = [*runtime_flags("train", device, None), *(overrides or [])]
    wrote = f"to {out} and tiles to {out.with_name('tiles.csv')}"
    if runtime != "torch":  # dispatched before any torch-importing module is loaded
        from fieldvision.deploy.mil import predict as onnx_predict

        table = onnx_predict(
            run, images, out, mode, budget, heatmaps, sets, progress, runtime, onnx
        )
        where = export_folder(run, onnx)
        typer.echo(f"wrote {len(table)} predictions {wrote} (runtime {runtime}, export {where})")
        return
    from fieldvision.pipelines.mil import predict as run_predict

    table = run_predict(run, images, out, mode, budget, heatmaps, sets, progress)
    typer.echo(f"wrote {len(table)} predictions {wrote}")


@app.command()
def evaluate(
    run: Path = typer.Option(..., "--run", help="Finished run directory."),
    data: Path = typer.Option(..., "--data", help="Labelled images (folder per class or CSV)."),
    budget: float | None = _BUDGET,
    overrides: SetOpt = None,
    device: DeviceOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Full tiling vs glance side by side; report.md in the run."""
    from fieldvision.pipelines.mil import evaluate as run_evaluate

    sets = [*runtime_flags("train", device, None), *(overrides or [])]
    result = run_evaluate(run, data, budget, sets, progress)
    print_comparison(result)
