from pathlib import Path

import numpy as np
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


@pytest.mark.parametrize(
    ("name", "stamp_mask"), [("artifacts", True), ("artifacts_no_clean", False)]
)
def test_artifact_variants_paste_artifacts_with_and_without_cleaning(name, stamp_mask):
    cfg = load_config(BiomassConfig, overrides=VARIANTS[name].overrides)
    full = load_config(BiomassConfig, overrides=VARIANTS["film"].overrides)
    assert cfg.data.artifact_augment > 0 and full.data.artifact_augment == 0
    assert cfg.data.clean.stamp_mask is stamp_mask
    assert cfg.phase2 == full.phase2 and cfg.train == full.train  # only data differs


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


def test_repeated_ablation_reports_std_and_marks_only_significant_gains(tmp_path, monkeypatch):
    calls = []
    # Per variant, per repeat (seed 0, 1, 2): "film" gains 0.2 with a small spread ("yes");
    # "mean" gains 0.05 with a spread that swallows it ("no").
    table = {
        "baseline": [0.40, 0.41, 0.39],
        "film": [0.60, 0.61, 0.59],
        "mean": [0.35, 0.50, 0.50],
    }

    def fake_train(data_dir, out, cfg, phase1_from=None):
        name = out.parent.name
        calls.append((name, out.name, cfg.train.seed, phase1_from))
        score = table[name][cfg.train.seed]
        write_json(out / "metrics.json", {"fit": {"seconds": 30.0}})
        result = TrainResult(out, score, score - 0.01, {"Dry_Total_g": score}, [score], 30.0)
        result.oof_r2_fold_best = score + 0.05
        return result

    monkeypatch.setattr(ablation, "train", fake_train)
    rows = run_ablation(
        tmp_path / "data", tmp_path, BiomassConfig(), ["film", "mean", "no_tta"], repeats=3
    )
    by = {row["variant"]: row for row in rows}
    # Every variant trains repeat0..2 with seeds 0..2: repeat r has the same folds everywhere.
    assert sorted((n, d, s) for n, d, s, _ in calls) == sorted(
        (n, f"repeat{r}", r) for n in ("baseline", "film", "mean") for r in range(3)
    )
    # Phase 1 is shared between film and mean within a repeat, never across repeats.
    reuse = {(n, d): p for n, d, _, p in calls}
    assert reuse[("mean", "repeat1")] == tmp_path / "film" / "repeat1"
    assert reuse[("film", "repeat1")] is None
    np.testing.assert_allclose(by["film"]["weighted_r2"], 0.60)
    np.testing.assert_allclose(by["film"]["std"], np.std(table["film"], ddof=1))
    np.testing.assert_allclose(by["mean"]["delta"], np.mean(table["mean"]) - 0.40)
    # Paired spread: the per-repeat differences against the baseline of the same folds.
    np.testing.assert_allclose(by["film"]["delta_sd"], 0.0, atol=1e-12)
    paired = np.subtract(table["mean"], table["baseline"])
    np.testing.assert_allclose(by["mean"]["delta_sd"], np.std(paired, ddof=1))
    np.testing.assert_allclose(by["baseline"]["delta_sd"], 0.0)
    assert by["film"]["better"] is True and by["mean"]["better"] is False
    assert by["baseline"]["better"] is None
    np.testing.assert_allclose(by["film"]["fold_best"], 0.65)
    np.testing.assert_allclose(by["no_tta"]["weighted_r2"], 0.59)
    np.testing.assert_allclose(by["film"]["minutes"], 1.5)
    md = (tmp_path / "ablation.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| variant"))
    assert "| std |" in header and "| better |" in header and "| fold_best |" in header
    assert "| delta_sd |" in header
    cells = [c.strip() for c in header.strip("|").split("|")]
    assert len(cells) == len(set(cells))  # every column once
    assert "| film |" in md and "| yes |" in md and "| no |" in md


def test_single_repeat_ablation_cannot_claim_better(tmp_path, monkeypatch):
    def fake_train(data_dir, out, cfg, phase1_from=None):
        write_json(out / "metrics.json", {"fit": {"seconds": 6.0}})
        score = 0.9 if out.name == "film" else 0.1
        return TrainResult(out, score, score, {"Dry_Total_g": score}, [score], 6.0)

    monkeypatch.setattr(ablation, "train", fake_train)
    rows = run_ablation(tmp_path / "data", tmp_path, BiomassConfig(), ["film"])
    assert [r["better"] for r in rows] == [None, None] and rows[1]["std"] == 0.0
    assert (tmp_path / "film" / "metrics.json").is_file()  # R = 1: the old layout


def test_swa_variant_averages_phase2_only_and_shares_phase1():
    swa = load_config(BiomassConfig, overrides=VARIANTS["swa"].overrides)
    film = load_config(BiomassConfig, overrides=VARIANTS["film"].overrides)
    assert swa.phase2.selection == "last_k_average" and swa.phase2.selection_k == 3
    assert film.phase2.selection == "fixed_epochs"  # the honest default
    assert swa.phase1 == film.phase1 and swa.data == film.data


@pytest.mark.parametrize(
    ("name", "field", "value"),
    [("bins", "bins", 8), ("projection", "head", "projection")],
)
def test_head_variant_rows_change_only_the_phase2_head(name, field, value):
    cfg = load_config(BiomassConfig, overrides=VARIANTS[name].overrides)
    film = load_config(BiomassConfig, overrides=VARIANTS["film"].overrides)
    assert getattr(cfg.phase2, field) == value
    assert cfg.phase2.model_copy(update={field: getattr(film.phase2, field)}) == film.phase2
    assert cfg.phase1 == film.phase1 and cfg.data == film.data and cfg.train == film.train
