import numpy as np
import pandas as pd
import pytest

from fieldvision.report.biomass import error_by_group, write_biomass_report
from fieldvision.schemas.biomass import TARGETS


def _wide(n=12):
    rng = np.random.default_rng(0)
    comps = rng.uniform(0, 30, size=(n, 3))
    y = np.column_stack([comps, comps[:, 0] + comps[:, 2], comps.sum(axis=1)])
    frame = pd.DataFrame(y, columns=list(TARGETS))
    frame["image_id"] = [f"ID{i}" for i in range(n)]
    frame["month"] = [1 + i % 3 for i in range(n)]
    frame["state"] = ["Vic", "Tas"] * (n // 2)
    return frame, y


def test_error_by_group_is_zero_for_perfect_predictions_and_counts_images():
    wide, y = _wide()
    table = error_by_group(wide, y, "month")
    assert table["n_images"].tolist() == [4, 4, 4]
    np.testing.assert_allclose(table["weighted_rmse_g"], 0.0, atol=1e-12)
    shifted = y.copy()
    shifted[wide["state"] == "Tas", 4] += 10.0  # only Tasmania's total is off, by +10 g
    by_state = error_by_group(wide, shifted, "state").set_index("state")
    assert by_state.loc["Tas", "mean_total_error_g"] == pytest.approx(10.0)
    assert by_state.loc["Vic", "mean_total_error_g"] == pytest.approx(0.0)
    assert by_state.loc["Tas", "weighted_rmse_g"] == pytest.approx(np.sqrt(0.5 * 100 / 1.0))


class _Cache:
    def get(self, path):
        return np.full((16, 32, 3), 120, np.uint8)


def test_report_has_every_section_and_its_pictures(tmp_path):
    wide, y = _wide()
    metrics = {
        "oof_weighted_r2": 0.5,
        "oof_weighted_r2_no_tta": 0.45,
        "per_target_r2": {t: 0.4 for t in TARGETS},
        "fold_weighted_r2": [0.5, 0.5],
    }
    weights = np.full((12, 8), 1 / 8, np.float32)
    folds = np.array([0, 1] * 6)
    md = write_biomass_report(
        tmp_path, wide, folds, y, metrics, _Cache(), ["p"] * 12, weights, (2, 4)
    )
    text = md.read_text()
    for heading in (
        "Out-of-fold scores",
        "Predictions vs truth",
        "Error by month",
        "Error by state",
        "Tile attention",
    ):
        assert f"## {heading}" in text
    for png in ("scatter.png", "error_by_month.png", "error_by_state.png", "tile_attention.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"


def test_report_without_tiles_has_no_heatmap(tmp_path):
    wide, y = _wide()
    metrics = {
        "oof_weighted_r2": 0.5,
        "oof_weighted_r2_no_tta": 0.5,
        "per_target_r2": {},
        "fold_weighted_r2": [0.5],
    }
    write_biomass_report(tmp_path, wide, np.zeros(12, int), y, metrics, _Cache(), [], None, (2, 4))
    assert not (tmp_path / "tile_attention.png").exists()
