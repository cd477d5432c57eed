"""Synthetic CSIRO pasture data: format, determinism, calibration, stamps, pixels."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fieldvision.data.biomass import check_images_exist, read_test_table, read_train_table
from fieldvision.data.images import read_rgb
from fieldvision.data.synthetic.pasture import (
    CALIBRATION,
    REAL_SUMMARY,
    calibration_report,
    calibration_stats,
    fit_calibration,
    generate_pasture_dataset,
    render_pasture,
    sample_pasture_table,
)
from fieldvision.ops.cleaning import date_stamp_mask
from fieldvision.schemas.biomass import TARGETS, TEST_COLUMNS, TRAIN_COLUMNS
from fieldvision.seeding import numpy_rng

REAL_TABLE = Path(__file__).resolve().parents[4] / "shared" / "data" / "csiro" / "train.csv"
N_TRAIN, N_TEST, SIZE = 12, 4, (64, 128)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("pasture")
    summary = generate_pasture_dataset(
        out, n_train=N_TRAIN, n_test=N_TEST, size=SIZE, seed=7, progress=False
    )
    return out, summary


def test_files_and_exact_kaggle_columns(tiny):
    out, summary = tiny
    for name in ("train.csv", "test.csv", "test_truth.csv", "manifest.csv"):
        assert (out / name).is_file()
    train = pd.read_csv(out / "train.csv")
    test = pd.read_csv(out / "test.csv")
    truth = pd.read_csv(out / "test_truth.csv")
    assert tuple(train.columns) == TRAIN_COLUMNS
    assert tuple(test.columns) == TEST_COLUMNS
    assert tuple(truth.columns) == TRAIN_COLUMNS
    assert len(train) == 5 * N_TRAIN and len(test) == 5 * N_TEST
    assert test["sample_id"].tolist() == truth["sample_id"].tolist()
    assert len(list((out / "train").glob("*.jpg"))) == N_TRAIN
    assert len(list((out / "test").glob("*.jpg"))) == N_TEST
    assert read_rgb(out / train["image_path"].iloc[0]).shape == (*SIZE, 3)
    assert summary.n_train == N_TRAIN and len(summary.images) == N_TRAIN + N_TEST
    text = summary.describe()
    assert f"{N_TRAIN} train + {N_TEST} test images (128x64" in text and "test.csv" in text


def test_ids_look_like_kaggle_ids(tiny):
    _, summary = tiny
    ids = [im.image_id for im in summary.images]
    assert all(re.fullmatch(r"ID\d{10}", i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_generated_tables_pass_the_real_readers(tiny):
    out, _ = tiny
    wide = read_train_table(out / "train.csv")
    assert len(wide) == N_TRAIN
    assert len(check_images_exist(wide, out, "train")) == N_TRAIN
    test = read_test_table(out / "test.csv")
    assert len(check_images_exist(test, out, "test")) == 5 * N_TEST
    truth = read_train_table(out / "test_truth.csv")
    assert set(truth["image_id"]) == set(test["image_id"])


def test_mass_balance_is_exact_in_the_csv(tiny):
    out, _ = tiny
    for name in ("train.csv", "test_truth.csv"):
        wide = read_train_table(out / name)
        gdm = wide["Dry_Green_g"] + wide["Dry_Clover_g"]
        total = gdm + wide["Dry_Dead_g"]
        assert np.abs(wide["GDM_g"] - gdm).max() < 1e-9
        assert np.abs(wide["Dry_Total_g"] - total).max() < 1e-9
        text = (out / name).read_text()
        decimals = [len(v.split(".")[1]) for v in re.findall(r",(\d+\.\d+)\n", text)]
        assert decimals and max(decimals) <= 4


def test_same_seed_same_bytes_other_seed_differs(tiny, tmp_path):
    out, _ = tiny
    again = generate_pasture_dataset(
        tmp_path / "a", n_train=N_TRAIN, n_test=N_TEST, size=SIZE, seed=7, progress=False
    )
    for name in ("train.csv", "test.csv", "test_truth.csv", "manifest.csv"):
        assert (out / name).read_bytes() == (tmp_path / "a" / name).read_bytes(), name
    first = again.images[0].image_path
    assert (out / first).read_bytes() == (tmp_path / "a" / first).read_bytes()
    other = generate_pasture_dataset(
        tmp_path / "b", n_train=3, n_test=1, size=SIZE, seed=8, progress=False
    )
    assert (other.out / "train.csv").read_bytes() != (out / "train.csv").read_bytes()


def test_manifest_flags(tiny):
    out, summary = tiny
    n = N_TRAIN + N_TEST
    stamped = [im for im in summary.images if im.has_stamp]
    assert len(stamped) == round(0.25 * n)
    assert sum(im.has_strip for im in summary.images) == round(0.30 * n)
    H, W = SIZE
    for im in stamped:  # bottom-right corner, inside the mask's default search region
        y0, x0, y1, x1 = im.stamp_box
        assert y0 >= 0.75 * H and x0 >= 0.5 * W and y1 <= H and x1 <= W
    manifest = pd.read_csv(out / "manifest.csv", keep_default_na=False)
    assert manifest["image_id"].tolist() == [im.image_id for im in summary.images]
    assert manifest["has_stamp"].tolist() == [im.has_stamp for im in summary.images]
    assert set(manifest["split"]) == {"train", "test"}


def test_date_stamp_mask_finds_exactly_the_synthetic_stamps(tiny):
    out, summary = tiny
    for im in summary.images:
        fraction = date_stamp_mask(read_rgb(out / im.image_path)).mean()
        if im.has_stamp:
            assert fraction > 0.005, im
        else:
            assert fraction < 1e-3, im


def test_real_table_comparison_is_written(tmp_path, tiny):
    out, _ = tiny
    summary = generate_pasture_dataset(
        tmp_path / "c",
        n_train=5,
        n_test=1,
        size=SIZE,
        seed=1,
        real_table=out / "train.csv",
        progress=False,
    )
    assert summary.report is not None and "| Dry_Total_g |" in summary.report
    assert (tmp_path / "c" / "calibration.md").read_text() == summary.report


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"n_train": 0, "n_test": 0}, "at least one"), ({"size": (8, 16)}, "at least")],
)
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate_pasture_dataset(tmp_path, progress=False, **kwargs)


# --------------------------------------------------------------------------- label statistics


def _long(frame: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for r in frame.itertuples(index=False):
        for t in TARGETS:
            rows.append(
                {
                    "sample_id": f"{r.image_id}__{t}",
                    "image_path": f"train/{r.image_id}.jpg",
                    "Sampling_Date": r.sampling_date,
                    "State": r.state,
                    "Species": r.species,
                    "Pre_GSHH_NDVI": r.ndvi,
                    "Height_Ave_cm": r.height,
                    "target_name": t,
                    "target": getattr(r, t),
                }
            )
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    ("n", "mean_tol", "std_tol", "zero_tol"), [(3000, 0.12, 0.25, 0.04), (100, 0.35, 0.6, 0.15)]
)
def test_statistics_match_the_baked_calibration(n, mean_tol, std_tol, zero_tol):
    stats = calibration_stats(_long(sample_pasture_table(n, seed=0)))
    assert stats["n_images"] == n
    for t, (mean, std, _median, zero) in REAL_SUMMARY["targets"].items():
        got = stats["targets"][t]
        assert abs(got["mean"] / mean - 1) < mean_tol, (t, got)
        assert abs(got["std"] / std - 1) < std_tol, (t, got)
        assert abs(got["zero_fraction"] - zero) < zero_tol, (t, got)
    assert 0.25 < stats["targets"]["Dry_Clover_g"]["zero_fraction"] < 0.52
    assert stats["mass_balance_max_error"]["total"] < 1e-9
    assert stats["spearman_total"]["height"] > 0.3 and stats["spearman_total"]["ndvi"] > 0.2
    assert stats["n_dates"] <= 28 and stats["images_per_date"]["max"] >= 3  # dates are shared


def test_category_frequencies_follow_the_real_events():
    stats = calibration_stats(_long(sample_pasture_table(3000, seed=1)))
    real_states = {"Tas": 0.387, "Vic": 0.314, "NSW": 0.210, "WA": 0.090}
    for state, freq in real_states.items():
        assert abs(stats["state"][state] - freq) < 0.04
    assert set(stats["month"]) == {"1", "2", "4", "5", "6", "7", "8", "9", "10", "11"}
    assert abs(stats["species"]["Ryegrass_Clover"] - 0.275) < 0.04


def test_label_sampling_is_deterministic_and_seeded():
    a, b = sample_pasture_table(50, seed=4), sample_pasture_table(50, seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(sample_pasture_table(50, seed=5))
    # Species never carrying clover in the real table never do here either.
    no_clover = a[a["species"].isin(["Fescue", "Lucerne", "Phalaris"])]
    assert (no_clover["Dry_Clover_g"] == 0).all()


def test_fit_calibration_structure_on_synthetic_data():
    fitted = fit_calibration(_long(sample_pasture_table(400, seed=2)))
    assert set(fitted) == set(CALIBRATION)
    assert 0.2 < fitted["height_slope"] < 1.2


@pytest.mark.skipif(not REAL_TABLE.is_file(), reason="real CSIRO table not available")
def test_baked_constants_are_the_fit_of_the_real_table():
    real = pd.read_csv(REAL_TABLE)
    assert fit_calibration(real) == CALIBRATION
    stats = calibration_stats(real)
    for t, (mean, std, median, zero) in REAL_SUMMARY["targets"].items():
        got = stats["targets"][t]
        assert got["mean"] == pytest.approx(mean, abs=0.01)
        assert got["std"] == pytest.approx(std, abs=0.01)
        assert got["median"] == pytest.approx(median, abs=0.01)
        assert got["zero_fraction"] == pytest.approx(zero, abs=0.001)
    text = calibration_report(real, _long(sample_pasture_table(50, seed=0)))
    assert "| images | 357 | 50 |" in text


# --------------------------------------------------------------------------- pixels


def _render(green, dead=0.0, clover=0.0, height=5.0, seed=0, size=(64, 128), **kw):
    return render_pasture(
        green, dead, clover, height, 9, "Vic", size=size, rng=numpy_rng(seed), **kw
    )


def test_cover_grows_and_saturates_with_biomass():
    covers = [_render(g)[1].cover for g in (2.0, 20.0, 80.0, 200.0)]
    assert covers == sorted(covers)
    assert covers[0] < 0.3 and covers[-1] > 0.9
    assert covers[3] - covers[2] < covers[1] - covers[0]  # diminishing returns


def test_components_have_their_own_colours():
    def mean_rgb(**kw):
        return _render(size=(64, 128), **kw)[0].reshape(-1, 3).mean(0)

    green = mean_rgb(green=150.0)
    dead = mean_rgb(green=0.0, dead=150.0)
    clover = mean_rgb(green=0.0, clover=150.0)
    assert green[1] > green[0] and green[1] > green[2]  # green
    assert dead[0] > dead[2] + 20  # straw: red-yellow over blue
    assert clover[2] > green[2] + 10  # clover is bluer than grass


def test_density_is_spatially_uneven():
    img, _ = _render(green=40.0, size=(128, 256), seed=3)
    green_px = (img[..., 1] > img[..., 0] + 15).astype(float)
    tiles = green_px.reshape(2, 64, 4, 64).mean(axis=(1, 3))  # 2 x 4 tiles
    assert tiles.std() > 0.03


@pytest.mark.parametrize("state", ["Tas", "Vic", "NSW", "WA"])
@pytest.mark.parametrize("month", [2, 8])
def test_no_stamp_no_orange_on_soil_or_straw(state, month):
    for seed, (green, dead) in enumerate([(1.0, 4.0), (5.0, 120.0)]):
        img, info = render_pasture(
            green, dead, 0.0, 5.0, month, state, size=(64, 128), rng=numpy_rng(seed), strip="tape"
        )
        assert not info.has_stamp and info.strip == "tape"
        assert not date_stamp_mask(img).any()


def test_visible_fractions_track_each_component():
    _, only_dead = _render(green=0.0, dead=40.0)
    assert only_dead.visible[0] == 0 and only_dead.visible[1] == pytest.approx(only_dead.cover)
    _, more_dead = _render(green=20.0, dead=40.0)
    _, less_dead = _render(green=20.0, dead=5.0)
    assert more_dead.visible[1] > less_dead.visible[1] > 0
    assert sum(more_dead.visible) == pytest.approx(more_dead.cover)
