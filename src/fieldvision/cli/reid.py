"""`fieldvision reid ...` commands: parsing and printing only; logic lives in pipelines."""

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

app = typer.Typer(help="Animal / person re-identification.", no_args_is_help=True)


def metrics_table(title: str, variants: dict[str, dict[str, Any]]) -> Table:
    """Rich table of retrieval metrics, one row per post-processing variant."""
    table = Table(title=title)
    for col in ("variant", "mAP", "rank-1", "rank-5", "rank-10", "mINP", "id-bal. mAP", "pair AUC"):
        table.add_column(col, justify="left" if col == "variant" else "right")
    for name, m in variants.items():
        table.add_row(
            name,
            *(
                f"{m.get(k, float('nan')):.4f}"
                for k in (
                    "mAP",
                    "rank1",
                    "rank5",
                    "rank10",
                    "mINP",
                    "identity_balanced_mAP",
                    "pair_roc_auc",
                )
            ),
        )
    return table


def print_evaluation(results: dict[str, Any]) -> None:
    """Print evaluation tables (stderr, rich) and one key=value summary line (stdout)."""
    for set_name, block in results["sets"].items():
        protocol = "all" if set_name == "test" else results["protocol"]
        console.print(metrics_table(f"{set_name} ({protocol} protocol)", block["variants"]))
        if block.get("pair_auc_submission") is not None:
            console.print(
                f"{set_name}: pair ROC-AUC of submission scores ({block['pair_score']}) = "
                f"{block['pair_auc_submission']:.4f}"
            )
    bg = results.get("background")
    if bg:
        console.print(
            f"background reliance: mAP full={bg['full_mAP']:.4f} "
            f"foreground-only={bg['foreground_mAP']:.4f} "
            f"background-only={bg['background_mAP']:.4f} "
            f"chance={bg['chance_mAP']:.4f}"
        )
        console.print(bg["verdict"])
    first = next(iter(results["sets"].values()))["variants"]
    typer.echo(
        " ".join(
            f"{name.replace(' ', '')}:mAP={m['mAP']:.4f},rank1={m['rank1']:.4f}"
            for name, m in first.items()
        )
    )


@app.command()
def synth(
    out: Path = typer.Option(..., "--out", help="Directory to write the dataset to."),
    identities: int = typer.Option(40, "--identities", help="Number of animals."),
    per_id: int = typer.Option(12, "--per-id", help="Mean images per animal (long-tailed)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    size: int = typer.Option(128, "--size", help="Image side in pixels."),
    background_leak: float = typer.Option(
        0.3, "--background-leak", help="Chance an image reuses its animal's home background."
    ),
) -> None:
    """Write a synthetic rosette-coat dataset in the Kaggle Jaguar Re-ID layout."""
    from fieldvision.pipelines.reid import synth as run_synth

    s = run_synth(out, identities, per_id, seed, size, background_leak)
    typer.echo(
        f"wrote {s.n_train_images} train and {s.n_test_images} test images of "
        f"{s.n_identities} identities and {s.n_pairs} test pairs to {out}"
    )


@app.command()
def train(
    data: Path = typer.Option(
        ..., "--data", help="Dataset: Kaggle folder, identity folders or CSV."
    ),
    out: Path = typer.Option(..., "--out", help="Run directory (re-run to resume)."),
    config: ConfigOpt = None,
    overrides: SetOpt = None,
    device: DeviceOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Train an embedding model (validation: held-out images or identities)."""
    from fieldvision.config import load_config
    from fieldvision.pipelines.reid import ReIDPipelineConfig, fit

    sets = [*runtime_flags("train", device, progress), *(overrides or [])]
    cfg = load_config(ReIDPipelineConfig, config, sets)
    s = fit(data, out, cfg)
    typer.echo(
        f"best_val_map={s['best_val_map']:.4f} epochs={s['epochs_run']} "
        f"identities={s['n_train_identities']} run={out}"
    )


@app.command()
def embed(
    run: Path = typer.Option(..., "--run", help="Finished run directory."),
    images: Path = typer.Option(
        ..., "--images", help="Image folder (flat or per identity) or CSV."
    ),
    out: Path = typer.Option(..., "--out", help="Embeddings .npz to write."),
    tta: bool | None = typer.Option(None, "--tta/--no-tta", help="Flip TTA (default: run config)."),
    image_root: Path | None = typer.Option(
        None, "--image-root", help="Folder the CSV's image names are relative to."
    ),
    overrides: SetOpt = None,
    device: DeviceOpt = None,
    progress: ProgressOpt = True,
    runtime: RuntimeOpt = "torch",
    onnx: OnnxOpt = None,
) -> None:
    """Embed images with a trained run (L2-normalised, flip TTA)."""
    from fieldvision.deploy.session import check_runtime

    check_runtime(runtime, onnx)
    sets = [*runtime_flags("train", device, None), *(overrides or [])]
    if runtime != "torch":  # dispatched before any torch-importing module is loaded
        from fieldvision.deploy.reid import embed as onnx_embed

        e = onnx_embed(run, images, out, tta, progress, image_root, sets, runtime, onnx)
        where = export_folder(run, onnx)
        typer.echo(
            f"wrote {len(e)} embeddings of dimension {e.embeddings.shape[1]} to {out} "
            f"(runtime {runtime}, export {where})"
        )
        return
    from fieldvision.pipelines.reid import embed as run_embed

    e = run_embed(run, images, out, tta, progress, image_root=image_root, overrides=sets)
    typer.echo(f"wrote {len(e)} embeddings of dimension {e.embeddings.shape[1]} to {out}")


@app.command()
def search(
    query: Path = typer.Option(..., "--query", help="Query embeddings .npz."),
    gallery: Path = typer.Option(..., "--gallery", help="Gallery embeddings .npz."),
    out: Path = typer.Option(..., "--out", help="ranks.csv to write."),
    top: int = typer.Option(10, "--top", help="Results per query."),
    qe: int = typer.Option(0, "--qe", help="Query-expansion neighbours (0: off)."),
    rerank: bool = typer.Option(False, "--rerank/--no-rerank", help="k-reciprocal re-ranking."),
    k1: int = typer.Option(20, "--k1", help="Re-ranking k1."),
    k2: int = typer.Option(6, "--k2", help="Re-ranking k2."),
    lambda_value: float = typer.Option(0.3, "--lambda", help="Re-ranking lambda."),
) -> None:
    """Rank the gallery for every query (optionally with QE and re-ranking)."""
    from fieldvision.pipelines.reid import search as run_search

    table = run_search(query, gallery, out, top, qe, rerank, k1, k2, lambda_value)
    typer.echo(f"wrote {len(table)} ranked results to {out}")


@app.command()
def pairs(
    run: Path = typer.Option(..., "--run", help="Finished run directory."),
    data: Path = typer.Option(..., "--data", help="Kaggle-layout folder with test.csv and test/."),
    out: Path = typer.Option(..., "--out", help="Submission CSV to write."),
    overrides: SetOpt = None,
    device: DeviceOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Write the pair-similarity submission (row_id, similarity in [0, 1])."""
    from fieldvision.pipelines.reid import pairs as run_pairs

    sets = [*runtime_flags("train", device, None), *(overrides or [])]
    sub = run_pairs(run, data, out, progress, overrides=sets)
    typer.echo(f"wrote {len(sub)} pair similarities to {out}")


@app.command()
def evaluate(
    run: Path = typer.Option(..., "--run", help="Finished run directory."),
    data: Path = typer.Option(
        ..., "--data", help="Any labelled dataset: the run's own, or new animals / photos."
    ),
    protocol: str | None = typer.Option(
        None,
        "--protocol",
        help="closed (unseen photos of trained identities), open (new identities) or all "
        "(leave-one-out); default: the run's protocol on its own data, all otherwise.",
    ),
    overrides: SetOpt = None,
    device: DeviceOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Retrieval metrics (raw, +QE, +re-rank), background diagnostic and report.md."""
    from fieldvision.errors import ConfigError
    from fieldvision.pipelines.reid import evaluate as run_evaluate
    from fieldvision.pipelines.reid.protocols import PROTOCOLS

    if protocol is not None and protocol not in PROTOCOLS:
        raise ConfigError(f"--protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    sets = [*runtime_flags("train", device, None), *(overrides or [])]
    results = run_evaluate(run, data, protocol, progress, overrides=sets)
    print_evaluation(results)
    typer.echo(f"report: {run / 'report.md'}")
