"""Label-noise report: per-image OOF scores, the across-repeats flag, the exclude list."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fieldvision.errors import DataError
from fieldvision.metrics.regression import weighted_r2
from fieldvision.pipelines.biomass import train
from fieldvision.pipelines.biomass.fit import TrainResult
from fieldvision.pipelines.biomass.noise import (
    label_noise_table,
    read_exclude_list,
    residual_scores,
    robust_z,
    write_label_noise,
)
from fieldvision.pipelines.biomass.repeats import RepeatedResult, _write_repeats_report
from fieldvision.schemas.biomass import TARGETS


def labels(n: int = 60, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    parts = rng.gamma(2.0, 10.0, (n, 3))  # green, dead, clover
    return np.column_stack([parts, parts[:, 0] + parts[:, 2], parts.sum(1)])  # (n, 5)


def repeats_with(y: np.ndarray, outliers: dict[int, list[int]], r: int = 3) -> list[np.ndarray]:
    """R noisy OOF predictions; image i gets +80 g on every target in the repeats listed."""
    preds = []
    for k in range(r):
        rng = np.random.default_rng(100 + k)
        p = y + rng.normal(0, 3.0, y.shape)
        for i, where in outliers.items():
            if k in where:
                p[i] += 80.0
        preds.append(p)
    return preds


def test_scores_add_up_to_one_minus_weighted_r2():
    y = labels()
    pred = repeats_with(y, {}, r=1)[0]
    assert residual_scores(y, pred).mean() == pytest.approx(1 - weighted_r2(y, pred))


def test_outlier_in_every_repeat_is_flagged_one_bad_repeat_is_not():
    y = labels()
    preds = repeats_with(y, {7: [0, 1, 2], 20: [1]})
    ids = [f"ID{i}" for i in range(len(y))]
    table = label_noise_table(ids, y, preds).set_index("image_id")
    assert table.loc["ID7", "flagged"] and table.loc["ID7", "rank"] == 1
    assert not table.loc["ID20", "flagged"]  # extreme in repeat 1 only
    assert table.loc["ID20", "score_mean"] > table.loc["ID20", "score_min"]
    assert int(table["flagged"].sum()) == 1
    assert table.loc["ID7", "resid_Dry_Total_g"] == pytest.approx(80.0, abs=5)
    assert {f"score_r{k}" for k in range(3)} <= set(table.columns)


def test_a_single_run_ranks_but_flags_nothing():
    y = labels()
    table = label_noise_table([f"ID{i}" for i in range(len(y))], y, repeats_with(y, {3: [0]}, 1))
    assert table["image_id"].iloc[0] == "ID3" and not table["flagged"].any()


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1.0, 2.0, 3.0, 4.0, 100.0], [-1.349, -0.674, 0.0, 0.674, 65.42]),
        ([5.0, 5.0, 5.0, 5.0, 9.0], [0.0, 0.0, 0.0, 0.0, 3.99]),  # MAD 0: mean abs dev
        ([2.0, 2.0, 2.0], [0.0, 0.0, 0.0]),
    ],
    ids=["outlier", "mad-zero", "constant"],
)
def test_robust_z(values, expected):
    np.testing.assert_allclose(robust_z(np.array(values)), expected, atol=0.01)


# --------------------------------------------------------------------------- exclude list


@pytest.fixture
def wide() -> pd.DataFrame:
    ids = ["ID1", "ID2", "ID3", "ID4"]
    return pd.DataFrame({"image_id": ids, "image_path": [f"train/{i}.jpg" for i in ids]})


@pytest.mark.parametrize(
    ("text", "excluded"),
    [
        ("ID2\nID4\n", [1, 3]),
        ("# noisy\n\ntrain/ID1.jpg\n/somewhere/else/train/ID3.jpg\n", [0, 2]),
        ("ID2\nID2\n", [1]),
        ("image_id,note\nID4,x\n", [3]),
        ("image_path\ntrain/ID3.jpg\n", [2]),
        ("", []),
    ],
    ids=["ids", "paths", "duplicates", "csv", "csv-paths", "empty"],
)
def test_exclude_formats(tmp_path, wide, text, excluded):
    path = tmp_path / "exclude.txt"
    path.write_text(text)
    assert np.flatnonzero(read_exclude_list(path, wide)).tolist() == excluded


def test_label_noise_csv_is_an_exclude_list_of_its_flagged_rows(tmp_path, wide):
    y = labels(4)
    table = label_noise_table(wide["image_id"], y, [y + 1.0, y + 2.0])
    table["flagged"] = table["image_id"].isin(["ID3"])
    path = write_label_noise(tmp_path, table)
    assert np.flatnonzero(read_exclude_list(path, wide)).tolist() == [2]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (None, "exclude file not found"),
        ("ID1\nID9\nID8\n", "line 2: 'ID9' is not an image"),
        ("image_name,score\nID1,3\n", "needs an image_id or image_path column"),
        ("image_id,flagged\nID1,maybe\n", "line 2: column flagged must be true/false"),
        (b"\xff\xfe\x00bad", "not UTF-8"),
    ],
    ids=["missing", "unknown-id", "no-id-column", "bad-flag", "binary"],
)
def test_bad_exclude_files(tmp_path, wide, text, match):
    path = tmp_path / "exclude.csv"
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    with pytest.raises(DataError, match=match) as err:
        read_exclude_list(path, wide)
    assert str(path) in str(err.value)


# --------------------------------------------------------------------------- pipeline


def fake_run(folder: Path, ids: list[str], y: np.ndarray, pred: np.ndarray) -> TrainResult:
    folder.mkdir(parents=True)
    frame = pd.DataFrame(y, columns=list(TARGETS))
    frame.insert(0, "image_id", ids)
    for j, t in enumerate(TARGETS):
        frame[f"pred_{t}"] = pred[:, j]
    frame.to_csv(folder / "oof_wide.csv", index=False)
    r2 = weighted_r2(y, pred)
    return TrainResult(folder, r2, r2, {}, [r2], 1.0, oof_r2_fold_best=r2)


def test_repeats_write_the_flagged_list_and_a_report(tmp_path):
    y = labels(40)
    ids = [f"ID{i}" for i in range(40)]
    preds = repeats_with(y, {5: [0, 1, 2], 9: [2]})
    # Repeat 1 lists its images in another order: rows are aligned by image id.
    order = np.arange(40)[::-1]
    runs = [
        fake_run(tmp_path / "repeat0", ids, y, preds[0]),
        fake_run(tmp_path / "repeat1", [ids[i] for i in order], y[order], preds[1][order]),
        fake_run(tmp_path / "repeat2", ids, y, preds[2]),
    ]
    _write_repeats_report(tmp_path, RepeatedResult(runs, [0, 1, 2]))
    table = pd.read_csv(tmp_path / "label_noise.csv")
    assert table.loc[table["flagged"], "image_id"].tolist() == ["ID5"]
    report = (tmp_path / "repeats.md").read_text()
    assert "## Label noise" in report and "1 of 40 images flagged" in report
    assert "ID5" in report


def test_tiny_training_without_excluded_images(pasture, tmp_path, tiny):
    ids = pd.read_csv(pasture / "train.csv")["sample_id"].str.split("__").str[0].unique()
    listing = tmp_path / "noisy.txt"
    listing.write_text(f"{ids[0]}\ntrain/{ids[1]}.jpg\n")
    out = tmp_path / "run"
    cfg = tiny(f"data.exclude={listing}", "phase2.use_film=false", "phase1.enabled=false")
    result = train(pasture, out, cfg)
    assert result.extra["n_excluded"] == 2
    oof = pd.read_csv(out / "oof_wide.csv")
    assert len(oof) == len(ids) - 2 and not set(ids[:2]) & set(oof["image_id"])
    assert not set(ids[:2]) & set(pd.read_csv(out / "folds.csv")["image_id"])
    metrics = json.loads((out / "metrics.json").read_text())["fit"]
    assert metrics["n_excluded"] == 2 and metrics["n_images"] == len(ids) - 2
    noise = pd.read_csv(out / "label_noise.csv")
    assert len(noise) == len(ids) - 2 and not noise["flagged"].any()
    report = (out / "report.md").read_text()
    assert "images excluded" in report and "## Label noise (ranking)" in report


def test_unknown_excluded_id_fails_before_anything_is_written(pasture, tmp_path, tiny):
    listing = tmp_path / "noisy.txt"
    listing.write_text("IDnot-there\n")
    out = tmp_path / "run"
    with pytest.raises(DataError, match="IDnot-there"):
        train(pasture, out, tiny(f"data.exclude={listing}"))
    assert not out.exists()
