from pathlib import Path

import pytest

from fieldvision.config import config_to_dict, load_config
from fieldvision.errors import ConfigError
from fieldvision.io import write_json
from fieldvision.pipelines.biomass import TrainResult, ablation
from fieldvision.pipelines.biomass.ablation import VARIANTS, run_ablation
from fieldvision.pipelines.biomass.config import BiomassConfig


@pytest.mark.parametrize(
    ("name", "tiles", "film", "aggregation", "clahe"),
    [
        ("baseline", False, False, None, False),
        ("tiles", True, False, "attention", False),
        ("film", True, True, "attention", False),
        ("mean", True, True, "mean", False),
        ("clahe", True, True, "attention", True),
    ],
)
def test_variants_switch_exactly_what_they_name(name, tiles, film, aggregation, clahe):
    cfg = load_config(BiomassConfig, overrides=VARIANTS[name].overrides)
    assert cfg.phase2.use_tiles is tiles and cfg.phase2.use_film is film
    if aggregation:
        assert cfg.phase2.aggregation == aggregation
    assert cfg.data.clean.clahe is clahe
    # Folds depend only on the train section, which no variant touches: identical splits.
    assert cfg.train == BiomassConfig().train


def test_run_ablation_table_reuses_runs_and_shares_phase1(tmp_path: Path, monkeypatch):
    calls = []

    def fake_train(data_dir, out, cfg, phase1_from=None):
        calls.append((out.name, phase1_from.name if phase1_from else None))
        score = {"baseline": 0.4, "film": 0.6, "mean": 0.55}[out.name]
        write_json(out / "metrics.json", {"fit": {"seconds": 60.0}})
        return TrainResult(out, score, score - 0.01, {"Dry_Total_g": score}, [score], 60.0)

    monkeypatch.setattr(ablation, "train", fake_train)
    rows = run_ablation(tmp_path / "data", tmp_path, BiomassConfig(), ["film", "mean", "no_tta"])
    by_name = {row["variant"]: row for row in rows}
    assert list(by_name) == ["baseline", "film", "mean", "no_tta"]
    assert by_name["film"]["delta"] == pytest.approx(0.2)
    assert by_name["no_tta"]["weighted_r2"] == pytest.approx(0.59)  # film's OOF without TTA
    assert [name for name, _ in calls] == ["baseline", "film", "mean"]  # no_tta trains nothing
    assert dict(calls)["mean"] == "film"  # same Phase-1 settings: Phase 1 is reused
    table = (tmp_path / "ablation.md").read_text()
    assert "| film |" in table and "+ tiles + FiLM" in table


def test_unknown_variant_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="unknown ablation variant"):
        run_ablation(tmp_path, tmp_path, BiomassConfig(), ["film", "nope"])


def test_variant_overrides_apply_on_top_of_a_user_config():
    user = load_config(BiomassConfig, overrides=["train.folds=3", "phase2.epochs=2"])
    cfg = load_config(
        BiomassConfig, overrides=VARIANTS["baseline"].overrides, base=config_to_dict(user)
    )
    assert cfg.train.folds == 3 and cfg.phase2.epochs == 2 and not cfg.phase2.use_tiles
