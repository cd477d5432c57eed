"""`fieldvision biomass ...` commands: parsing and printing only; logic lives in pipelines."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:  # torch-free at import time: --runtime onnx never loads torch
    from fieldvision.pipelines.biomass.ttt import TTTSettings

app = typer.Typer(help="Pasture biomass regression (CSIRO Image2Biomass).", no_args_is_help=True)


def _parse_size(size: str) -> tuple[int, int]:
    """'512x256' (W x H, like image viewers) -> (H, W)."""
    try:
        w, h = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size {size!r}: expected WIDTHxHEIGHT, e.g. 512x256") from None
    if w <= 0 or h <= 0 or w % 4 or h % 2:
        raise ConfigError(f"--size {size!r}: width must be a multiple of 4 and height of 2")
    return h, w


def load_biomass_config(
    config: Path | None,
    overrides: list[str] | None,
    folds: int | None = None,
    epochs: int | None = None,
    backbone: str | None = None,
    device: str | None = None,
    progress: bool | None = None,
):
    """Config from defaults, ``--config``, the convenience flags, then ``--set``."""
    from fieldvision.config import load_config
    from fieldvision.pipelines.biomass.config import BiomassConfig

    flags: list[str] = []
    if folds is not None:
        flags.append(f"train.folds={folds}")
    if epochs is not None:
        flags += [f"phase1.epochs={epochs}", f"phase2.epochs={epochs}"]
    if backbone is not None:
        flags += [f"phase1.backbone={backbone}", f"phase2.backbone={backbone}"]
    flags += runtime_flags("train", device, progress)
    return load_config(BiomassConfig, config, [*flags, *(overrides or [])])


def _r2_table(title: str, rows: list[tuple[str, float]]) -> Table:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("R²", justify="right")
    for name, value in rows:
        table.add_row(name, f"{value:.4f}")
    return table


@app.command()
def synth(
    out: Path = typer.Option(..., "--out", help="Directory to write the dataset to."),
    n_train: int = typer.Option(160, "--n-train", min=5, help="Training images."),
    n_test: int = typer.Option(40, "--n-test", min=1, help="Test images."),
    size: str = typer.Option("512x256", "--size", help="Image size WIDTHxHEIGHT (2:1)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
) -> None:
    """Write a synthetic CSIRO-format dataset calibrated to the real label table."""
    from fieldvision.data.synthetic.pasture import generate_pasture_dataset

    summary = generate_pasture_dataset(
        out, n_train=n_train, n_test=n_test, size=_parse_size(size), seed=seed
    )
    console.print(f"wrote {n_train} train + {n_test} test images to {out}")
    typer.echo(str(summary) if not hasattr(summary, "describe") else summary.describe())


_REPEATS_HELP = "Repeated CV: R runs with train.seed = seed + r (folds and model seeds)."
_EXCLUDE_HELP = (
    "Leave these images out of training and the OOF score (not of test prediction): image ids "
    "or paths, one per line, or a label_noise.csv (its flagged rows). Sets data.exclude."
)


def _with_exclude(overrides: list[str] | None, exclude: Path | None) -> list[str]:
    """``--exclude FILE`` as the ``data.exclude`` override (an explicit ``--set`` wins)."""
    if exclude is None:
        return list(overrides or [])
    from fieldvision.config import resolve_path

    return [f"data.exclude={resolve_path(exclude)}", *(overrides or [])]


def _pm(mean_std: tuple[float, float]) -> str:
    return f"{mean_std[0]:.4f} ± {mean_std[1]:.4f}"


@app.command()
def train(
    data: Path = typer.Option(..., "--data", help="Kaggle-layout data directory."),
    out: Path = typer.Option(..., "--out", help="Run directory (re-run to resume)."),
    config: ConfigOpt = None,
    overrides: SetOpt = None,
    folds: int | None = typer.Option(None, "--folds", min=2, help="Number of date-grouped folds."),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Epochs for both phases."),
    backbone: str | None = typer.Option(None, "--backbone", help="Backbone name (ours or timm)."),
    repeats: int = typer.Option(1, "--repeats", min=1, help=_REPEATS_HELP),
    exclude: Path | None = typer.Option(None, "--exclude", help=_EXCLUDE_HELP),
    device: DeviceOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Cross-validated training: Phase 1 (metadata) then Phase 2 (biomass)."""
    from fieldvision.pipelines.biomass.repeats import train_repeats

    sets = _with_exclude(overrides, exclude)
    cfg = load_biomass_config(config, sets, folds, epochs, backbone, device, progress)
    rep = train_repeats(data, out, cfg, repeats)
    if cfg.data.exclude is not None:
        n_excluded = rep.runs[0].extra.get("n_excluded", 0)
        typer.echo(f"excluded {n_excluded} images ({cfg.data.exclude})")
    if repeats == 1:
        result = rep.runs[0]
        rows = [
            (f"OOF weighted R² (TTA, selection {result.selection})", result.oof_r2),
            ("OOF weighted R² (no TTA)", result.oof_r2_no_tta),
            ("OOF weighted R² (fold-best epoch, biased)", result.oof_r2_fold_best),
        ]
        rows += [(name, value) for name, value in result.per_target.items()]
        console.print(_r2_table(f"run {out}", rows))
        typer.echo(
            f"oof_weighted_r2={result.oof_r2:.4f} "
            f"oof_weighted_r2_fold_best={result.oof_r2_fold_best:.4f} "
            f"selection={result.selection}"
        )
        return
    table = Table(title=f"{repeats} repeats in {out} (seeds {rep.seeds[0]}..{rep.seeds[-1]})")
    for col in ("seed", f"OOF R² ({rep.selection})", "OOF R² (fold-best, biased)", "no TTA"):
        table.add_column(col, justify="right")
    for seed, r in zip(rep.seeds, rep.runs, strict=True):
        table.add_row(
            str(seed), f"{r.oof_r2:.4f}", f"{r.oof_r2_fold_best:.4f}", f"{r.oof_r2_no_tta:.4f}"
        )
    table.add_row("mean ± std", _pm(rep.oof_r2), _pm(rep.oof_r2_fold_best), _pm(rep.oof_r2_no_tta))
    console.print(table)
    typer.echo(
        f"oof_weighted_r2={_pm(rep.oof_r2)} oof_weighted_r2_fold_best={_pm(rep.oof_r2_fold_best)} "
        f"selection={rep.selection} repeats={repeats}"
    )


@app.command()
def predict(
    run: Path = typer.Option(..., "--run", help="Finished run directory."),
    data: Path = typer.Option(..., "--data", help="Kaggle-layout data directory with test.csv."),
    out: Path = typer.Option(..., "--out", help="Submission CSV to write."),
    tta: bool | None = typer.Option(
        None,
        "--tta/--no-tta",
        help="Phase-2 flip TTA (default: the run's; Phase-1 metadata always as in training).",
    ),
    overrides: SetOpt = None,
    device: DeviceOpt = None,
    progress: ProgressOpt = True,
    runtime: RuntimeOpt = "torch",
    onnx: OnnxOpt = None,
    ttt: bool = typer.Option(
        False, "--ttt", help="Test-time training: fine-tune fold copies on pseudo-labels first."
    ),
    ttt_epochs: int | None = typer.Option(None, "--ttt-epochs", help="TTT epochs (default 2)."),
    ttt_lr: float | None = typer.Option(
        None, "--ttt-lr", help="TTT peak learning rate (default: phase2.lr / 10)."
    ),
    ttt_train: Path | None = typer.Option(
        None,
        "--ttt-train",
        help="The run's training data (default: where it trained, else --data).",
    ),
) -> None:
    """Fold-ensemble prediction in the exact Kaggle submission format."""
    from fieldvision.deploy.session import check_runtime

    check_runtime(runtime, onnx)
    ttt_settings = _ttt_settings(ttt, runtime, ttt_epochs, ttt_lr, ttt_train)
    sets = [*runtime_flags("train", device, progress), *(overrides or [])]
    if runtime != "torch":  # dispatched before any torch-importing module is loaded
        from fieldvision.deploy.biomass import predict as onnx_predict

        submission = onnx_predict(run, data, out, tta, sets, runtime, onnx)
        where = export_folder(run, onnx)
        typer.echo(f"wrote {len(submission)} rows to {out} (runtime {runtime}, export {where})")
        return
    if ttt_settings is not None:
        from fieldvision.pipelines.biomass.ttt import predict_ttt

        result = predict_ttt(run, data, out, ttt_settings, tta, sets, ttt_train)
        typer.echo(f"wrote {len(result.submission)} rows to {out}")
        typer.echo(
            f"ttt_minutes={result.minutes:.2f} ttt_test_images={result.n_test} "
            f"ttt_train_images={sum(result.n_train)} ttt_epochs={ttt_settings.epochs}"
        )
        return
    from fieldvision.pipelines.biomass import predict as run_predict

    submission = run_predict(run, data, out, tta=tta, overrides=sets)
    typer.echo(f"wrote {len(submission)} rows to {out}")


def _ttt_settings(
    ttt: bool, runtime: str, epochs: int | None, lr: float | None, train: Path | None
) -> TTTSettings | None:
    """The `TTTSettings` of ``predict --ttt`` (None without it), checked before any work.

    Raises:
        ConfigError: A ``--ttt-*`` option without ``--ttt``, ``--ttt`` with an ONNX runtime
            (TTT trains the PyTorch models), or a bad epoch count / learning rate.
    """
    if not ttt:
        given = [name for name, v in (("--ttt-epochs", epochs), ("--ttt-lr", lr),
                                      ("--ttt-train", train)) if v is not None]  # fmt: skip
        if given:
            raise ConfigError(f"{', '.join(given)}: only with --ttt")
        return None
    if runtime != "torch":
        raise ConfigError(
            f"--ttt with --runtime {runtime}: test-time training fine-tunes the PyTorch fold "
            "models; use --runtime torch"
        )
    from fieldvision.pipelines.biomass.ttt import TTTSettings

    return TTTSettings(lr=lr) if epochs is None else TTTSettings(epochs=epochs, lr=lr)


@app.command()
def evaluate(
    pred: Path = typer.Option(..., "--pred", help="Submission or oof.csv (sample_id,target)."),
    truth: Path = typer.Option(..., "--truth", help="train.csv-format table with true targets."),
) -> None:
    """Weighted R² (the competition metric) and per-target R²."""
    from fieldvision.pipelines.biomass import evaluate as run_evaluate

    result = run_evaluate(pred, truth)
    rows = [("weighted R²", result.weighted_r2), *result.per_target.items()]
    console.print(_r2_table(f"{pred} vs {truth} ({result.n_images} images)", rows))
    typer.echo(f"weighted_r2={result.weighted_r2:.4f}")


@app.command()
def ablate(
    data: Path = typer.Option(..., "--data", help="Kaggle-layout data directory."),
    out: Path = typer.Option(..., "--out", help="Directory for one run per variant + ablation.md."),
    variants: str | None = typer.Option(None, "--variants", help="Comma-separated variant names."),
    config: ConfigOpt = None,
    overrides: SetOpt = None,
    folds: int | None = typer.Option(None, "--folds", min=2),
    epochs: int | None = typer.Option(None, "--epochs", min=1),
    repeats: int = typer.Option(1, "--repeats", min=1, help=_REPEATS_HELP),
    exclude: Path | None = typer.Option(None, "--exclude", help=_EXCLUDE_HELP),
    device: DeviceOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Named variants on identical folds, written as a table to ablation.md."""
    from fieldvision.pipelines.biomass.ablation import VARIANTS, run_ablation

    names = [v.strip() for v in variants.split(",")] if variants else list(VARIANTS)
    sets = _with_exclude(overrides, exclude)
    cfg = load_biomass_config(config, sets, folds, epochs, None, device, progress)
    rows = run_ablation(data, out, cfg, names, repeats=repeats)
    table = Table(title=f"ablation ({out / 'ablation.md'}, {repeats} repeat(s))")
    cols = ("variant", "weighted R²", "std", "Δ vs baseline", "Δ sd (paired)", "better")
    for col in (*cols, "fold-best", "min"):
        table.add_column(col)
    for row in rows:
        table.add_row(
            row["variant"],
            f"{row['weighted_r2']:.4f}",
            f"{row['std']:.4f}",
            f"{row['delta']:+.4f}",
            f"{row['delta_sd']:.4f}",
            {None: "–", True: "yes", False: "no"}[row["better"]],
            f"{row['fold_best']:.4f}",
            f"{row['minutes']:.1f}",
        )
    console.print(table)


@app.command()
def tabular(
    data: Path = typer.Option(..., "--data", help="Directory with train.csv (images not needed)."),
    folds: int = typer.Option(5, "--folds", min=2, help="Number of date-grouped folds."),
    seed: int = typer.Option(0, "--seed"),
    repeats: int = typer.Option(
        1, "--repeats", min=1, help="Fold seeds seed, seed+1, ...: mean ± std over them."
    ),
) -> None:
    """Metadata-only gradient-boosting baseline (same grouped folds, same metric)."""
    from fieldvision.pipelines.biomass.tabular import tabular_repeats

    table = data / "train.csv" if data.is_dir() else data
    rep = tabular_repeats(table, folds=folds, seed=seed, repeats=repeats)
    result = rep.runs[0]
    if repeats == 1:
        rows = [("OOF weighted R²", result.weighted_r2), *result.per_target.items()]
        console.print(
            _r2_table(f"tabular baseline ({result.n_images} images, {folds} folds)", rows)
        )
        typer.echo(f"oof_weighted_r2={result.weighted_r2:.4f}")
        return
    rows = [(f"seed {s}", r.weighted_r2) for s, r in zip(rep.seeds, rep.runs, strict=True)]
    console.print(
        _r2_table(f"tabular baseline ({result.n_images} images, {folds} folds, per seed)", rows)
    )
    typer.echo(f"oof_weighted_r2={rep.mean:.4f} ± {rep.std:.4f} (repeats={repeats})")
