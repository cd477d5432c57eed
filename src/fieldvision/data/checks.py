"""Checks the table readers share (re-ID, MIL): CSV tables, row labels, names, image files,
containment.

Every check raises `DataError` naming the file and row; CSV rows are counted from 1 after
the header and the file line is given too (``"train.csv row 3 (line 4)"``).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fieldvision.errors import DataError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})
MAX_LISTED = 5  # problems listed in one error message


def is_image(path: Path) -> bool:
    """True for a visible file with an image extension (`IMAGE_EXTENSIONS`)."""
    return (
        path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")
    )


def row_label(source: Path, i: int) -> str:
    """``"<file name> row <i + 1> (line <i + 2>)"`` for the 0-based data row `i`."""
    return f"{source.name} row {i + 1} (line {i + 2})"


def more_suffix(n_shown: int, total: int) -> str:
    """`` (and N more)`` when only `n_shown` of `total` problems are listed, else ``''``."""
    return "" if total <= n_shown else f" (and {total - n_shown} more)"


def check_unique(names: Sequence[str], origins: Sequence[str], source: str) -> None:
    """Raise when an image name occurs twice, naming where each copy came from.

    Raises:
        DataError: Duplicate names (up to `MAX_LISTED` listed with their origins).
    """
    counts = Counter(names)
    dups = [n for n, c in counts.items() if c > 1]
    if not dups:
        return
    details = []
    for name in dups[:MAX_LISTED]:
        where = [o for n, o in zip(names, origins, strict=True) if n == name]
        details.append(f"{name!r} ({', '.join(where)})")
    raise DataError(
        f"{source}: {len(dups)} duplicate image name(s): " + "; ".join(details),
        hint="every image must be listed once",
    )


def raise_missing(source: str, missing: Sequence[tuple[str, Path]], total: int) -> None:
    """Raise for `missing` ``(origin, path)`` images out of `total`.

    Raises:
        DataError: Always.
    """
    shown = "; ".join(f"{o}: {p}" for o, p in missing[:MAX_LISTED])
    raise DataError(
        f"{source}: {len(missing)} of {total} images not found: {shown}"
        + more_suffix(MAX_LISTED, len(missing))
    )


def read_table(path: Path, required: Sequence[str]) -> pd.DataFrame:
    """Read a CSV as strings (no NaN conversion) and check its required columns.

    Raises:
        DataError: Missing or unreadable file, or a required column is absent.
    """
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(repr(c) for c in missing)}; "
            f"found {', '.join(repr(c) for c in frame.columns)}",
            hint="set the column names in the config (data.image_column, ...)",
        )
    return frame


def check_cells(frame: pd.DataFrame, path: Path, columns: Sequence[str]) -> None:
    """Raise when a cell of one of `columns` is empty or only whitespace.

    Raises:
        DataError: Names the column and the (first `MAX_LISTED`) rows.
    """
    for col in columns:
        values = frame[col].str.strip()
        blank = np.flatnonzero((values == "").to_numpy())
        if len(blank):
            rows = ", ".join(row_label(path, int(i)) for i in blank[:MAX_LISTED])
            raise DataError(f"{path}: empty {col!r} in {len(blank)} row(s): {rows}")


def optional_column(frame: pd.DataFrame, path: Path, column: str | None) -> tuple[str, ...] | None:
    """The stripped values of `column` when the table has it, else None.

    A column that is present must be filled in every row.

    Raises:
        DataError: An empty cell in the column (names the row).
    """
    if column is None or column not in frame.columns:
        return None
    check_cells(frame, path, [column])
    return tuple(frame[column].str.strip())


def outside_root(root: Path, names: Sequence[str]) -> list[int]:
    """Indices of `names` that do not lie inside `root` once joined to it.

    ``root / name`` is normalised from ``root.resolve()`` without following links inside
    `root`, so ``..`` steps and absolute names that leave the folder are caught while an
    image that is a symbolic link into a cache elsewhere (git-annex, DVC) is still allowed.
    """
    base = root.resolve()
    return [
        i
        for i, name in enumerate(names)
        if not Path(os.path.normpath(base / name)).is_relative_to(base)
    ]


def check_inside(root: Path, names: Sequence[str], origins: Sequence[str]) -> None:
    """Refuse image names that would leave the image folder `root` (``../x``, ``/abs``).

    Args:
        root: The folder the names are joined to.
        names: Image names from a table.
        origins: Where each name came from (``"train.csv row 3 (line 4)"``).

    Raises:
        DataError: ``"<origin>: image name '<name>' is outside <root>"`` for the first bad
            name (with the count of others).
    """
    bad = outside_root(root, names)
    if bad:
        i = bad[0]
        raise DataError(
            f"{origins[i]}: image name {names[i]!r} is outside {root}" + more_suffix(1, len(bad)),
            hint="image names must be relative to the image folder (no absolute paths, "
            "no '..' out of it)",
        )
