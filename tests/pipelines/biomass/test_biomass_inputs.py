"""Validated biomass inputs: folds, the image cache, the input fingerprint."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from fieldvision.errors import DataError
from fieldvision.pipelines.biomass.inputs import load_test_data, load_training_data, make_dataset


def test_training_data_is_validated_and_folded_by_date(pasture, tiny):
    data = load_training_data(pasture, tiny())
    assert len(data.paths) == len(data.wide) == len(data.folds) == len(data.targets)
    dates = data.wide["sampling_date"].astype(str).to_numpy()
    for date in np.unique(dates):
        assert len(set(data.folds[dates == date])) == 1  # no date straddles two folds
    assert data.fingerprint["images"] == len(data.paths)
    again = load_training_data(pasture, tiny())
    assert again.cache.misses == 0  # every image was cleaned into the disk cache once


def test_input_fingerprint_follows_the_table(pasture, tmp_path, tiny):
    copy = tmp_path / "data"
    shutil.copytree(pasture, copy)
    before = load_training_data(copy, tiny()).fingerprint
    table = pd.read_csv(copy / "train.csv")
    table.loc[0, "target"] = table.loc[0, "target"] + 1.0
    table.to_csv(copy / "train.csv", index=False)
    assert load_training_data(copy, tiny()).fingerprint != before


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("train.folds=50", "cannot fill 50"),
        ("data.max_image_pixels=100", "max_image_pixels"),
    ],
)
def test_bad_training_inputs(pasture, tiny, tmp_path, override, match):
    cfg = tiny(override, f"data.cache_dir={tmp_path / 'cache'}")
    with pytest.raises(DataError, match=match):
        load_training_data(pasture, cfg)


def test_test_data_has_one_row_per_image(pasture, tiny):
    test = load_test_data(pasture, tiny())
    assert len(test.images) == len(test.paths) == test.table["image_id"].nunique()


def test_only_training_datasets_get_artifacts(pasture, tiny):
    """Validation, OOF and test datasets (train=False) never see pasted artifacts."""
    cfg = tiny("data.artifact_augment=1.0", "data.augment=false")
    data = load_training_data(pasture, cfg)
    paths = data.paths[:3]
    train_ds = make_dataset(paths, data.cache, {}, cfg, train=True, seed=0)
    eval_ds = make_dataset(paths, data.cache, {}, cfg, train=False)
    plain = make_dataset(paths, data.cache, {}, tiny(), train=False)
    assert train_ds.artifact_p == 1.0 and eval_ds.artifact_p == 0.0
    for i in range(3):
        assert torch.equal(eval_ds[i]["image"], plain[i]["image"])
        assert not torch.equal(train_ds[i]["image"], plain[i]["image"])


def test_exclude_drops_images_and_keeps_the_other_folds(pasture, tiny, tmp_path):
    full = load_training_data(pasture, tiny())
    ids = full.wide["image_id"].tolist()
    listing = tmp_path / "exclude.txt"
    listing.write_text(f"# noisy labels\n{ids[0]}\n\n{full.wide['image_path'][3]}\n")
    data = load_training_data(pasture, tiny(f"data.exclude={listing}"))
    assert data.excluded == [ids[0], ids[3]]
    assert data.wide["image_id"].tolist() == ids[1:3] + ids[4:]
    keep = np.ones(len(ids), bool)
    keep[[0, 3]] = False
    np.testing.assert_array_equal(data.folds, full.folds[keep])  # same folds for the rest
    assert len(data.paths) == len(data.targets) == len(ids) - 2
    assert data.fingerprint != full.fingerprint and "excluded" in data.fingerprint
    assert "excluded" not in full.fingerprint  # no exclude list: the fingerprint is as before


def test_exclude_that_empties_a_fold_is_refused(pasture, tiny, tmp_path):
    full = load_training_data(pasture, tiny())
    listing = tmp_path / "exclude.txt"
    listing.write_text("\n".join(full.wide["image_id"][full.folds == 1]) + "\n")
    with pytest.raises(DataError, match="leaves fold 1 without images"):
        load_training_data(pasture, tiny(f"data.exclude={listing}"))
