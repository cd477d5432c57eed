"""MIL readers: class folders, CSV with groups / masks / boxes, table-driven bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fieldvision.data.images import write_image
from fieldvision.data.mil import MILSamples, read_class_folders, read_mil_csv, read_mil_data
from fieldvision.errors import DataError


def _img(path: Path, size: int = 32) -> Path:
    return write_image(path, np.full((size, size, 3), 128, np.uint8))


@pytest.fixture()
def folders(tmp_path: Path) -> Path:
    for cls in ("healthy", "blast"):
        for i in range(3):
            _img(tmp_path / "data" / cls / f"{i}.png")
    return tmp_path / "data"


@pytest.fixture()
def table(tmp_path: Path) -> Path:
    root = tmp_path / "csv"
    for i in range(4):
        _img(root / "images" / f"{i}.png")
    _img(root / "masks" / "1.png")
    (root / "boxes").mkdir()
    (root / "boxes" / "3.txt").write_text("1 2 5 6 1\n")
    (root / "labels.csv").write_text(
        "image,label,group,mask,boxes\n"
        "images/0.png,ok,g0,,\n"
        "images/1.png,defect,g0,masks/1.png,\n"
        "images/2.png,ok,g1,,\n"
        "images/3.png,defect,g1,,boxes/3.txt\n"
    )
    return root / "labels.csv"


def test_class_folders(folders):
    s = read_class_folders(folders)
    assert s.classes == ("blast", "healthy") and len(s) == 6
    assert s.names[0] == "blast/0.png" and s.groups is None and s.masks is None
    np.testing.assert_array_equal(s.label_ids(s.classes), [0, 0, 0, 1, 1, 1])


def test_csv_with_groups_masks_and_boxes(table):
    s = read_mil_data(table.parent)  # a folder holding labels.csv
    assert s.groups == ("g0", "g0", "g1", "g1")
    assert s.masks[0] is None and s.masks[1].name == "1.png"
    assert s.boxes[3].name == "3.txt" and s.boxes[0] is None
    assert s.has_localisation(1) and s.has_localisation(3) and not s.has_localisation(0)
    sub = s.subset([3, 1])
    assert sub.names == ("images/3.png", "images/1.png") and sub.groups == ("g1", "g0")


def test_unlabelled_flat_folder(tmp_path):
    for i in range(2):
        _img(tmp_path / "flat" / f"{i}.png")
    s = read_mil_data(tmp_path / "flat")
    assert s.labels is None and s.classes == () and len(s) == 2
    with pytest.raises(DataError, match="no labels"):
        s.label_ids(("a", "b"))


def _rewrite(table: Path, old: str, new: str) -> None:
    table.write_text(table.read_text().replace(old, new))


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda t: _rewrite(t, "images/2.png,ok", "../../x.png,ok"), "outside"),
        (lambda t: _rewrite(t, "images/2.png,ok", "images/9.png,ok"), "not found"),
        (lambda t: _rewrite(t, "images/2.png,ok,g1", "images/2.png,,g1"), "empty 'label'"),
        (lambda t: _rewrite(t, "masks/1.png", "masks/nope.png"), "not found"),
        (lambda t: _rewrite(t, "boxes/3.txt", "../../etc/passwd"), "outside"),
        (lambda t: _rewrite(t, "images/1.png", "images/0.png"), "duplicate"),
        (lambda t: t.write_text("image,label\n"), "no data rows"),
        (lambda t: t.write_text("picture,label\nimages/0.png,ok\n"), "missing column"),
    ],
    ids=[
        "escaping-name",
        "missing-image",
        "empty-label",
        "missing-mask",
        "escaping-boxes",
        "duplicate",
        "header-only",
        "no-image-column",
    ],
)
def test_bad_csv(table, edit, match):
    edit(table)
    with pytest.raises(DataError, match=match):
        read_mil_csv(table)


def test_empty_class_folder_and_missing_root(folders, tmp_path):
    (folders / "empty").mkdir()
    with pytest.raises(DataError, match="contain no images: empty"):
        read_class_folders(folders)
    with pytest.raises(DataError, match="not found"):
        read_class_folders(tmp_path / "nope")
    with pytest.raises(DataError, match="no such file"):
        read_mil_data(tmp_path / "nope")


def test_label_ids_refuses_labels_outside_the_run(folders):
    s = read_class_folders(folders)
    with pytest.raises(DataError, match="'healthy'.*not classes of the run"):
        s.label_ids(("blast", "spot"))
    assert isinstance(s, MILSamples)
