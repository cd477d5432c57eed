"""The re-ID demo recipe and (slow) the demo itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from fieldvision.cli.demo_reid import DEMO_CONFIG, run_reid_demo
from fieldvision.config import config_to_dict, load_config
from fieldvision.pipelines.reid_config import ReIDPipelineConfig

REPO = Path(__file__).resolve().parents[2]


def test_configs_yaml_mirrors_the_demo_recipe():
    from_yaml = load_config(ReIDPipelineConfig, REPO / "configs" / "reid_demo.yaml")
    from_code = load_config(ReIDPipelineConfig, base=DEMO_CONFIG)
    assert config_to_dict(from_yaml) == config_to_dict(from_code)


@pytest.mark.slow
def test_demo_learns_identities(tmp_path):
    result = run_reid_demo(tmp_path / "reid", progress=False)
    chance = result["background"]["chance_mAP"]
    assert result["validation"]["raw"]["mAP"] > 3 * chance
    assert result["test"]["raw"]["rank1"] > 0.3
    assert Path(result["report"]).is_file()
