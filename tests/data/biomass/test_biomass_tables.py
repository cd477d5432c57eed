"""CSIRO Kaggle tables: validation with file/line/column messages, images on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fieldvision.data.biomass import check_images_exist, read_test_table, read_train_table
from fieldvision.data.images import write_image
from fieldvision.errors import DataError
from fieldvision.schemas.biomass import TARGETS, TEST_COLUMNS, TRAIN_COLUMNS, to_long

REAL_TABLE = Path(__file__).resolve().parents[4] / "shared" / "data" / "csiro" / "train.csv"
HEADER = ",".join(TRAIN_COLUMNS)

# Alphabetical target order, as in the Kaggle file.
KAGGLE_ORDER = ("Dry_Clover_g", "Dry_Dead_g", "Dry_Green_g", "Dry_Total_g", "GDM_g")


def train_lines(n_images: int = 2) -> list[str]:
    """Valid long-format rows (no header); image k has green=10+k, dead=2, clover=k."""
    rows = []
    for k in range(n_images):
        image_id = f"ID{1000000000 + k}"
        values = {"Dry_Green_g": 10.0 + k, "Dry_Dead_g": 2.0, "Dry_Clover_g": float(k)}
        values["GDM_g"] = values["Dry_Green_g"] + values["Dry_Clover_g"]
        values["Dry_Total_g"] = values["GDM_g"] + values["Dry_Dead_g"]
        for t in KAGGLE_ORDER:
            rows.append(
                f"{image_id}__{t},train/{image_id}.jpg,2015/9/{4 + k},Tas,Ryegrass_Clover,"
                f"0.6{k},4.5,{t},{values[t]}"
            )
    return rows


def write(tmp_path, lines, header=HEADER, name="train.csv"):
    path = tmp_path / name
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


def test_read_train_table_pivots_to_one_row_per_image(tmp_path):
    wide = read_train_table(write(tmp_path, train_lines(3)))
    assert list(wide.columns) == [
        "image_id",
        "image_path",
        "sampling_date",
        "month",
        "state",
        "species",
        "ndvi",
        "height",
        *TARGETS,
    ]
    assert len(wide) == 3
    assert wide["image_id"].tolist() == ["ID1000000000", "ID1000000001", "ID1000000002"]
    assert wide["image_path"].iloc[1] == "train/ID1000000001.jpg"
    assert pd.api.types.is_datetime64_any_dtype(wide["sampling_date"])
    assert wide["sampling_date"].iloc[2] == pd.Timestamp("2015-09-06")
    assert wide["month"].tolist() == [9, 9, 9]
    assert wide["ndvi"].tolist() == [0.60, 0.61, 0.62]
    assert wide["Dry_Green_g"].tolist() == [10.0, 11.0, 12.0]
    assert wide["Dry_Total_g"].tolist() == [12.0, 14.0, 16.0]
    assert wide.attrs["image_lines"]["train/ID1000000001.jpg"] == 7


@pytest.mark.skipif(not REAL_TABLE.is_file(), reason="real CSIRO table not available")
def test_read_the_real_table_if_present():
    wide = read_train_table(REAL_TABLE)
    assert len(wide) == 357
    assert set(wide["state"]) == {"Tas", "Vic", "NSW", "WA"}
    assert (wide[list(TARGETS)] >= 0).all().all()
    long = to_long(wide["image_id"], wide[list(TARGETS)].to_numpy())
    original = pd.read_csv(REAL_TABLE).set_index("sample_id")["target"]
    assert long.set_index("sample_id")["target"].sort_index().equals(original.sort_index())


def test_schema_to_long_inverts_the_pivot(tmp_path):
    path = write(tmp_path, train_lines(2))
    wide = read_train_table(path)
    long = to_long(wide["image_id"], wide[list(TARGETS)].to_numpy())
    assert list(long.columns) == ["sample_id", "target_name", "target"]
    assert len(long) == 10
    original = pd.read_csv(path).set_index("sample_id")["target"]
    assert long.set_index("sample_id")["target"].sort_index().equals(original.sort_index())


# --------------------------------------------------------------------------- bad train tables


def _replace_header(old, new):
    return lambda rows: (HEADER.replace(old, new), rows)


def _edit_row(i, old, new):
    def edit(rows):
        rows = list(rows)
        rows[i] = rows[i].replace(old, new)
        return HEADER, rows

    return edit


def _drop_row(i):
    return lambda rows: (HEADER, rows[:i] + rows[i + 1 :])


def _duplicate_row(i):
    return lambda rows: (HEADER, [*rows, rows[i]])


# Rows: 0..4 belong to image ID1000000000 (lines 2..6), 5..9 to ID1000000001 (lines 7..11);
# row 2 (line 4) is its Dry_Green_g.
BAD_TRAIN = [
    ("missing column", _replace_header(",State,", ",Region,"), ["'State'"]),
    (
        "misspelt column",
        _replace_header("Sampling_Date", "Sampling_date"),
        ["Sampling_date", "misspelt"],
    ),
    ("misspelt target col", lambda rows: (HEADER[: -len("target")] + "targ", rows), ["targ"]),
    (
        "unknown target_name",
        _edit_row(2, ",Dry_Green_g,", ",Dry_Grn_g,"),
        ["line 4", "Dry_Green_g"],
    ),
    ("duplicate sample_id", _duplicate_row(3), ["duplicate sample_id", "5", "12"]),
    ("NaN target", _edit_row(2, ",10.0", ","), ["target", "line(s) 4"]),
    ("nan literal target", _edit_row(2, ",10.0", ",nan"), ["target", "4"]),
    ("text target", _edit_row(2, ",10.0", ",ten"), ["line 4", "'ten'", "not a number"]),
    ("negative target", _edit_row(2, ",10.0", ",-1.5"), ["line 4", "negative", "Dry_Green_g"]),
    ("bad date", _edit_row(7, "2015/9/5", "2015/13/45"), ["line 9", "Sampling_Date", "2015/13/45"]),
    ("missing target", _drop_row(6), ["ID1000000001", "Dry_Dead_g", "line 7"]),
    ("inconsistent metadata", _edit_row(1, ",Tas,", ",Vic,"), ["ID1000000000", "State"]),
    (
        "sample_id mismatch",
        _edit_row(0, "ID1000000000__Dry_Clover_g", "ID1000000009__Dry_Clover_g"),
        ["line 2", "does not match"],
    ),
    ("empty image_path", _edit_row(0, "train/ID1000000000.jpg", ""), ["image_path", "2"]),
    ("NaN height", _edit_row(3, ",4.5,", ",,"), ["Height_Ave_cm", "5"]),
]


@pytest.mark.parametrize(("case", "mutate", "needles"), BAD_TRAIN, ids=[c[0] for c in BAD_TRAIN])
def test_bad_train_tables_raise_data_error(tmp_path, case, mutate, needles):
    header, rows = mutate(train_lines(2))
    path = write(tmp_path, rows, header=header)
    with pytest.raises(DataError) as exc:
        read_train_table(path)
    message = str(exc.value)
    assert str(path) in message
    for needle in needles:
        assert needle in message, f"{case}: {needle!r} not in {message!r}"


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("", "empty"),
        (HEADER + "\n", "no data rows"),
        (HEADER + "\n\n\n", "no data rows"),
    ],
    ids=["zero-byte", "header-only", "header-and-blank-lines"],
)
@pytest.mark.parametrize("reader", [read_train_table, read_test_table])
def test_empty_files(tmp_path, content, needle, reader):
    path = tmp_path / "t.csv"
    text = (
        content if reader is read_train_table else content.replace(HEADER, ",".join(TEST_COLUMNS))
    )
    path.write_text(text)
    with pytest.raises(DataError, match=needle):
        reader(path)


@pytest.mark.parametrize("reader", [read_train_table, read_test_table])
def test_missing_file(tmp_path, reader):
    with pytest.raises(DataError, match="not found"):
        reader(tmp_path / "nope.csv")


def test_line_numbers_count_blank_lines(tmp_path):
    rows = train_lines(1)
    rows[3] = rows[3].replace(",Dry_Total_g,12.0", ",Dry_Total_g,-3")
    path = tmp_path / "train.csv"
    path.write_text("\n".join([HEADER, "", *rows]) + "\n")  # line 2 is blank
    with pytest.raises(DataError, match="line 6"):
        read_train_table(path)


# --------------------------------------------------------------------------- test tables


def kaggle_test_lines(n_images=2):
    rows = []
    for k in range(n_images):
        image_id = f"ID{2000000000 + k}"
        rows += [f"{image_id}__{t},test/{image_id}.jpg,{t}" for t in KAGGLE_ORDER]
    return rows


TEST_HEADER = ",".join(TEST_COLUMNS)


def test_read_test_table_keeps_long_rows(tmp_path):
    frame = read_test_table(write(tmp_path, kaggle_test_lines(2), header=TEST_HEADER))
    assert list(frame.columns) == ["sample_id", "image_path", "target_name", "image_id"]
    assert len(frame) == 10
    assert frame["image_id"].iloc[7] == "ID2000000001"


def test_read_test_table_ignores_extra_metadata(tmp_path):
    rows = [r + ",Tas" for r in kaggle_test_lines(1)]
    frame = read_test_table(write(tmp_path, rows, header=TEST_HEADER + ",State"))
    assert list(frame.columns) == ["sample_id", "image_path", "target_name", "image_id"]


BAD_TEST = [
    ("missing column", TEST_HEADER.replace("target_name", "target"), None, ["'target_name'"]),
    ("misspelt column", TEST_HEADER.replace("image_path", "Image_Path"), None, ["Image_Path"]),
    ("unknown target", TEST_HEADER, (3, ",Dry_Total_g", ",Total"), ["line 5", "Total"]),
    ("duplicate", TEST_HEADER, "dup", ["duplicate sample_id"]),
]


@pytest.mark.parametrize(
    ("case", "header", "edit", "needles"), BAD_TEST, ids=[c[0] for c in BAD_TEST]
)
def test_bad_test_tables(tmp_path, case, header, edit, needles):
    rows = kaggle_test_lines(2)
    if edit == "dup":
        rows.append(rows[0])
    elif edit is not None:
        i, old, new = edit
        rows[i] = rows[i].replace(old, new)
    with pytest.raises(DataError) as exc:
        read_test_table(write(tmp_path, rows, header=header))
    for needle in needles:
        assert needle in str(exc.value)


# --------------------------------------------------------------------------- images on disk


def make_images(root, split, ids, h=32, w=64):
    for k, image_id in enumerate(ids):
        img = np.full((h, w, 3), 40 * k, np.uint8)
        img[:, : w // 2, 0] = 250  # left half red: flips are visible
        write_image(root / split / f"{image_id}.png", img)


def test_check_images_exist_returns_aligned_paths(tmp_path):
    rows = [r.replace(".jpg", ".png") for r in kaggle_test_lines(2)]
    frame = read_test_table(write(tmp_path, rows, header=TEST_HEADER))
    make_images(tmp_path, "test", ["ID2000000000", "ID2000000001"])
    paths = check_images_exist(frame, tmp_path, "test")
    assert len(paths) == 10 and paths[0].is_absolute() and paths[6].name == "ID2000000001.png"


def test_check_images_exist_lists_missing_images_with_lines(tmp_path):
    frame = read_test_table(write(tmp_path, kaggle_test_lines(2), header=TEST_HEADER))
    (tmp_path / "test").mkdir()
    with pytest.raises(DataError) as exc:
        check_images_exist(frame, tmp_path, "test")
    message = str(exc.value)
    assert "2 of 2 image(s) not found" in message
    assert "line 2: test/ID2000000000.jpg" in message and "line 7: test/ID2000000001.jpg" in message


def test_check_images_exist_rejects_images_outside_the_split(tmp_path):
    rows = [r.replace("test/", "train/") for r in kaggle_test_lines(1)]
    frame = read_test_table(write(tmp_path, rows, header=TEST_HEADER))
    make_images(tmp_path, "train", ["ID2000000000"])
    with pytest.raises(DataError, match="not inside test/"):
        check_images_exist(frame, tmp_path, "test")
