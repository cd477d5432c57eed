"""`fieldvision demo biomass`: synth -> train -> predict -> evaluate -> report, on CPU.

Trains the full pipeline (Phase 1 + tiles + attention + FiLM) and the global-only image
baseline on identical folds of a small embedded synthetic dataset, then scores both
out-of-fold and on the held-out synthetic test set.
"""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

from fieldvision.config import config_to_dict, load_config
from fieldvision.console import console
from fieldvision.pipelines.biomass.ablation import VARIANTS
from fieldvision.pipelines.biomass.config import BiomassConfig
from fieldvision.pipelines.biomass.fit import train
from fieldvision.pipelines.biomass.predict import evaluate, predict

__all__ = ["demo_config", "run_biomass_demo"]


def demo_config(overrides: list[str] | None = None) -> BiomassConfig:
    """The packaged CPU demo recipe (``fieldvision/configs/biomass_demo.yaml``)."""
    with resources.as_file(
        resources.files("fieldvision") / "configs" / "biomass_demo.yaml"
    ) as path:
        return load_config(BiomassConfig, path, overrides or [])


def run_biomass_demo(
    out: Path,
    n_train: int = 160,
    n_test: int = 40,
    seed: int = 0,
    overrides: list[str] | None = None,
) -> dict[str, float]:
    """Run the whole biomass demo under `out` and return its scores.

    Returns:
        ``pipeline_oof_r2``, ``baseline_oof_r2``, ``pipeline_test_r2``, ``baseline_test_r2``,
        ``seconds``.
    """
    from fieldvision.data.synthetic.pasture import generate_pasture_dataset

    start = time.perf_counter()
    out = Path(out)
    data = out / "data"
    if not (data / "train.csv").is_file():
        console.rule("[bold]1/4 synthesise pasture photos")
        generate_pasture_dataset(data, n_train=n_train, n_test=n_test, size=(256, 512), seed=seed)
    cfg = demo_config(overrides)
    baseline_cfg = load_config(
        BiomassConfig, overrides=VARIANTS["baseline"].overrides, base=config_to_dict(cfg)
    )

    console.rule("[bold]2/4 train the full pipeline (Phase 1 + tiles + FiLM)")
    full = train(data, out / "run", cfg)
    console.rule("[bold]3/4 train the global-only baseline")
    base = train(data, out / "baseline", baseline_cfg)

    console.rule("[bold]4/4 predict the test set and evaluate")
    scores = {"pipeline_oof_r2": full.oof_r2, "baseline_oof_r2": base.oof_r2}
    for name, run in (("pipeline", out / "run"), ("baseline", out / "baseline")):
        sub = out / f"submission_{name}.csv"
        predict(run, data, sub)
        scores[f"{name}_test_r2"] = evaluate(sub, data / "test_truth.csv").weighted_r2
    scores["seconds"] = time.perf_counter() - start
    return scores
