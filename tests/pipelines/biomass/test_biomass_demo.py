"""The biomass demo: both models trained R times, scores as mean ± std over repeats."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from fieldvision.pipelines.biomass.demo import run_biomass_demo
from fieldvision.pipelines.biomass.predict import evaluate

from .conftest import TINY


@pytest.mark.parametrize("repeats", [1, 2])
def test_demo_scores_are_means_and_stds_over_repeats(pasture, tmp_path, repeats):
    out = tmp_path / "demo"
    shutil.copytree(pasture, out / "data")  # the demo re-uses a synthesised set
    scores = run_biomass_demo(out, overrides=list(TINY), repeats=repeats)
    assert scores["repeats"] == repeats
    for name in ("run", "baseline"):
        model = "pipeline" if name == "run" else "baseline"
        runs = [out / name] if repeats == 1 else [out / name / f"repeat{r}" for r in range(2)]
        oof = [json.loads((r / "metrics.json").read_text())["fit"]["oof_weighted_r2"] for r in runs]
        subs = [f"submission_{model}.csv"] if repeats == 1 else [
            f"submission_{model}_repeat{r}.csv" for r in range(2)
        ]  # fmt: skip
        test = [evaluate(out / s, out / "data" / "test_truth.csv").weighted_r2 for s in subs]
        # Each score is the mean over the repeats' own runs, its std their sample std.
        assert scores[f"{model}_oof_r2"] == pytest.approx(np.mean(oof))
        assert scores[f"{model}_test_r2"] == pytest.approx(np.mean(test))
        want_std = np.std(oof, ddof=1) if repeats > 1 else 0.0
        assert scores[f"{model}_oof_r2_std"] == pytest.approx(want_std)
    if repeats > 1:  # different fold seeds: the repeats are different runs
        folds = [(out / "run" / f"repeat{r}" / "folds.csv").read_text() for r in range(2)]
        assert folds[0] != folds[1]
