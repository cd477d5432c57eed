"""Biomass test-time training (``predict --ttt``) measured on the held-out synthetic test set.

End to end: synthetic data (``synth``), a cross-validated run (the demo recipe by default),
then the same run predicted without and with TTT and both scored against
``test_truth.csv`` (weighted R², the competition metric). Prints a Markdown table (without
TTT, with TTT, ΔR², minutes). Not run in CI; a few minutes on 2 CPU cores::

    .venv/bin/python benchmarks/biomass_ttt.py [--work DIR] [--n-train 160] [--n-test 40]
        [--folds 3] [--config biomass_demo] [--set key=value ...] [--ttt-epochs 2 ...]

Re-running with the same ``--work`` reuses its data and its run (resumed when unfinished,
re-opened when done), so several TTT settings can be compared on one trained run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from fieldvision.config import load_config
from fieldvision.data.synthetic.pasture import generate_pasture_dataset
from fieldvision.errors import RunError
from fieldvision.pipelines.biomass import (
    RUN_KIND,
    BiomassConfig,
    evaluate,
    load_run,
    predict,
    train,
)
from fieldvision.pipelines.biomass.ttt import TTTSettings, predict_ttt
from fieldvision.runs import RunDir


def _finished(run: Path) -> bool:
    try:
        RunDir.finished(run, RUN_KIND)
    except RunError:
        return False
    return True


def _measure(work: Path, args: argparse.Namespace) -> list[str]:
    data, run = work / "data", work / "run"
    if not (data / "test_truth.csv").is_file():
        generate_pasture_dataset(
            data, n_train=args.n_train, n_test=args.n_test, seed=args.seed, progress=False
        )
    cfg = load_config(
        BiomassConfig,
        args.config,
        [f"train.folds={args.folds}", "train.progress=false", *args.set],
    )
    t0 = time.perf_counter()
    if _finished(run):
        # A finished run is only re-opened (also one trained by an older release, whose
        # config fingerprint `train` would no longer accept).
        oof_r2 = load_run(run)[0].read_metrics()["fit"]["oof_weighted_r2"]
        trained = "reused run"
    else:
        oof_r2 = train(data, run, cfg).oof_r2
        trained = f"training {(time.perf_counter() - t0) / 60:.1f} min"
    truth = data / "test_truth.csv"

    t0 = time.perf_counter()
    predict(run, data, work / "plain.csv")
    plain_min = (time.perf_counter() - t0) / 60
    plain = evaluate(work / "plain.csv", truth).weighted_r2

    lines = [
        f"run: {args.config}, {args.folds} folds, {args.n_train} train / {args.n_test} test "
        f"images, OOF R² {oof_r2:.4f}, {trained}, "
        f"torch threads {torch.get_num_threads()}",
        "",
        "| TTT | test weighted R² | ΔR² | minutes (TTT part) | total predict minutes |",
        "|---|---|---|---|---|",
        f"| none | {plain:.4f} | – | – | {plain_min:.2f} |",
    ]
    for epochs in args.ttt_epochs:
        settings = TTTSettings(epochs=epochs, lr=args.ttt_lr)
        out = work / f"ttt{epochs}.csv"
        t0 = time.perf_counter()
        result = predict_ttt(run, data, out, settings)
        total_min = (time.perf_counter() - t0) / 60
        r2 = evaluate(out, truth).weighted_r2
        lr = settings.learning_rate(cfg)
        lines.append(
            f"| {epochs} epoch(s), lr {lr:.1e}, {result.n_test} test + "
            f"{sum(result.n_train) // len(result.n_train)} train/fold | {r2:.4f} | "
            f"{r2 - plain:+.4f} | {result.minutes:.2f} | {total_min:.2f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="data + run folder (reused)")
    parser.add_argument("--n-train", type=int, default=160)
    parser.add_argument("--n-test", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0, help="synthetic data seed")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--config", default="biomass_demo")
    parser.add_argument("--set", action="append", default=[], help="extra config override")
    parser.add_argument("--ttt-epochs", type=int, nargs="+", default=[2])
    parser.add_argument("--ttt-lr", type=float, default=None, help="default: phase2.lr / 10")
    args = parser.parse_args()
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
        lines = _measure(args.work, args)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            lines = _measure(Path(tmp), args)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
