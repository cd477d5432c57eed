"""Re-ID readers: identity folders (flat and per camera), identity CSVs, image lists,
layout detection, image checks, image-name containment and camera columns."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from fieldvision.data.reid import (
    check_images,
    detect_layout,
    read_identity_csv,
    read_identity_folders,
    read_image_list,
)
from fieldvision.errors import DataError

# --------------------------------------------------------------------------- good input


def test_read_identity_folders_and_image_lists(tmp_path, files):
    for ident, n in (("b", 2), ("a", 3)):
        for i in range(n):
            files.image(tmp_path / "ids" / ident / f"{i}.jpg", alpha=False)
    (tmp_path / "ids" / "a" / "notes.txt").write_text("ignored")
    s = read_identity_folders(tmp_path / "ids")
    assert s.names[:3] == ("a/0.jpg", "a/1.jpg", "a/2.jpg")
    assert s.cameras is None and not s.has_cameras
    labels, classes = s.label_ids()
    assert classes == ["a", "b"] and labels.tolist() == [0, 0, 0, 1, 1]
    assert detect_layout(tmp_path / "ids") == "folders"
    flat = read_image_list(tmp_path / "ids" / "a")
    assert flat.identities is None and len(flat) == 3
    assert read_image_list(tmp_path / "ids").labelled
    pd.DataFrame({"filename": ["ids/b/0.jpg"]}).to_csv(tmp_path / "list.csv", index=False)
    listed = read_image_list(tmp_path / "list.csv")
    assert listed.identities is None and listed.paths[0].is_file()
    rooted = tmp_path / "rooted.csv"
    pd.DataFrame({"filename": ["0.jpg"], "ground_truth": ["b"]}).to_csv(rooted, index=False)
    assert read_image_list(rooted, image_root=tmp_path / "ids" / "b").identities == ("b",)


def test_identity_folders_with_camera_sub_folders(tmp_path, files):
    root = tmp_path / "ids"
    for rel in ("b/cam2/x.png", "a/cam1/y.png", "a/cam1/x.png", "a/cam3/z.png"):
        files.image(root / rel)
    (root / "a" / ".hidden").mkdir()  # hidden entries are ignored
    (root / "b" / "cam2" / "deeper").mkdir()  # so are folders below the camera folders
    s = read_identity_folders(root)
    assert s.names == ("a/cam1/x.png", "a/cam1/y.png", "a/cam3/z.png", "b/cam2/x.png")
    assert s.identities == ("a", "a", "a", "b")
    assert s.cameras == ("cam1", "cam1", "cam3", "cam2") and s.has_cameras
    assert s.paths[2] == root / "a" / "cam3" / "z.png" and s.origins == s.names
    assert read_image_list(root).cameras == s.cameras


def test_flat_identity_folder_ignores_sub_folders_without_images(tmp_path, files):
    files.image(tmp_path / "ids" / "a" / "0.png")
    (tmp_path / "ids" / "a" / "empty_sub").mkdir()
    s = read_identity_folders(tmp_path / "ids")
    assert s.names == ("a/0.png",) and s.cameras is None


def test_check_images_reports_alpha(tmp_path, files):
    files.image(tmp_path / "a.png", alpha=True)
    files.image(tmp_path / "b.png", alpha=False)
    s = read_image_list(tmp_path)
    assert check_images(s).tolist() == [True, False]


# --------------------------------------------------------------------------- camera columns

CAMERA_COLUMNS = [
    # (extra columns of the table, camera_column argument, expected cameras, error fragments)
    ({"camera": ["c1", " c2 ", "c1"]}, "camera", ("c1", "c2", "c1"), None),
    ({"site": ["s1", "s1", "s2"]}, "site", ("s1", "s1", "s2"), None),
    ({"camera": ["01", "02", "01"]}, "camera", ("01", "02", "01"), None),  # stays text
    ({}, "camera", None, None),  # column absent: no cameras
    ({"camera": ["c1", "c2", "c1"]}, None, None, None),  # cameras switched off
    ({"site": ["s1", "s1", "s2"]}, "camera", None, None),  # another column is not used
    ({"camera": ["c1", "", "c1"]}, "camera", None, ["l.csv", "empty 'camera'", "row 2 (line 3)"]),
    ({"camera": ["c1", "c1", "  "]}, "camera", None, ["empty 'camera'", "row 3 (line 4)"]),
]


@pytest.mark.parametrize(("extra", "column", "expected", "error"), CAMERA_COLUMNS)
def test_camera_column_of_csv(tmp_path, files, extra, column, expected, error):
    for name in ("a.png", "b.png", "c.png"):
        files.image(tmp_path / name)
    table = {"filename": ["a.png", "b.png", "c.png"], "ground_truth": ["x", "x", "y"], **extra}
    path = files.csv(tmp_path / "l.csv", pd.DataFrame(table))
    readers = [
        lambda: read_identity_csv(path, camera_column=column),
        lambda: read_image_list(path, camera_column=column),
    ]
    for read in readers:
        if error is None:
            s = read()
            assert s.cameras == expected and s.has_cameras is (expected is not None)
            continue
        with pytest.raises(DataError) as info:
            read()
        for fragment in error:
            assert fragment in str(info.value), (fragment, str(info.value))


def test_unlabelled_image_list_keeps_cameras(tmp_path, files):
    files.image(tmp_path / "a.png")
    path = files.csv(tmp_path / "l.csv", pd.DataFrame({"filename": ["a.png"], "camera": ["c9"]}))
    s = read_image_list(path)
    assert s.identities is None and s.cameras == ("c9",)


# --------------------------------------------------------------------------- containment

CONTAINMENT = [
    # (image name in row 3, error fragment; None: the name is accepted)
    ("../x.png", "l.csv row 3 (line 4): image name '../x.png' is outside"),
    ("a/../../x.png", "l.csv row 3 (line 4): image name 'a/../../x.png' is outside"),
    ("/etc/x.png", "l.csv row 3 (line 4): image name '/etc/x.png' is outside"),
    ("sub/../../data/ok.png", None),  # climbs out and back in: still inside
    ("sub/ok.png", None),
    ("./sub/ok.png", None),
]


@pytest.mark.parametrize(("name", "error"), CONTAINMENT)
def test_csv_image_names_must_stay_inside_the_image_folder(tmp_path, files, name, error):
    root = tmp_path / "data"
    for rel in ("a.png", "b.png", "ok.png", "sub/ok.png"):
        files.image(root / rel)
    files.image(tmp_path / "x.png")  # exists, but outside the image folder
    table = pd.DataFrame({"filename": ["a.png", "b.png", name], "ground_truth": ["p", "p", "q"]})
    path = files.csv(root / "l.csv", table)
    for read in (lambda: read_identity_csv(path), lambda: read_image_list(path)):
        if error is None:
            assert read().names[2] == name
            continue
        with pytest.raises(DataError) as info:
            read()
        assert error in str(info.value) and str(root) in str(info.value)
    # Also when the names are relative to an explicit image folder.
    if error is not None:
        with pytest.raises(DataError, match="is outside"):
            read_identity_csv(path, image_root=root / "sub")


def test_symlinked_image_inside_the_folder_is_accepted(tmp_path, files):
    # Datasets managed by git-annex or DVC link each image into a cache elsewhere.
    target = files.image(tmp_path / "cache" / "blob.png")
    (tmp_path / "data").mkdir()
    try:
        os.symlink(target, tmp_path / "data" / "a.png")
    except OSError:
        pytest.skip("symbolic links are not available")
    path = files.csv(tmp_path / "data" / "l.csv", pd.DataFrame({"filename": ["a.png"]}))
    assert read_identity_csv(path, identity_column=None).paths[0].is_file()


# --------------------------------------------------------------------------- bad input


def _bad_missing_column(tmp: Path, files):
    files.image(tmp / "a.png")
    frame = pd.DataFrame({"filename": ["a.png"]})
    return lambda: read_identity_csv(files.csv(tmp / "l.csv", frame))


def _bad_empty_cell(tmp: Path, files):
    files.image(tmp / "a.png")
    frame = pd.DataFrame({"filename": ["a.png", "a.png"], "ground_truth": ["x", ""]})
    return lambda: read_identity_csv(files.csv(tmp / "l.csv", frame))


def _bad_duplicates(tmp: Path, files):
    files.image(tmp / "a.png")
    frame = pd.DataFrame({"filename": ["a.png", "a.png"], "ground_truth": ["x", "y"]})
    return lambda: read_identity_csv(files.csv(tmp / "l.csv", frame))


def _bad_missing_image(tmp: Path, files):
    files.image(tmp / "a.png")
    frame = pd.DataFrame({"filename": ["a.png", "gone.png"], "ground_truth": ["x", "y"]})
    return lambda: read_identity_csv(files.csv(tmp / "l.csv", frame))


def _bad_no_csv(tmp: Path, files):
    return lambda: read_identity_csv(tmp / "nope.csv")


def _bad_not_csv(tmp: Path, files):
    (tmp / "l.csv").write_bytes(b"\xff\xfe\x00garbage\x00\xff")
    return lambda: read_identity_csv(tmp / "l.csv")


def _bad_empty_folder(tmp: Path, files):
    files.image(tmp / "ids" / "a" / "0.png")
    (tmp / "ids" / "empty_animal").mkdir()
    return lambda: read_identity_folders(tmp / "ids")


def _bad_no_folders(tmp: Path, files):
    (tmp / "ids").mkdir()
    return lambda: read_identity_folders(tmp / "ids")


def _bad_corrupt_image(tmp: Path, files):
    files.image(tmp / "a.png")
    (tmp / "b.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    frame = pd.DataFrame({"filename": ["a.png", "b.png"], "ground_truth": ["x", "x"]})
    samples = read_identity_csv(files.csv(tmp / "l.csv", frame))
    return lambda: check_images(samples)


def _bad_images_and_camera_folders(tmp: Path, files):
    files.image(tmp / "ids" / "a" / "0.png")
    files.image(tmp / "ids" / "a" / "cam1" / "1.png")
    files.image(tmp / "ids" / "b" / "0.png")
    return lambda: read_identity_folders(tmp / "ids")


def _bad_layouts_differ_between_identities(tmp: Path, files):
    files.image(tmp / "ids" / "a" / "0.png")
    files.image(tmp / "ids" / "b" / "cam1" / "0.png")
    return lambda: read_identity_folders(tmp / "ids")


def _bad_empty_camera_folder(tmp: Path, files):
    files.image(tmp / "ids" / "a" / "cam1" / "0.png")
    (tmp / "ids" / "a" / "cam_unused").mkdir()
    return lambda: read_identity_folders(tmp / "ids")


def _bad_no_such_list(tmp: Path, files):
    return lambda: read_image_list(tmp / "nothing")


BAD_INPUT = [
    # (case builder, message fragments that must appear)
    (_bad_missing_column, ["l.csv", "missing column", "ground_truth"]),
    (_bad_empty_cell, ["l.csv", "empty 'ground_truth'", "row 2 (line 3)"]),
    (_bad_duplicates, ["duplicate image name", "row 1", "row 2"]),
    (_bad_missing_image, ["1 of 2 images not found", "row 2 (line 3)", "gone.png"]),
    (_bad_no_csv, ["nope.csv", "not found"]),
    (_bad_not_csv, ["l.csv", "not a readable CSV"]),
    (_bad_empty_folder, ["empty_animal", "no images"]),
    (_bad_no_folders, ["no identity folders"]),
    (_bad_corrupt_image, ["l.csv row 2 (line 3)", "b.png"]),
    (_bad_images_and_camera_folders, ["1 identity folder(s)", "both images and camera", "cam1"]),
    (_bad_layouts_differ_between_identities, ["mix two layouts", "(a)", "(b)"]),
    (_bad_empty_camera_folder, ["camera folder(s) contain no images", "cam_unused"]),
    (_bad_no_such_list, ["nothing", "no such file or folder"]),
]


@pytest.mark.parametrize(("build", "fragments"), BAD_INPUT, ids=[b.__name__ for b, _ in BAD_INPUT])
def test_bad_input_names_file_and_row(tmp_path, files, build, fragments):
    call = build(tmp_path, files)
    with pytest.raises(DataError) as info:
        call()
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))
