"""`fieldvision demo mil`: synth → train → evaluate (full vs glance) → report, on CPU.

Trains on one synthetic leaf set and evaluates on an independent one (another seed), so
the printed macro-F1 is a held-out score. The recipe is the packaged ``mil_demo.yaml``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fieldvision.config import load_config
from fieldvision.console import console
from fieldvision.pipelines.mil.config import MILConfig
from fieldvision.pipelines.mil.fit import train
from fieldvision.pipelines.mil.predict import evaluate

__all__ = ["DEMO_DATA", "DEMO_RECIPE", "run_mil_demo"]

#: Synthetic training set; the test set is the same with another seed and 120 images.
DEMO_DATA: dict[str, Any] = {"n": 240, "size": 512, "classes": 3, "seed": 0}
DEMO_RECIPE = "mil_demo"


def run_mil_demo(
    out: Path, progress: bool = True, overrides: list[str] | None = None
) -> dict[str, Any]:
    """Run the MIL demo under `out` (re-running reuses data and finished training).

    Returns:
        ``{"evaluate": evaluation results, "seconds": {...}, "report": path}``.
    """
    from fieldvision.data.synthetic.leaves import generate_leaf_dataset

    out = Path(out)
    sets = [f"train.progress={str(progress).lower()}", *(overrides or [])]
    cfg = load_config(MILConfig, DEMO_RECIPE, sets)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    for name, n, seed in (("data", DEMO_DATA["n"], DEMO_DATA["seed"]), ("test_data", 120, 1)):
        if not (out / name / "labels.csv").is_file():
            console.print(f"[bold]mil demo[/]: writing synthetic leaves to {out / name}")
            generate_leaf_dataset(
                out / name, n=n, size=DEMO_DATA["size"], classes=DEMO_DATA["classes"],
                seed=seed, progress=progress,
            )  # fmt: skip
    seconds["synth"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    train(out / "data", out / "run", cfg)
    seconds["train"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    result = evaluate(out / "run", out / "test_data", progress=progress)
    seconds["evaluate"] = time.perf_counter() - t2
    seconds["total"] = time.perf_counter() - t0
    return {"evaluate": result, "seconds": seconds, "report": str(out / "run" / "report.md")}
