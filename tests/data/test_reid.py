"""Re-ID readers, validation errors, splits, dataset and embedding files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from fieldvision.data.images import write_image
from fieldvision.data.reid import (
    EmbeddingSet,
    ReIDDataset,
    check_images,
    closed_set_queries,
    closed_set_split,
    detect_layout,
    load_embeddings,
    open_set_split,
    read_identity_csv,
    read_identity_folders,
    read_image_list,
    read_kaggle,
    read_pairs,
    save_embeddings,
)
from fieldvision.data.transforms import TrainTransform
from fieldvision.errors import DataError


def _img(path: Path, value: int = 100, alpha: bool = True) -> None:
    arr = np.full((8, 8, 4 if alpha else 3), value, np.uint8)
    if alpha:
        arr[..., 3] = 0
        arr[2:6, 2:6, 3] = 255
    write_image(path, arr)


def _kaggle(root: Path, nested: bool = False) -> Path:
    train_dir = root / "train" / "train" if nested else root / "train"
    test_dir = root / "test"
    rows = [(f"t{i}.png", f"id{i % 3}") for i in range(7)]
    for i, (name, _) in enumerate(rows):
        _img(train_dir / name, 10 * i)
    pd.DataFrame(rows, columns=["filename", "ground_truth"]).to_csv(root / "train.csv", index=False)
    names = ["q0.png", "q1.png", "q2.png"]
    for name in names:
        _img(test_dir / name)
    pairs = [
        (f"r{k}", a, b) for k, (a, b) in enumerate((a, b) for a in names for b in names if a != b)
    ]
    pd.DataFrame(pairs, columns=["row_id", "query_image", "gallery_image"]).to_csv(
        root / "test.csv", index=False
    )
    pd.DataFrame({"filename": names, "ground_truth": ["id0", "id0", "id1"]}).to_csv(
        root / "test_truth.csv", index=False
    )
    return root


# --------------------------------------------------------------------------- good input


@pytest.mark.parametrize("nested", [False, True])
def test_read_kaggle(tmp_path, nested):
    kag = read_kaggle(_kaggle(tmp_path, nested))
    assert len(kag.train) == 7 and kag.train.labelled
    assert kag.train.paths[0].parent.name == "train"
    assert kag.test is not None and kag.test.names == ("q0.png", "q1.png", "q2.png")
    assert kag.test.identities == ("id0", "id0", "id1")
    assert list(kag.pairs.columns) == ["row_id", "query_image", "gallery_image"]
    assert len(kag.pairs) == 6
    assert kag.train.origins[2] == "train.csv row 3 (line 4)"
    assert detect_layout(tmp_path) == "kaggle"


def test_kaggle_without_test_and_custom_columns(tmp_path):
    _img(tmp_path / "imgs" / "a.png")
    _img(tmp_path / "imgs" / "b.png")
    pd.DataFrame({"img": ["a.png", "b.png"], "animal": ["x", "x"]}).to_csv(
        tmp_path / "labels.csv", index=False
    )
    kag = read_kaggle(tmp_path, "labels.csv", "imgs", image_column="img", identity_column="animal")
    assert kag.test is None and kag.pairs is None and kag.train.identities == ("x", "x")
    with pytest.raises(DataError, match="test.csv: file not found"):
        read_kaggle(tmp_path, "labels.csv", "imgs", image_column="img",
                    identity_column="animal", require_test=True)  # fmt: skip


def test_read_identity_folders_and_image_lists(tmp_path):
    for ident, n in (("b", 2), ("a", 3)):
        for i in range(n):
            _img(tmp_path / "ids" / ident / f"{i}.jpg", alpha=False)
    (tmp_path / "ids" / "a" / "notes.txt").write_text("ignored")
    s = read_identity_folders(tmp_path / "ids")
    assert s.names[:3] == ("a/0.jpg", "a/1.jpg", "a/2.jpg")
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


def test_check_images_reports_alpha(tmp_path):
    _img(tmp_path / "a.png", alpha=True)
    _img(tmp_path / "b.png", alpha=False)
    s = read_image_list(tmp_path)
    assert check_images(s).tolist() == [True, False]


# --------------------------------------------------------------------------- bad input


def _csv(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


def _bad_missing_column(tmp: Path):
    _img(tmp / "a.png")
    return lambda: read_identity_csv(_csv(tmp / "l.csv", pd.DataFrame({"filename": ["a.png"]})))


def _bad_empty_cell(tmp: Path):
    _img(tmp / "a.png")
    frame = pd.DataFrame({"filename": ["a.png", "a.png"], "ground_truth": ["x", ""]})
    return lambda: read_identity_csv(_csv(tmp / "l.csv", frame))


def _bad_duplicates(tmp: Path):
    _img(tmp / "a.png")
    frame = pd.DataFrame({"filename": ["a.png", "a.png"], "ground_truth": ["x", "y"]})
    return lambda: read_identity_csv(_csv(tmp / "l.csv", frame))


def _bad_missing_image(tmp: Path):
    _img(tmp / "a.png")
    frame = pd.DataFrame({"filename": ["a.png", "gone.png"], "ground_truth": ["x", "y"]})
    return lambda: read_identity_csv(_csv(tmp / "l.csv", frame))


def _bad_no_csv(tmp: Path):
    return lambda: read_identity_csv(tmp / "nope.csv")


def _bad_not_csv(tmp: Path):
    (tmp / "l.csv").write_bytes(b"\xff\xfe\x00garbage\x00\xff")
    return lambda: read_identity_csv(tmp / "l.csv")


def _bad_empty_folder(tmp: Path):
    _img(tmp / "ids" / "a" / "0.png")
    (tmp / "ids" / "empty_animal").mkdir()
    return lambda: read_identity_folders(tmp / "ids")


def _bad_no_folders(tmp: Path):
    (tmp / "ids").mkdir()
    return lambda: read_identity_folders(tmp / "ids")


def _bad_unknown_pair_image(tmp: Path):
    _kaggle(tmp)
    frame = pd.read_csv(tmp / "test.csv")
    frame.loc[4, "gallery_image"] = "ghost.png"
    frame.to_csv(tmp / "test.csv", index=False)
    return lambda: read_kaggle(tmp)


def _bad_pairs_unknown_known(tmp: Path):
    frame = pd.DataFrame({"row_id": [1, 2], "query_image": ["a", "b"], "gallery_image": ["b", "c"]})
    return lambda: read_pairs(_csv(tmp / "p.csv", frame), known_images={"a", "b"})


def _bad_duplicate_row_id(tmp: Path):
    frame = pd.DataFrame({"row_id": [1, 1], "query_image": ["a", "b"], "gallery_image": ["b", "a"]})
    return lambda: read_pairs(_csv(tmp / "p.csv", frame))


def _bad_corrupt_image(tmp: Path):
    _img(tmp / "a.png")
    (tmp / "b.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    frame = pd.DataFrame({"filename": ["a.png", "b.png"], "ground_truth": ["x", "x"]})
    samples = read_identity_csv(_csv(tmp / "l.csv", frame))
    return lambda: check_images(samples)


def _bad_truth_missing_image(tmp: Path):
    _kaggle(tmp)
    pd.DataFrame({"filename": ["q0.png"], "ground_truth": ["id0"]}).to_csv(
        tmp / "test_truth.csv", index=False
    )
    return lambda: read_kaggle(tmp)


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
    (_bad_unknown_pair_image, ["test.csv", "not found", "ghost.png"]),
    (_bad_pairs_unknown_known, ["p.csv", "unknown image", "row 2", "'c'"]),
    (_bad_duplicate_row_id, ["duplicate 'row_id'", "row 1", "row 2"]),
    (_bad_corrupt_image, ["l.csv row 2 (line 3)", "b.png"]),
    (_bad_truth_missing_image, ["test_truth.csv", "no identity", "q1.png"]),
]


@pytest.mark.parametrize(("build", "fragments"), BAD_INPUT, ids=[b.__name__ for b, _ in BAD_INPUT])
def test_bad_input_names_file_and_row(tmp_path, build, fragments):
    call = build(tmp_path)
    with pytest.raises(DataError) as info:
        call()
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))


# --------------------------------------------------------------------------- queries, splits

IDS = ["a"] * 6 + ["b"] * 3 + ["c"] * 2 + ["d"]  # 'd' has a single image


def test_closed_set_queries_report_singletons():
    mask, report = closed_set_queries(IDS)
    assert mask.tolist() == [True] * 11 + [False]
    assert report.identities == ("d",) and report.n_excluded == 1
    assert (
        "single image" in report.message and "'d'" not in report.message and "d" in report.message
    )
    assert closed_set_queries(["a", "a"])[1].message == ""


def test_closed_set_split_is_stratified():
    split = closed_set_split(IDS, 0.3, seed=0)
    ids = np.array(IDS)
    assert split.protocol == "closed"
    assert sorted(np.concatenate([split.train, split.heldout]).tolist()) == list(range(12))
    for ident in "abc":
        assert (ids[split.train] == ident).sum() >= 1  # a training image for every identity
        assert (ids[split.heldout] == ident).sum() >= 1  # and at least one query
    assert "d" not in set(ids[split.heldout])  # singletons stay in training
    np.testing.assert_array_equal(closed_set_split(IDS, 0.3, 0).heldout, split.heldout)
    with pytest.raises(DataError, match="no identity has two"):
        closed_set_split(["a", "b"], 0.3)
    with pytest.raises(DataError, match="fraction"):
        closed_set_split(IDS, 1.5)


def test_open_set_split_holds_out_identities():
    split = open_set_split(IDS, 0.5, seed=1)
    ids = np.array(IDS)
    held, train = set(ids[split.heldout]), set(ids[split.train])
    assert held and not held & train and len(train) >= 2
    assert "d" not in held  # held-out identities need two images to be queries
    with pytest.raises(DataError, match="at least 3 identities"):
        open_set_split(["a", "a", "b"], 0.5)


# --------------------------------------------------------------------------- dataset


def test_dataset_items(tmp_path):
    for i in range(4):
        _img(tmp_path / f"{i}.png", 40 * i)
    paths = sorted(tmp_path.glob("*.png"))
    ds = ReIDDataset(paths, [0, 0, 1, 1], TrainTransform((16, 16)), with_mask=True, seed=3)
    item = ds[1]
    assert set(item) == {"image", "mask", "label", "index"}
    assert item["image"].shape == (3, 16, 16) and item["mask"].shape == (1, 16, 16)
    assert item["label"].dtype == torch.int64 and item["label"].item() == 0 and item["index"] == 1
    # Same epoch, fresh dataset: the same augmentation; another epoch: a different one.
    again = ReIDDataset(paths, [0, 0, 1, 1], TrainTransform((16, 16)), with_mask=True, seed=3)
    assert torch.equal(again[1]["image"], item["image"])
    again.set_epoch(1)
    assert not torch.equal(again[1]["image"], item["image"])
    plain = ReIDDataset(paths)
    assert set(plain[0]) == {"image", "label", "index"} and plain[0]["label"].item() == -1
    assert plain[0]["image"].shape == (3, 8, 8)
    with pytest.raises(ValueError):
        ReIDDataset(paths, [0])


# --------------------------------------------------------------------------- embeddings files


def test_embeddings_roundtrip(tmp_path):
    emb = np.eye(3, 4, dtype=np.float32)
    path = save_embeddings(
        tmp_path / "e.npz", EmbeddingSet(emb, ("a", "b", "c"), ("x", "x", "y"), {"tta": True})
    )
    back = load_embeddings(path)
    np.testing.assert_array_equal(back.embeddings, emb)
    assert back.names == ("a", "b", "c") and back.identities == ("x", "x", "y")
    assert back.meta == {"tta": True} and back.dim == 4 and back.index_of()["c"] == 2
    save_embeddings(tmp_path / "n.npz", EmbeddingSet(emb, ("a", "b", "c")))
    assert load_embeddings(tmp_path / "n.npz").identities is None


@pytest.mark.parametrize(
    ("arrays", "fragment"),
    [
        ({"names": np.array(["a"])}, "missing array 'embeddings'"),
        ({"embeddings": np.zeros((2, 3)), "names": np.array(["a"])}, "2 embeddings but 1 names"),
        ({"embeddings": np.zeros(3), "names": np.array(["a"])}, "(N, D)"),
        ({"embeddings": np.full((1, 2), np.nan), "names": np.array(["a"])}, "NaN"),
        ({"embeddings": np.zeros((2, 2)), "names": np.array(["a", "a"])}, "duplicate"),
        (
            {
                "embeddings": np.zeros((1, 2)),
                "names": np.array(["a"]),
                "identities": np.array(["x", "y"]),
            },
            "1 names but 2 identities",
        ),
    ],
)
def test_bad_embeddings_files(tmp_path, arrays, fragment):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match="bad.npz") as info:
        load_embeddings(path)
    assert fragment in str(info.value)


def test_unreadable_embeddings_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_embeddings(tmp_path / "none.npz")
    (tmp_path / "x.npz").write_text("hello")
    with pytest.raises(DataError, match="not a readable"):
        load_embeddings(tmp_path / "x.npz")
