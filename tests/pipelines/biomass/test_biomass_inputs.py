"""Validated biomass inputs: folds, the image cache, the input fingerprint."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from fieldvision.errors import DataError
from fieldvision.pipelines.biomass.inputs import load_test_data, load_training_data


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
