"""Wall time of the predict commands with ``--runtime torch``, ``onnx`` and ``onnx-int8``.

Each command is timed as a user runs it, process start included: a fresh
``fieldvision ...`` process per run (the venv's entry point), interleaved over the three
runtimes, median of ``--repeats`` runs. The import cost alone is timed too (``python -c
"import <module>"`` of the torch pipeline vs the deploy module), since the torch-free path
exists to start fast on small machines. The outputs of the three runtimes are compared
(max |onnx − torch|) so a fast but wrong runtime cannot hide in the table.

Input: the ``--out`` of ``fieldvision demo biomass``, ``demo reid`` and ``demo mil`` (any
of them; missing pipelines are skipped). An export with INT8 copies is made at
``RUN/export`` when it is absent, calibrated as ``benchmarks/export_speed.py`` does
(biomass on ``train.csv``, re-ID on the test photos, MIL on ``data``). Commands:

* ``biomass predict --data DIR/biomass/data`` (the test side, Phase 1 + Phase 2, 5 folds);
* ``reid embed --images DIR/reid/data/train`` (the labelled train photos);
* ``mil predict --images DIR/mil/test_data`` (glance mode).

::

    .venv/bin/python benchmarks/runtime_switch.py --demo DIR [--repeats 3] [--only reid,mil]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

RUNTIMES = ("torch", "onnx", "onnx-int8")
BIN = Path(sys.executable).parent


def _fieldvision() -> list[str]:
    exe = BIN / "fieldvision"
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "fieldvision.cli"]


def _timed(argv: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(argv)}\n{proc.stderr[-3000:]}")
    return seconds


def _cases(demo: Path) -> dict[str, dict]:
    """Per pipeline: its run, calibration images, command and output file."""
    return {
        "biomass": {
            "run": demo / "biomass" / "run",
            "calibration": demo / "biomass" / "data",
            "command": lambda run, out: ["biomass", "predict", "--run", str(run), "--data",
                                         str(demo / "biomass" / "data"), "--out", str(out)],
            "out": "sub.csv",
            "import": ("fieldvision.pipelines.biomass.predict", "fieldvision.deploy.biomass"),
        },
        "reid": {
            "run": demo / "reid" / "run",
            "calibration": demo / "reid" / "data" / "test",
            "command": lambda run, out: ["reid", "embed", "--run", str(run), "--images",
                                         str(demo / "reid" / "data" / "train"), "--out", str(out)],
            "out": "emb.npz",
            "import": ("fieldvision.pipelines.reid.embed", "fieldvision.deploy.reid"),
        },
        "mil": {
            "run": demo / "mil" / "run",
            "calibration": demo / "mil" / "data",
            "command": lambda run, out: ["mil", "predict", "--run", str(run), "--images",
                                         str(demo / "mil" / "test_data"), "--out", str(out)],
            "out": "preds.csv",
            "import": ("fieldvision.pipelines.mil.predict", "fieldvision.deploy.mil"),
        },
    }  # fmt: skip


def _ensure_export(case: dict) -> None:
    run = case["run"]
    if (run / "export" / "manifest.json").is_file():
        return
    print(f"exporting {run} (FP32 + INT8) ...", file=sys.stderr)
    _timed([*_fieldvision(), "export", "--run", str(run), "--out", str(run / "export"),
            "--int8", "--calibration", str(case["calibration"])])  # fmt: skip


def _difference(kind: str, a: Path, b: Path) -> float:
    """max |b − a| over the numbers of two output files of a command."""
    if kind == "reid":
        with np.load(a) as x, np.load(b) as y:
            return float(np.abs(x["embeddings"] - y["embeddings"]).max())
    x, y = pd.read_csv(a), pd.read_csv(b)
    cols = [c for c in x.columns if c.startswith(("prob_", "target"))]
    return float(np.abs(x[cols].to_numpy(float) - y[cols].to_numpy(float)).max())


def _import_seconds(module: str, repeats: int) -> float:
    return statistics.median(
        _timed([sys.executable, "-c", f"import {module}"]) for _ in range(repeats)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", type=Path, required=True, help="--out of fieldvision demo")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="biomass,reid,mil")
    args = parser.parse_args()
    cases = {
        k: v
        for k, v in _cases(args.demo).items()
        if k in args.only.split(",") and (v["run"] / "run.json").is_file()
    }
    if not cases:
        raise SystemExit(f"{args.demo}: no demo run found (run fieldvision demo PIPELINE)")
    rows = []
    work = Path(tempfile.mkdtemp(prefix="runtime_switch."))
    try:
        for kind, case in cases.items():
            _ensure_export(case)
            times: dict[str, list[float]] = {r: [] for r in RUNTIMES}
            outs = {r: work / kind / r / case["out"] for r in RUNTIMES}
            for _ in range(args.repeats):
                for runtime in RUNTIMES:  # interleaved: the machine's drift hits all three
                    argv = [*_fieldvision(), *case["command"](case["run"], outs[runtime]),
                            "--runtime", runtime, "--no-progress"]  # fmt: skip
                    times[runtime].append(_timed(argv))
            imp_torch, imp_onnx = (_import_seconds(m, args.repeats) for m in case["import"])
            med = {r: statistics.median(t) for r, t in times.items()}
            rows.append(
                {
                    "command": f"{kind} {case['command'](case['run'], 'x')[1]}",
                    **{f"{r} s": med[r] for r in RUNTIMES},
                    "onnx speed-up": med["torch"] / med["onnx"],
                    "int8 speed-up": med["torch"] / med["onnx-int8"],
                    "import torch s": imp_torch,
                    "import onnx s": imp_onnx,
                    "max |onnx-torch|": _difference(kind, outs["torch"], outs["onnx"]),
                    "max |int8-torch|": _difference(kind, outs["torch"], outs["onnx-int8"]),
                }
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = pd.DataFrame(rows)
    fmt = {c: "{:.2f}" for c in table.columns if c.endswith(" s") or "speed-up" in c}
    fmt.update({c: "{:.2e}" for c in table.columns if c.startswith("max")})
    for col, spec in fmt.items():
        table[col] = table[col].map(spec.format)
    print(f"median of {args.repeats} runs, wall seconds incl. process start\n")
    print(table.to_markdown(index=False))


if __name__ == "__main__":
    main()
