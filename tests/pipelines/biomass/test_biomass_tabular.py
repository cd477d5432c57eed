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
    bad = tabular_baseline(_synthetic_table(tmp_path / "b", informative=False), folds=3)
    assert bad.weighted_r2 < 0.3


@pytest.mark.skipif(not REAL.is_file(), reason="../shared/data/csiro/train.csv not present")
def test_real_table_baseline_is_informative_but_far_from_perfect():
    result = tabular_baseline(REAL, folds=5, seed=0)
    assert result.n_images == 357
    assert 0.2 < result.weighted_r2 < 0.95
    assert len(result.fold_r2) == 5
