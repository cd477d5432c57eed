"""DeepPCB without selection bias: train on 300 boards, report on 100 boards never seen.

The MIL recipe picks its best epoch on a validation split (``selection: best``); reporting
that split's score is optimistic, and on DeepPCB validation macro-F1 swings by 0.4 from
one epoch to the next. This script holds out whole boards first (a board's defect-free
template and its defective scan stay together), trains ``mil_deeppcb_small_resnet`` on the
rest (its own grouped train/validation split inside), and evaluates full tiling and glance
on the held-out boards only. About 40 min on 2 CPU cores; re-running resumes::

    .venv/bin/python benchmarks/mil_deeppcb.py [--data ../shared/data/deeppcb]
        [--work pcb_heldout] [--test-boards 100] [--seed 0] [--budget 0.3]

Then time the modes on the same held-out images::

    .venv/bin/python benchmarks/mil_glance.py --run pcb_heldout/run \
        --data pcb_heldout/split/test.csv

Prints the evaluation line and the accuracy-against-budget curve (``report.md`` has the
rest).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from fieldvision.config import load_config
from fieldvision.pipelines.mil import MILConfig, evaluate, train

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "deeppcb"


def split_boards(data: Path, out: Path, test_boards: int, seed: int) -> tuple[Path, Path]:
    """Write ``out/train.csv`` and ``out/test.csv``: whole boards (``group``) held out.

    The CSVs sit beside links to the data's ``images`` and ``boxes`` folders, so their
    relative paths resolve inside their own folder (the readers refuse paths outside it).
    """
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("images", "boxes"):
        link = out / sub
        if not link.exists():
            link.symlink_to((data / sub).resolve(), target_is_directory=True)
    table = pd.read_csv(data / "labels.csv")
    boards = np.array(sorted(table["group"].unique()))
    if not 0 < test_boards < len(boards):
        raise SystemExit(f"--test-boards must be in 1..{len(boards) - 1}, got {test_boards}")
    held = set(np.random.default_rng(seed).choice(boards, test_boards, replace=False).tolist())
    is_test = table["group"].isin(held)
    table[~is_test].to_csv(out / "train.csv", index=False)
    table[is_test].to_csv(out / "test.csv", index=False)
    return out / "train.csv", out / "test.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work", type=Path, default=Path("pcb_heldout"))
    parser.add_argument("--test-boards", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=0.3)
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    args = parser.parse_args()
    if not (args.data / "labels.csv").is_file():
        raise SystemExit(f"{args.data}: no DeepPCB labels.csv (see ../shared/data/README.md)")
    train_csv, test_csv = split_boards(args.data, args.work / "split", args.test_boards, args.seed)
    cfg = load_config(MILConfig, "mil_deeppcb_small_resnet", args.overrides)
    train(train_csv, args.work / "run", cfg)
    result = evaluate(args.work / "run", test_csv, budget=args.budget, progress=False)
    n = len(pd.read_csv(test_csv))
    print(f"held-out boards={args.test_boards} images={n} seed={args.seed}")
    print(result["line"])
    print()
    print("| budget | tile fraction | macro-F1 | AUC | ms/image (estimate) |")
    print("|---|---|---|---|---|")
    for row in result["curve"]:
        print(f"| {row['budget']:.2f} | {row['tile_fraction']:.3f} | {row['macro_f1']:.4f} | "
              f"{row['auc']:.4f} | {row['ms_per_image']:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
