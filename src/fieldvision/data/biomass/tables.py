"""CSIRO Image2Biomass tables: validated readers of ``train.csv`` / ``test.csv``.

Kaggle ships ``train.csv`` in **long** format, one row per (image, target)::

    sample_id,image_path,Sampling_Date,State,Species,Pre_GSHH_NDVI,Height_Ave_cm,target_name,target
    ID1011485656__Dry_Clover_g,train/ID1011485656.jpg,2015/9/4,Tas,Ryegrass_Clover,0.62,4.6667,Dry_Clover_g,0.0

and ``test.csv`` with only ``sample_id,image_path,target_name`` (no metadata at test time).
`read_train_table` validates the long table and pivots it to one row per image;
`read_test_table` validates and keeps the long layout the submission needs. The schema
(target names, order, weights, columns) is `fieldvision.schemas.biomass`.

Every validation problem is a `DataError` naming the file, the column and the CSV line.
Line numbers are 1-based physical lines of the file with the header on line 1, so the first
data row is line 2 (blank lines are counted; quoted fields spanning lines would shift them).
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fieldvision.errors import DataError
from fieldvision.schemas.biomass import TARGETS, TEST_COLUMNS, TRAIN_COLUMNS

__all__ = ["check_images_exist", "read_test_table", "read_train_table"]

# Long metadata column -> wide column name.
_META_RENAME = {
    "Sampling_Date": "sampling_date",
    "State": "state",
    "Species": "species",
    "Pre_GSHH_NDVI": "ndvi",
    "Height_Ave_cm": "height",
}
_MAX_LISTED = 5  # problems quoted in one error message


# --------------------------------------------------------------------------- helpers


def _lines(rows: pd.Index | Sequence[int]) -> str:
    rows = list(rows)
    shown = ", ".join(str(int(r)) for r in rows[:_MAX_LISTED])
    more = f" and {len(rows) - _MAX_LISTED} more" if len(rows) > _MAX_LISTED else ""
    return f"{shown}{more}"


def _also(rows: pd.Index | Sequence[int]) -> str:
    """`` (N rows: lines a, b, ...)`` when more than one row has the problem."""
    rows = list(rows)
    return f" ({len(rows)} rows: lines {_lines(rows)})" if len(rows) > 1 else ""


def _closest(name: str, candidates: Sequence[str]) -> str | None:
    lowered = {c.lower(): c for c in candidates}
    if name.lower() in lowered:
        return lowered[name.lower()]
    match = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return match[0] if match else None


def _read_csv(path: str | os.PathLike[str], required: Sequence[str]) -> tuple[pd.DataFrame, Path]:
    """Read a CSV as strings; index = physical line number. Checks file, emptiness, columns."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        # skip_blank_lines=False keeps the row <-> line mapping exact; blank rows dropped below.
        frame = pd.read_csv(path, dtype=str, skip_blank_lines=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: file is empty (expected a header line)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV file: {exc}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        extra = [c for c in frame.columns if c not in required]
        parts = []
        for col in missing:
            guess = _closest(col, extra)
            parts.append(f"{col!r}" + (f" (found {guess!r}: misspelt?)" if guess else ""))
        raise DataError(
            f"{path}: missing column(s) {', '.join(parts)}",
            hint=f"expected columns: {', '.join(required)}",
        )
    frame.index = pd.RangeIndex(2, len(frame) + 2)  # file line numbers
    frame = frame.dropna(how="all")
    if frame.empty:
        raise DataError(f"{path}: no data rows (only a header)")
    for col in frame.columns:
        frame[col] = frame[col].str.strip()
    return frame, path


def _require_values(frame: pd.DataFrame, path: Path, columns: Sequence[str]) -> None:
    for col in columns:
        bad = frame.index[frame[col].isna() | (frame[col] == "")]
        if len(bad):
            raise DataError(f"{path}: column {col!r} is empty on line(s) {_lines(bad)}")


def _image_ids(image_paths: pd.Series) -> pd.Series:
    """Stem of the last path component, accepting '/' and '\\' separators."""
    names = image_paths.map(lambda p: re.split(r"[\\/]", p)[-1])
    return names.map(lambda n: n.rsplit(".", 1)[0] if "." in n else n)


def _check_targets_names(frame: pd.DataFrame, path: Path) -> None:
    bad = frame.index[~frame["target_name"].isin(TARGETS)]
    if len(bad):
        line = bad[0]
        value = frame.at[line, "target_name"]
        guess = _closest(str(value), TARGETS)
        hint = f" (did you mean {guess!r}?)" if guess else ""
        raise DataError(
            f"{path}: line {line}: unknown target_name {value!r}{hint}{_also(bad)}",
            hint=f"target_name must be one of {', '.join(TARGETS)}",
        )


def _check_sample_ids(frame: pd.DataFrame, path: Path) -> None:
    dup = frame["sample_id"].duplicated(keep=False)
    if dup.any():
        first = frame.loc[dup, "sample_id"].iloc[0]
        lines = frame.index[frame["sample_id"] == first]
        n = int(frame.loc[dup, "sample_id"].nunique())
        raise DataError(
            f"{path}: duplicate sample_id {first!r} on lines {_lines(lines)}"
            + (f" ({n} duplicated ids in total)" if n > 1 else "")
        )
    # sample_id = <image_id>__<target_name> wherever the id has that form.
    checkable = frame["sample_id"].str.contains("__", regex=False)
    expected = frame["image_id"] + "__" + frame["target_name"]
    bad = frame.index[checkable & (frame["sample_id"] != expected)]
    if len(bad):
        line = bad[0]
        raise DataError(
            f"{path}: line {line}: sample_id {frame.at[line, 'sample_id']!r} does not match "
            f"image_path/target_name (expected {expected[line]!r}){_also(bad)}"
        )


def _to_float(frame: pd.DataFrame, path: Path, col: str, *, nonneg: bool) -> pd.Series:
    raw = frame[col]
    values = pd.to_numeric(raw, errors="coerce").astype(float)
    not_number = values.isna() & raw.notna()
    if not_number.any():
        line = frame.index[not_number][0]
        raise DataError(
            f"{path}: line {line}: column {col!r} value {raw[line]!r} is not a number"
            + _also(frame.index[not_number])
        )
    missing = values.isna() | ~np.isfinite(values)
    if missing.any():
        raise DataError(
            f"{path}: column {col!r} is missing or not finite (NaN) on line(s) "
            f"{_lines(frame.index[missing])}"
        )
    if nonneg:
        neg = values < 0
        if neg.any():
            line = frame.index[neg][0]
            raise DataError(
                f"{path}: line {line}: negative {col} {values[line]:g}"
                + (f" for {frame.at[line, 'target_name']}" if "target_name" in frame else "")
                + f"{_also(frame.index[neg])}; biomass cannot be negative"
            )
    return values


def _to_dates(frame: pd.DataFrame, path: Path, col: str) -> pd.Series:
    raw = frame[col]
    # Kaggle writes 2015/9/4; ISO 2015-09-04 is accepted too.
    dates = pd.to_datetime(raw, format="%Y/%m/%d", errors="coerce")
    retry = dates.isna() & raw.notna()
    if retry.any():
        dates[retry] = pd.to_datetime(raw[retry], format="%Y-%m-%d", errors="coerce")
    bad = dates.isna()
    if bad.any():
        line = frame.index[bad][0]
        raise DataError(
            f"{path}: line {line}: cannot parse {col} {raw[line]!r} as a date "
            f"(expected YYYY/MM/DD){_also(frame.index[bad])}"
        )
    return dates


def _image_lines(frame: pd.DataFrame) -> dict[str, int]:
    """image_path -> first CSV line that lists it."""
    first = frame.reset_index(names="_line").groupby("image_path", sort=False)["_line"].min()
    return {str(k): int(v) for k, v in first.items()}


# --------------------------------------------------------------------------- tables


def read_train_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and validate a long-format ``train.csv``; return one row per image.

    Args:
        path: The CSV file.

    Returns:
        DataFrame with columns ``image_id, image_path, sampling_date (datetime64),
        month (int 1..12), state, species, ndvi, height`` and the five `TARGETS` (float),
        one row per image in order of first appearance. ``attrs["source"]`` is the file and
        ``attrs["image_lines"]`` maps image_path to the first CSV line listing it.

    Raises:
        DataError: Missing file, empty file, missing/misspelt columns, unknown target_name,
            duplicate or inconsistent sample_id, NaN / negative / non-numeric target,
            unparseable date, an image without all five targets, or metadata that differs
            between the rows of one image.
    """
    frame, path = _read_csv(path, TRAIN_COLUMNS)
    _require_values(frame, path, ["sample_id", "image_path", "target_name", "State", "Species"])
    frame["image_id"] = _image_ids(frame["image_path"])
    _check_targets_names(frame, path)
    _check_sample_ids(frame, path)
    frame["target"] = _to_float(frame, path, "target", nonneg=True)
    frame["Pre_GSHH_NDVI"] = _to_float(frame, path, "Pre_GSHH_NDVI", nonneg=False)
    frame["Height_Ave_cm"] = _to_float(frame, path, "Height_Ave_cm", nonneg=False)
    frame["Sampling_Date"] = _to_dates(frame, path, "Sampling_Date")

    # One image_id per image_path (two folders holding the same file name would collide).
    ids = frame.groupby("image_id", sort=False)["image_path"].nunique()
    clash = ids[ids > 1]
    if len(clash):
        image_id = clash.index[0]
        lines = frame.index[frame["image_id"] == image_id]
        raise DataError(
            f"{path}: image_id {image_id!r} refers to different image_path values "
            f"on lines {_lines(lines)}"
        )

    # Each (image, target) once: duplicates with distinct sample_ids slip past the id check.
    dup = frame.duplicated(["image_path", "target_name"], keep=False)
    if dup.any():
        line = frame.index[dup][0]
        same = frame.index[
            (frame["image_path"] == frame.at[line, "image_path"])
            & (frame["target_name"] == frame.at[line, "target_name"])
        ]
        raise DataError(
            f"{path}: image {frame.at[line, 'image_path']!r} has target "
            f"{frame.at[line, 'target_name']!r} more than once (lines {_lines(same)})"
        )

    # Metadata must agree across the five rows of an image.
    for col in _META_RENAME:
        n_distinct = frame.groupby("image_path", sort=False)[col].nunique()
        bad = n_distinct[n_distinct > 1]
        if len(bad):
            image = bad.index[0]
            rows = frame[frame["image_path"] == image]
            values = sorted({str(v) for v in rows[col]})
            raise DataError(
                f"{path}: image {image!r} has inconsistent {col} across its rows "
                f"(values {', '.join(values)} on lines {_lines(rows.index)})"
            )

    targets = frame.pivot(index="image_path", columns="target_name", values="target")
    order = list(dict.fromkeys(frame["image_path"]))
    targets = targets.reindex(index=order, columns=list(TARGETS))
    lines = _image_lines(frame)
    holes = targets.isna()
    if holes.to_numpy().any():
        image = holes.index[holes.any(axis=1)][0]
        absent = [t for t in TARGETS if holes.at[image, t]]
        n_images = int(holes.any(axis=1).sum())
        raise DataError(
            f"{path}: image {image!r} (first listed on line {lines[image]}) has no row for "
            f"target(s) {', '.join(absent)}; {n_images} image(s) incomplete",
            hint="every image needs all five targets: " + ", ".join(TARGETS),
        )

    meta = frame.drop_duplicates("image_path").set_index("image_path").loc[order]
    wide = pd.DataFrame(
        {
            "image_id": meta["image_id"].to_numpy(),
            "image_path": order,
            "sampling_date": meta["Sampling_Date"].to_numpy(),
            "month": meta["Sampling_Date"].dt.month.astype(int).to_numpy(),
            "state": meta["State"].to_numpy(),
            "species": meta["Species"].to_numpy(),
            "ndvi": meta["Pre_GSHH_NDVI"].to_numpy(dtype=float),
            "height": meta["Height_Ave_cm"].to_numpy(dtype=float),
        }
    )
    for t in TARGETS:
        wide[t] = targets[t].to_numpy(dtype=float)
    wide.attrs["source"] = str(path)
    wide.attrs["image_lines"] = lines
    return wide


def read_test_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and validate a long-format ``test.csv`` (metadata columns are not needed).

    Args:
        path: The CSV file.

    Returns:
        DataFrame with columns ``sample_id, image_path, target_name, image_id`` in file
        order; ``attrs`` as in `read_train_table`.

    Raises:
        DataError: Missing file, empty file, missing/misspelt columns, unknown target_name,
            duplicate or inconsistent sample_id.
    """
    frame, path = _read_csv(path, TEST_COLUMNS)
    _require_values(frame, path, list(TEST_COLUMNS))
    frame["image_id"] = _image_ids(frame["image_path"])
    _check_targets_names(frame, path)
    _check_sample_ids(frame, path)
    lines = _image_lines(frame)
    out = frame[["sample_id", "image_path", "target_name", "image_id"]].reset_index(drop=True)
    out.attrs["source"] = str(path)
    out.attrs["image_lines"] = lines
    return out


def check_images_exist(
    frame: pd.DataFrame, root: str | os.PathLike[str], split_dir: str
) -> list[Path]:
    """Check that every ``image_path`` of `frame` is a file inside ``root / split_dir``.

    Args:
        frame: A table from `read_train_table` or `read_test_table` (needs ``image_path``).
        root: The data directory the CSV's ``image_path`` values are relative to.
        split_dir: The folder the images must be in (``"train"`` or ``"test"``).

    Returns:
        Absolute image paths aligned with the rows of `frame`.

    Raises:
        DataError: Listing the first few missing or misplaced images (with the CSV line
            that lists them) and how many there are.
    """
    root = Path(root)
    source = frame.attrs.get("source", "table")
    lines = frame.attrs.get("image_lines") or {
        str(p): int(i) + 2 for i, p in zip(frame.index, frame["image_path"], strict=True)
    }
    split_root = (root / split_dir).resolve()
    resolved: dict[str, Path] = {}
    missing: list[str] = []
    outside: list[str] = []
    for rel in dict.fromkeys(str(p) for p in frame["image_path"]):
        full = (root / rel.replace("\\", "/")).resolve()
        resolved[rel] = full
        if not full.is_relative_to(split_root):
            outside.append(rel)
        elif not full.is_file():
            missing.append(rel)

    def listing(items: list[str]) -> str:
        shown = "; ".join(f"line {lines.get(r, '?')}: {r}" for r in items[:_MAX_LISTED])
        more = f"; and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else ""
        return shown + more

    if outside:
        raise DataError(
            f"{source}: {len(outside)} image_path value(s) are not inside "
            f"{split_dir}/ under {root}: {listing(outside)}"
        )
    if missing:
        raise DataError(
            f"{source}: {len(missing)} of {len(resolved)} image(s) not found under "
            f"{root / split_dir}: {listing(missing)}"
        )
    return [resolved[str(p)] for p in frame["image_path"]]
