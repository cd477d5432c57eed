"""Re-ID pipeline config: defaults, adapters, validation errors."""

from __future__ import annotations

import pytest

from fieldvision.config import apply_runtime_overrides, config_fingerprint, load_config
from fieldvision.errors import ConfigError
from fieldvision.models.losses import MarginLossConfig
from fieldvision.models.reid import ReIDModel, ReIDModelConfig
from fieldvision.pipelines.reid.config import ReIDPipelineConfig
from fieldvision.training.optim import OptimConfig


def test_sections_are_the_configs_of_what_they_drive():
    cfg = load_config(
        ReIDPipelineConfig, overrides=["model.embedding_dim=8", "model.margin=0.2", "train.lr=1e-4"]
    )
    assert cfg.data.image_column == "filename" and cfg.data.identity_column == "ground_truth"
    assert ReIDModelConfig.narrow(cfg.model).embedding_dim == 8
    assert MarginLossConfig.narrow(cfg.model).margin == 0.2
    assert OptimConfig.narrow(cfg.train).lr == 1e-4
    model = ReIDModel(cfg.model)  # the model keeps only its own fields
    assert type(model.cfg) is ReIDModelConfig and model.embedding_dim == 8


@pytest.mark.parametrize(
    ("override", "same"),
    [
        ("inference.qe_k=0", True),  # post-processing never changes the trained weights
        ("inference.pair_score=cosine", True),
        ("train.device=cpu", True),
        ("train.num_workers=2", True),
        ("train.lr=1e-4", False),
        ("model.loss=cosface", False),
        ("data.image_size=[64,64]", False),
    ],
)
def test_fingerprint_covers_what_changes_the_weights(override, same):
    base = config_fingerprint(ReIDPipelineConfig())
    changed = config_fingerprint(load_config(ReIDPipelineConfig, overrides=[override]))
    assert (changed == base) is same


def test_finished_runs_accept_only_runtime_overrides():
    cfg = apply_runtime_overrides(ReIDPipelineConfig(), ["inference.qe_k=0", "train.device=cpu"])
    assert cfg.inference.qe_k == 0 and cfg.train.device == "cpu"
    with pytest.raises(ConfigError, match="train.lr.*runtime fields"):
        apply_runtime_overrides(ReIDPipelineConfig(), ["train.lr=1"])


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
