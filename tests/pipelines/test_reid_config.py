"""Re-ID pipeline config: defaults, adapters, validation errors."""

from __future__ import annotations

import pytest

from fieldvision.config import load_config
from fieldvision.errors import ConfigError
from fieldvision.models.reid import ReIDConfig
from fieldvision.pipelines.reid_config import ReIDPipelineConfig


def test_defaults_and_adapters():
    cfg = ReIDPipelineConfig()
    assert cfg.data.image_column == "filename" and cfg.data.identity_column == "ground_truth"
    model = cfg.model.to_model_config()
    assert isinstance(model, ReIDConfig) and model.backbone == cfg.model.backbone
    optim = cfg.train.optim()
    assert optim.lr == cfg.train.lr and optim.warmup_epochs == cfg.train.warmup_epochs


def test_overrides_are_typed():
    cfg = load_config(
        ReIDPipelineConfig,
        overrides=["train.lr=2e-5", "data.image_size=[224,224]", "model.margin=0.3"],
    )
    assert cfg.train.lr == 2e-5 and cfg.data.image_size == (224, 224) and cfg.model.margin == 0.3


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("model.loss=circle", "model.loss"),
        ("train.p=0", "train.p"),
        ("train.lr_rate=1", "unknown field"),
        ("inference.pair_score=best", "inference.pair_score"),
        ("train.protocol=half", "train.protocol"),
    ],
)
def test_bad_values_name_the_field(override, fragment):
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
        load_config(ReIDPipelineConfig, overrides=[override])
