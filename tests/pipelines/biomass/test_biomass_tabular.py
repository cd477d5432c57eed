from pathlib import Path

import numpy as np
import pytest

from fieldvision.pipelines.biomass.tabular import tabular_baseline
from fieldvision.schemas.biomass import TARGETS

REAL = Path(__file__).resolve().parents[4] / "shared" / "data" / "csiro" / "train.csv"


def _synthetic_table(tmp_path: Path, informative: bool) -> Path:
    """A long-format table where height drives biomass (or not)."""
    rng = np.random.default_rng(0)
    rows = [
        "sample_id,image_path,Sampling_Date,State,Species,Pre_GSHH_NDVI,Height_Ave_cm,target_name,target"
    ]
    for i in range(120):
        height = rng.uniform(1, 20)
        driver = height if informative else rng.uniform(1, 20)
        green, dead, clover = 3 * driver, driver, 0.5 * driver
        values = dict(
            zip(TARGETS, [green, dead, clover, green + clover, green + dead + clover], strict=True)
        )
        date = f"2015/{1 + i % 12}/{1 + i % 20}"
        for name, value in values.items():
            rows.append(
                f"ID{i:010d}__{name},train/ID{i:010d}.jpg,{date},Vic,Ryegrass,0.5,{height:.3f},{name},{value:.4f}"
            )
    path = tmp_path / "train.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_metadata_that_explains_biomass_scores_high_and_noise_does_not(tmp_path):
    good = tabular_baseline(_synthetic_table(tmp_path, informative=True), folds=3)
    assert good.weighted_r2 > 0.9
    assert good.oof.shape == (120, 5)
    # Mass balance holds by construction: total = green + dead + clover.
    np.testing.assert_allclose(good.oof[:, 4], good.oof[:, :3].sum(axis=1), rtol=1e-6)
    (tmp_path / "b").mkdir()
    bad_table = _synthetic_table(tmp_path / "b", informative=False)
    bad = tabular_baseline(bad_table, folds=3)
    # One weighted R² over all cells credits knowing each target's mean (green is 6x
    # clover), so the floor is the per-target training-mean predictor, not 0.
    from fieldvision.data.biomass.tables import read_train_table
    from fieldvision.metrics.regression import weighted_r2
    from fieldvision.training.kfold import grouped_folds

    wide = read_train_table(bad_table)
    y = wide[list(TARGETS)].to_numpy(float)
    folds = grouped_folds(wide["sampling_date"].astype(str).to_numpy(), 3, 0)
    means = np.zeros_like(y)
    for k in range(3):
        means[folds == k] = y[folds != k].mean(axis=0)
    floor = weighted_r2(y, means)
    assert bad.weighted_r2 < floor + 0.02 < good.weighted_r2 - 0.5


@pytest.mark.skipif(not REAL.is_file(), reason="../shared/data/csiro/train.csv not present")
def test_real_table_baseline_is_informative_but_far_from_perfect():
    result = tabular_baseline(REAL, folds=5, seed=0)
    assert result.n_images == 357
    assert 0.2 < result.weighted_r2 < 0.95
    assert len(result.fold_r2) == 5


def test_repeats_use_distinct_fold_seeds_and_report_mean_and_std(tmp_path):
    from fieldvision.pipelines.biomass.tabular import tabular_repeats

    table = _synthetic_table(tmp_path, informative=True)
    rep = tabular_repeats(table, folds=3, seed=4, repeats=3)
    assert rep.seeds == [4, 5, 6] and len(rep.runs) == 3
    one = tabular_baseline(table, folds=3, seed=5)
    assert rep.runs[1].weighted_r2 == pytest.approx(one.weighted_r2)
    scores = np.array([r.weighted_r2 for r in rep.runs])
    assert rep.mean == pytest.approx(scores.mean())
    assert rep.std == pytest.approx(scores.std(ddof=1))
    assert len({round(s, 12) for s in scores}) > 1  # other folds, other scores
    assert tabular_repeats(table, folds=3, repeats=1).std == 0.0


def test_cli_tabular_repeats(tmp_path, capsys):
    from fieldvision.cli.__main__ import main

    table = _synthetic_table(tmp_path, informative=True)
    assert main(["biomass", "tabular", "--data", str(tmp_path), "--folds", "3",
                 "--repeats", "2"]) == 0  # fmt: skip
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("oof_weighted_r2=") and "±" in line and "repeats=2" in line
    assert table.is_file()
