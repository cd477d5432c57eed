"""The MIL demo recipe (packaged YAML) and (slow) the demo itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from fieldvision.config import load_config
from fieldvision.pipelines.mil import MILConfig
from fieldvision.pipelines.mil.demo import DEMO_RECIPE, run_mil_demo


def test_demo_recipe_loads_by_name():
    cfg = load_config(MILConfig, DEMO_RECIPE)
    assert cfg.data.grid == (8, 8) and cfg.data.negative_class == "healthy"
    assert cfg.glance.budget == 0.3 and cfg.train.folds == 0


@pytest.mark.slow
def test_demo_learns_and_glance_keeps_the_score(tmp_path):
    result = run_mil_demo(tmp_path / "mil", progress=False)
    full, glance = result["evaluate"]["full"], result["evaluate"]["glance"]
    assert full["macro_f1"] > 0.5  # three classes: chance is about 0.33
    assert glance["tile_fraction"] <= 0.3 + 1 / 64
    assert glance["macro_f1"] > full["macro_f1"] - 0.05
    assert Path(result["report"]).is_file()
