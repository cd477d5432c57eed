import pytest

from fieldvision.config import load_config
from fieldvision.errors import ConfigError
from fieldvision.pipelines.biomass_config import BiomassConfig


def test_defaults_follow_the_design():
    cfg = BiomassConfig()
    assert cfg.train.folds == 5
    assert cfg.phase2.tile_grid == (2, 4) and cfg.phase2.use_film and cfg.phase2.use_tiles
    assert cfg.data.clean.clahe is False  # an ablation switch, not a default
    assert cfg.needs_phase1


def test_phase1_only_runs_for_film():
    cfg = load_config(BiomassConfig, overrides=["phase2.use_film=false"])
    assert not cfg.needs_phase1


def test_fingerprint_ignores_runtime_knobs_but_not_training_settings():
    base = BiomassConfig().fingerprint()
    runtime = load_config(BiomassConfig, overrides=["train.device=cpu", "train.tta=false"])
    assert runtime.fingerprint() == base
    assert load_config(BiomassConfig, overrides=["phase2.aggregation=mean"]).fingerprint() != base


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("train.folds=1", "train.folds"),
        ("phase2.aggregation=max", "phase2.aggregation"),
        ("phase2.epoch=3", "phase2.epoch"),
        ("data.clean.bottom_crop=0.9", "data.clean.bottom_crop"),
    ],
)
def test_invalid_values_name_the_field(override, field):
    with pytest.raises(ConfigError, match=field):
        load_config(BiomassConfig, overrides=[override])
