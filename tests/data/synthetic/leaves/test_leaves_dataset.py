"""Leaf MIL dataset writer: layout, labels.csv, groups, determinism and argument checks."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from fieldvision.data.images import read_rgb
from fieldvision.data.mil.readers import read_mil_data
from fieldvision.data.synthetic.leaves import LEAF_CLASSES, generate_leaf_dataset
from fieldvision.errors import ConfigError

_SMALL = {"n": 12, "size": 64, "classes": 3, "seed": 4, "progress": False}


def test_layout_labels_and_groups(tmp_path):
    summary = generate_leaf_dataset(tmp_path, **_SMALL)
    table = pd.read_csv(tmp_path / "labels.csv", dtype=str)
    assert list(table.columns) == ["image", "label", "group", "mask"]
    assert len(table) == summary.n_images == 12
    assert summary.classes == LEAF_CLASSES[:3] and summary.out == tmp_path
    assert summary.per_class == {"healthy": 4, "blast": 4, "brown_spot": 4}
    assert table["label"].value_counts().to_dict() == summary.per_class
    assert list(table["label"]) != [LEAF_CLASSES[i % 3] for i in range(12)]  # shuffled
    assert table["image"].str.match(r"^images/leaf_\d{4}\.png$").all()
    assert (table["mask"] == table["image"].str.replace("images/", "masks/")).all()
    assert table["group"].nunique() == 3  # default: n // 4 plots of 4 photos
    assert (table["group"].value_counts() == 4).all()
    for row in table.itertuples():
        img = read_rgb(tmp_path / row.image)
        mask = read_rgb(tmp_path / row.mask)[..., 0]
        assert img.shape == (64, 64, 3) and mask.shape == (64, 64)
        fraction = (mask > 127).mean()
        assert fraction == 0 if row.label == "healthy" else 0.002 <= fraction <= 0.03
    assert summary.lesion_fraction["healthy"] == 0.0
    assert all(0.002 <= summary.lesion_fraction[c] <= 0.03 for c in ("blast", "brown_spot"))
    meta = json.loads((tmp_path / "synth.json").read_text())
    assert meta["generator"] == "fieldvision.data.synthetic.leaves"
    assert meta["per_class"] == summary.per_class and meta["size"] == [64, 64]
    assert meta["lesion_fraction"] == summary.lesion_fraction and meta["groups"] == 3
    samples = read_mil_data(tmp_path)  # the MIL reader takes the folder as it is
    assert len(samples.paths) == 12 and samples.groups is not None and samples.masks is not None


def test_same_seed_same_bytes_other_seed_other_images(tmp_path):
    args = {**_SMALL, "n": 6, "classes": 2}
    generate_leaf_dataset(tmp_path / "a", **args)
    generate_leaf_dataset(tmp_path / "b", **args)
    generate_leaf_dataset(tmp_path / "c", **{**args, "seed": 5})
    files = sorted(
        p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file()
    )
    assert len(files) == 2 * 6 + 2
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    first = "images/leaf_0000.png"
    assert (tmp_path / "a" / first).read_bytes() != (tmp_path / "c" / first).read_bytes()


def test_groups_size_and_classes_options(tmp_path):
    summary = generate_leaf_dataset(
        tmp_path, n=8, size=(64, 96), classes=4, groups=2, distractors=0.0, progress=False
    )
    table = pd.read_csv(tmp_path / "labels.csv", dtype=str)
    assert summary.classes == LEAF_CLASSES and set(table["label"]) == set(LEAF_CLASSES)
    assert sorted(table["group"].unique()) == ["plot_000", "plot_001"]
    assert read_rgb(tmp_path / table["image"][0]).shape == (64, 96, 3)
    # Labels are drawn independently of the plots: no plot holds a single class.
    assert all(table.groupby("group")["label"].nunique() > 1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"classes": 1}, "classes must be an int in 2..4"),
        ({"classes": 5}, "classes must be an int in 2..4"),
        ({"classes": 2.0}, "classes must be an int"),
        ({"n": 5, "classes": 3}, "at least 2 images per class"),
        ({"n": 0}, "at least 2 images per class"),
        ({"size": 32}, "at least 64 px"),
        ({"size": (64, 63)}, "at least 64 px"),
        ({"size": (64,)}, "an int or an \\(H, W\\) pair"),
        ({"size": 64.0}, "an int or an \\(H, W\\) pair"),
        ({"distractors": -0.1}, "distractors must be in \\[0, 1\\]"),
        ({"distractors": 1.5}, "distractors must be in \\[0, 1\\]"),
        ({"distractors": "half"}, "distractors must be a number"),
        ({"groups": 0}, "groups must be an int in 1..n"),
        ({"groups": 13}, "groups must be an int in 1..n"),
    ],
)
def test_argument_validation(tmp_path, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        generate_leaf_dataset(tmp_path, **{**_SMALL, **kwargs})
    assert not any(tmp_path.iterdir())  # nothing written
