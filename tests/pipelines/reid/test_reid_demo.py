"""The re-ID demo recipe (packaged YAML) and (slow) the demo itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from fieldvision.config import load_config, recipe_path
from fieldvision.pipelines.reid.config import ReIDPipelineConfig
from fieldvision.pipelines.reid.demo import DEMO_RECIPE, run_reid_demo


def test_demo_recipe_is_the_packaged_yaml_and_loads_by_name():
    path = recipe_path(DEMO_RECIPE)
    assert path.name == "reid_demo.yaml" and path.is_file()
    cfg = load_config(ReIDPipelineConfig, DEMO_RECIPE)
    assert cfg.model.backbone == "fv_tiny_cnn" and cfg.train.epochs > 1


@pytest.mark.slow
def test_demo_learns_identities(tmp_path):
    result = run_reid_demo(tmp_path / "reid", progress=False)
    res = result["results"]
    chance = res["background"]["chance_mAP"]
    assert res["sets"]["validation"]["variants"]["raw"]["mAP"] > 3 * chance
    assert res["sets"]["test"]["variants"]["raw"]["rank1"] > 0.3
    assert Path(result["report"]).is_file()
