"""Kaggle Jaguar Re-ID layout and pairs files: reading, cameras, containment, errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from fieldvision.data.reid import detect_layout, read_kaggle, read_pairs
from fieldvision.errors import DataError

# --------------------------------------------------------------------------- good input


@pytest.mark.parametrize("nested", [False, True])
def test_read_kaggle(tmp_path, files, nested):
    kag = read_kaggle(files.kaggle(tmp_path, nested))
    assert len(kag.train) == 7 and kag.train.labelled
    assert kag.train.paths[0].parent.name == "train"
    assert kag.test is not None and kag.test.names == ("q0.png", "q1.png", "q2.png")
    assert kag.test.identities == ("id0", "id0", "id1")
    assert list(kag.pairs.columns) == ["row_id", "query_image", "gallery_image"]
    assert len(kag.pairs) == 6
    assert kag.train.origins[2] == "train.csv row 3 (line 4)"
    assert kag.train.cameras is None and kag.test.cameras is None
    assert detect_layout(tmp_path) == "kaggle"


def test_kaggle_without_test_and_custom_columns(tmp_path, files):
    files.image(tmp_path / "imgs" / "a.png")
    files.image(tmp_path / "imgs" / "b.png")
    pd.DataFrame({"img": ["a.png", "b.png"], "animal": ["x", "x"]}).to_csv(
        tmp_path / "labels.csv", index=False
    )
    kag = read_kaggle(tmp_path, "labels.csv", "imgs", image_column="img", identity_column="animal")
    assert kag.test is None and kag.pairs is None and kag.train.identities == ("x", "x")
    with pytest.raises(DataError, match="test.csv: file not found"):
        read_kaggle(tmp_path, "labels.csv", "imgs", image_column="img",
                    identity_column="animal", require_test=True)  # fmt: skip


def _add_column(path: Path, column: str, values: list[str]) -> None:
    frame = pd.read_csv(path, dtype=str)
    frame[column] = values
    frame.to_csv(path, index=False)


KAGGLE_CAMERAS = [
    # (train cameras, truth cameras, camera_column, expected train / test cameras or error)
    (None, None, "camera", (None, None), None),
    (list("aabbcca"), None, "camera", (tuple("aabbcca"), None), None),
    (None, ["c2", "c1", "c2"], "camera", (None, ("c2", "c1", "c2")), None),
    (list("aabbcca"), ["c2", "c1", "c2"], None, (None, None), None),
    (list("aab" + " " + "cca"), None, "camera", None, ["train.csv", "empty 'camera'", "row 4"]),
    (None, ["c2", "", "c2"], "camera", None, ["test_truth.csv", "empty 'camera'", "row 1 "]),
]


@pytest.mark.parametrize(("train", "truth", "column", "expected", "error"), KAGGLE_CAMERAS)
def test_kaggle_cameras_from_train_and_truth_tables(
    tmp_path, files, train, truth, column, expected, error
):
    root = files.kaggle(tmp_path)
    if train is not None:
        _add_column(root / "train.csv", "camera", train)
    if truth is not None:
        # Truth rows in another order than the sorted test names: cameras follow the names.
        frame = pd.read_csv(root / "test_truth.csv", dtype=str).iloc[[1, 0, 2]]
        frame.assign(camera=[truth[1], truth[0], truth[2]]).to_csv(
            root / "test_truth.csv", index=False
        )
    if error is not None:
        with pytest.raises(DataError) as info:
            read_kaggle(root, camera_column=column)
        for fragment in error:
            assert fragment in str(info.value), (fragment, str(info.value))
        return
    kag = read_kaggle(root, camera_column=column)
    assert kag.test is not None
    assert (kag.train.cameras, kag.test.cameras) == expected
    assert kag.test.identities == ("id0", "id0", "id1")


# --------------------------------------------------------------------------- containment


def _put_name(root: Path, place: str, name: str) -> None:
    """Put image `name` into one table of a Kaggle folder (writing it when it is inside)."""
    if place == "train":
        frame = pd.read_csv(root / "train.csv", dtype=str)
        frame.loc[2, "filename"] = name  # row 3 (line 4)
        frame.to_csv(root / "train.csv", index=False)
        return
    frame = pd.read_csv(root / "test.csv", dtype=str)
    if place in ("query", "gallery"):
        frame.loc[4, f"{place}_image"] = name  # row 5 (line 6)
        frame.to_csv(root / "test.csv", index=False)
    truth = pd.read_csv(root / "test_truth.csv", dtype=str)
    truth.loc[len(truth)] = [name, "id2"]  # row 4 (line 5)
    truth.to_csv(root / "test_truth.csv", index=False)


BAD_NAMES = ["../x.png", "a/../../x.png", "/etc/x.png"]
WHERE = {
    "train": "train.csv row 3 (line 4)",
    "query": "test.csv row 5 (line 6)",
    "gallery": "test.csv row 5 (line 6)",
    "truth": "test_truth.csv row 4 (line 5)",
}
KAGGLE_CONTAINMENT = [
    # (table the name is put in, image name, error fragment; None: accepted)
    *[
        (place, name, f"{WHERE[place]}: image name {name!r} is outside")
        for place in WHERE
        for name in BAD_NAMES
    ],
    *[(place, "sub/ok.png", None) for place in WHERE],
]


@pytest.mark.parametrize(("place", "name", "error"), KAGGLE_CONTAINMENT)
def test_kaggle_image_names_must_stay_inside_their_folder(tmp_path, files, place, name, error):
    root = files.kaggle(tmp_path / "kaggle")
    files.image(tmp_path / "kaggle" / "x.png")  # exists, but outside train/ and test/
    files.image(root / ("train" if place == "train" else "test") / "sub" / "ok.png")
    _put_name(root, place, name)
    if error is None:
        kag = read_kaggle(root)
        assert kag.test is not None
        used = kag.train.names if place == "train" else kag.test.names
        assert (name in used) is (place != "truth")  # no pair uses the extra truth row
        return
    with pytest.raises(DataError) as info:
        read_kaggle(root)
    assert error in str(info.value), str(info.value)


# --------------------------------------------------------------------------- bad input


def _bad_unknown_pair_image(tmp: Path, files):
    files.kaggle(tmp)
    frame = pd.read_csv(tmp / "test.csv")
    frame.loc[4, "gallery_image"] = "ghost.png"
    frame.to_csv(tmp / "test.csv", index=False)
    return lambda: read_kaggle(tmp)


def _bad_pairs_unknown_known(tmp: Path, files):
    frame = pd.DataFrame({"row_id": [1, 2], "query_image": ["a", "b"], "gallery_image": ["b", "c"]})
    return lambda: read_pairs(files.csv(tmp / "p.csv", frame), known_images={"a", "b"})


def _bad_duplicate_row_id(tmp: Path, files):
    frame = pd.DataFrame({"row_id": [1, 1], "query_image": ["a", "b"], "gallery_image": ["b", "a"]})
    return lambda: read_pairs(files.csv(tmp / "p.csv", frame))


def _bad_truth_missing_image(tmp: Path, files):
    files.kaggle(tmp)
    pd.DataFrame({"filename": ["q0.png"], "ground_truth": ["id0"]}).to_csv(
        tmp / "test_truth.csv", index=False
    )
    return lambda: read_kaggle(tmp)


def _bad_pairs_missing_column(tmp: Path, files):
    frame = pd.DataFrame({"row_id": [1], "query_image": ["a"]})
    return lambda: read_pairs(files.csv(tmp / "p.csv", frame))


BAD_INPUT = [
    # (case builder, message fragments that must appear)
    (_bad_unknown_pair_image, ["test.csv", "not found", "ghost.png"]),
    (_bad_pairs_unknown_known, ["p.csv", "unknown image", "row 2", "'c'"]),
    (_bad_duplicate_row_id, ["duplicate 'row_id'", "row 1", "row 2"]),
    (_bad_truth_missing_image, ["test_truth.csv", "no identity", "q1.png"]),
    (_bad_pairs_missing_column, ["p.csv", "missing column", "'gallery_image'"]),
]


@pytest.mark.parametrize(("build", "fragments"), BAD_INPUT, ids=[b.__name__ for b, _ in BAD_INPUT])
def test_bad_input_names_file_and_row(tmp_path, files, build, fragments):
    call = build(tmp_path, files)
    with pytest.raises(DataError) as info:
        call()
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))
