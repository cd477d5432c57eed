"""`fieldvision demo biomass`: synth -> train -> predict -> evaluate -> report, on CPU.

Trains the full pipeline (Phase 1 + tiles + attention + FiLM) and the global-only image
baseline on identical folds of a small embedded synthetic dataset, then scores both
out-of-fold and on the held-out synthetic test set. With ``repeats`` R > 1 (the default is
3) both are trained R times under fold seeds ``seed .. seed + R − 1`` (other folds, other
model seeds; repeat r has the same folds for both models), and every score is the mean ±
sample std over the repeats: with 160 photos one split moves the score by more than the
difference between the two models, so a single run would tell nothing.
"""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

from fieldvision.config import config_to_dict, load_config
from fieldvision.console import console
from fieldvision.pipelines.biomass.ablation import VARIANTS
from fieldvision.pipelines.biomass.config import BiomassConfig
from fieldvision.pipelines.biomass.predict import evaluate, predict
from fieldvision.pipelines.biomass.repeats import mean_std, train_repeats

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
    repeats: int = 3,
) -> dict[str, float]:
    """Run the whole biomass demo under `out` and return its scores.

    Layout: ``out/data`` (the synthetic set), ``out/run`` and ``out/baseline`` (one run each,
    or ``repeat{r}/`` runs under them with ``repeats > 1``), ``out/submission_*.csv``.

    Returns:
        ``pipeline_oof_r2``, ``baseline_oof_r2``, ``pipeline_test_r2``, ``baseline_test_r2``
        (means over repeats), the same names with ``_std`` (sample std; 0 for one repeat),
        ``repeats`` and ``seconds``.
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

    times = f" x {repeats} repeats" if repeats > 1 else ""
    console.rule(f"[bold]2/4 train the full pipeline (Phase 1 + tiles + FiLM){times}")
    full = train_repeats(data, out / "run", cfg, repeats)
    console.rule(f"[bold]3/4 train the global-only baseline{times}")
    base = train_repeats(data, out / "baseline", baseline_cfg, repeats)

    console.rule("[bold]4/4 predict the test set and evaluate")
    scores: dict[str, float] = {}
    for name, result in (("pipeline", full), ("baseline", base)):
        oof, oof_std = result.oof_r2
        tests = []
        for r, run in enumerate(result.runs):
            suffix = f"_repeat{r}" if repeats > 1 else ""
            sub = out / f"submission_{name}{suffix}.csv"
            predict(run.run_dir, data, sub)
            tests.append(evaluate(sub, data / "test_truth.csv").weighted_r2)
        test, test_std = mean_std(tests)
        scores.update({f"{name}_oof_r2": oof, f"{name}_oof_r2_std": oof_std,
                       f"{name}_test_r2": test, f"{name}_test_r2_std": test_std})  # fmt: skip
    scores["repeats"] = float(repeats)
    scores["seconds"] = time.perf_counter() - start
    return scores
