import pytest

from fieldvision.config import config_fingerprint, load_config
from fieldvision.errors import ConfigError
from fieldvision.pipelines.biomass.config import BiomassConfig


def test_defaults_follow_the_design():
    cfg = BiomassConfig()
    assert cfg.train.folds == 5
    assert cfg.phase2.tile_grid == (2, 4) and cfg.phase2.use_film and cfg.phase2.use_tiles
    assert cfg.data.clean.clahe is False  # an ablation switch, not a default
    assert cfg.needs_phase1


def test_phase1_only_runs_for_film():
    cfg = load_config(BiomassConfig, overrides=["phase2.use_film=false"])
    assert not cfg.needs_phase1


@pytest.mark.parametrize(
    ("override", "same"),
    [
        ("train.device=cpu", True),
        ("train.progress=false", True),
        ("data.num_workers=2", True),
        ("data.cache_dir=/tmp/x", True),
        # TTA changes the Phase-1 OOF metadata Phase 2 trains on: part of the run.
        ("train.tta=false", False),
        ("phase2.aggregation=mean", False),
        ("phase1.lr=0.01", False),
    ],
)
def test_fingerprint_ignores_runtime_knobs_but_not_training_settings(override, same):
    base = config_fingerprint(BiomassConfig())
    changed = config_fingerprint(load_config(BiomassConfig, overrides=[override]))
    assert (changed == base) is same


def test_phase1_disabled_with_film_is_refused_at_config_time():
    with pytest.raises(ConfigError, match="phase1.enabled=false conflicts with phase2.use_film"):
        load_config(BiomassConfig, overrides=["phase1.enabled=false"])
    ok = load_config(BiomassConfig, overrides=["phase1.enabled=false", "phase2.use_film=false"])
    assert not ok.needs_phase1


def test_sections_are_the_configs_of_what_they_drive():
    """A phase section is its model's config plus the optimiser recipe and schedule, so the
    model and the optimiser read their own fields from it (declared once)."""
    from fieldvision.models.biomass import Phase2Config
    from fieldvision.training.optim import OptimConfig

    cfg = load_config(BiomassConfig, overrides=["phase2.lr=0.01", "phase2.aggregation=mean"])
    assert Phase2Config.narrow(cfg.phase2).aggregation == "mean"
    assert OptimConfig.narrow(cfg.phase2).lr == 0.01
    assert "lr" not in Phase2Config.model_fields


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


@pytest.mark.parametrize(
    ("override", "field", "why"),
    [
        ("phase2.bins=1", "phase2.bins", "0 .off. or at least 2"),
        ("phase2.bins=-3", "phase2.bins", "greater than or equal to 0"),
        ("phase2.bin_loss_weight=-0.5", "phase2.bin_loss_weight", "greater than or equal"),
        ("phase2.bin_blend=1.2", "phase2.bin_blend", "less than or equal to 1"),
        ("phase2.bin_blend=-0.1", "phase2.bin_blend", "greater than or equal to 0"),
        ("phase2.head=free", "phase2.head", "components.*projection"),
    ],
)
def test_bad_head_variant_settings_are_refused_with_the_field_and_reason(override, field, why):
    with pytest.raises(ConfigError, match=f"(?s){field}.*{why}"):
        load_config(BiomassConfig, overrides=[override])


def test_head_variants_default_to_todays_head():
    cfg = BiomassConfig().phase2
    assert cfg.head == "components" and cfg.bins == 0
    ok = load_config(BiomassConfig, overrides=["phase2.bins=8", "phase2.head=projection"])
    assert ok.phase2.bins == 8 and ok.phase2.head == "projection"
