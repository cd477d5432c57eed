"""The CSIRO Image2Biomass schema: targets, weights, mass balance and the file formats.

Every array, model output and table of the biomass pipeline orders its five targets as
`TARGETS` (green, dead, clover, GDM, total). Only the first three are independent: the
labels satisfy ``GDM = green + clover`` and ``total = green + dead + clover``, and
`derive_targets` builds the five from the three, for torch tensors and NumPy arrays alike.

Kaggle ships labels in **long** format, one row per (image, target), with
``sample_id = <image_id>__<target_name>``; a submission is ``sample_id,target``.
`to_long` / `to_submission` write that format from wide ``(N, 5)`` predictions and
`long_to_wide` reads it back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import pandas as pd

__all__ = [
    "COMPONENTS",
    "METADATA_COLUMNS",
    "SAMPLE_ID_SEPARATOR",
    "TARGETS",
    "TARGET_WEIGHTS",
    "TEST_COLUMNS",
    "TRAIN_COLUMNS",
    "WEIGHTS",
    "derive_targets",
    "long_to_wide",
    "sample_id",
    "submission_for",
    "to_long",
    "to_submission",
]

#: The five targets, in the order every array / model output of the package uses.
TARGETS: tuple[str, ...] = ("Dry_Green_g", "Dry_Dead_g", "Dry_Clover_g", "GDM_g", "Dry_Total_g")
#: The three independent components; GDM and total are derived from them.
COMPONENTS: tuple[str, ...] = TARGETS[:3]
#: Competition weights of the single weighted R², by target name.
TARGET_WEIGHTS: dict[str, float] = {
    "Dry_Green_g": 0.1,
    "Dry_Dead_g": 0.1,
    "Dry_Clover_g": 0.1,
    "GDM_g": 0.2,
    "Dry_Total_g": 0.5,
}
#: The same weights as a tuple in `TARGETS` order (what losses and metrics take).
WEIGHTS: tuple[float, ...] = tuple(TARGET_WEIGHTS[t] for t in TARGETS)

#: Columns of the Kaggle ``train.csv`` (long format).
TRAIN_COLUMNS: tuple[str, ...] = (
    "sample_id",
    "image_path",
    "Sampling_Date",
    "State",
    "Species",
    "Pre_GSHH_NDVI",
    "Height_Ave_cm",
    "target_name",
    "target",
)
#: Columns of the Kaggle ``test.csv``: no metadata at test time.
TEST_COLUMNS: tuple[str, ...] = ("sample_id", "image_path", "target_name")
#: Metadata columns of the wide (one row per image) training table.
METADATA_COLUMNS: tuple[str, ...] = ("sampling_date", "month", "state", "species", "ndvi", "height")
SAMPLE_ID_SEPARATOR = "__"

A = TypeVar("A")


def derive_targets(components: A) -> A:
    """The five targets from the three components, so mass balance holds exactly.

    Args:
        components: ``Tensor[..., 3]`` or ``np.ndarray[..., 3]`` ordered (green, dead, clover).

    Returns:
        The same type, ``[..., 5]`` in `TARGETS` order:
        ``(green, dead, clover, green + clover, green + dead + clover)``.
    """
    if components.shape[-1] != len(COMPONENTS):  # type: ignore[attr-defined]
        raise ValueError(
            f"components must be [..., 3] (green, dead, clover), got {tuple(components.shape)}"  # type: ignore[attr-defined]
        )
    green, dead, clover = (components[..., j] for j in range(3))  # type: ignore[index]
    gdm = green + clover
    total = gdm + dead
    parts = [green, dead, clover, gdm, total]
    if isinstance(components, np.ndarray):
        return np.stack(parts, axis=-1)  # type: ignore[return-value]
    import torch

    return torch.stack(parts, dim=-1)  # type: ignore[return-value]


def sample_id(image_id: str, target: str) -> str:
    """Kaggle's row id of one (image, target) pair: ``<image_id>__<target>``."""
    return f"{image_id}{SAMPLE_ID_SEPARATOR}{target}"


def to_long(image_ids: Sequence[str], values: np.ndarray) -> pd.DataFrame:
    """Long rows ``sample_id, target_name, target`` from wide ``(N, 5)`` values.

    Args:
        image_ids: N image ids.
        values: Array[N, 5] in `TARGETS` order.

    Returns:
        5 rows per image, image-major, targets in `TARGETS` order.

    Raises:
        ValueError: `values` is not ``(len(image_ids), 5)``.
    """
    values = np.asarray(values, dtype=float)
    ids = [str(i) for i in image_ids]
    if values.shape != (len(ids), len(TARGETS)):
        raise ValueError(f"values must be ({len(ids)}, {len(TARGETS)}), got {values.shape}")
    return pd.DataFrame(
        {
            "sample_id": [sample_id(i, t) for i in ids for t in TARGETS],
            "target_name": [t for _ in ids for t in TARGETS],
            "target": values.reshape(-1),
        }
    )


def to_submission(image_ids: Sequence[str], values: np.ndarray) -> pd.DataFrame:
    """The Kaggle submission ``sample_id,target`` of wide ``(N, 5)`` predictions."""
    return to_long(image_ids, values)[["sample_id", "target"]]


def submission_for(
    table: pd.DataFrame, image_ids: Sequence[str], values: np.ndarray
) -> pd.DataFrame:
    """The submission of a long test table: one ``sample_id,target`` row per row of `table`.

    Args:
        table: `read_test_table` rows (``sample_id, image_id, target_name``), in file order.
        image_ids: N image ids, the rows of `values`.
        values: Array[N, 5] grams in `TARGETS` order.

    Returns:
        ``sample_id, target`` in the order of `table` (the rows Kaggle asks for).
    """
    by_image = {
        sample_id(i, t): float(values[r, j])
        for r, i in enumerate(image_ids)
        for j, t in enumerate(TARGETS)
    }
    wanted = zip(table["image_id"], table["target_name"], strict=True)
    target = [by_image[sample_id(i, t)] for i, t in wanted]
    return pd.DataFrame({"sample_id": table["sample_id"].to_numpy(), "target": target})


def long_to_wide(frame: pd.DataFrame, value: str = "target") -> pd.DataFrame:
    """Wide ``image_id × TARGETS`` table from long rows keyed by ``sample_id``.

    Args:
        frame: Rows with ``sample_id`` (``<image_id>__<target>``) and a `value` column.
        value: The column holding the numbers.

    Returns:
        DataFrame indexed by image id (first-appearance order) with the `TARGETS` columns
        (NaN where a pair is absent).
    """
    parts = frame["sample_id"].astype(str).str.rsplit(SAMPLE_ID_SEPARATOR, n=1)
    long = pd.DataFrame(
        {"image_id": parts.str[0], "target_name": parts.str[1], "value": frame[value].to_numpy()}
    )
    order = list(dict.fromkeys(long["image_id"]))
    wide = long.pivot_table(
        index="image_id", columns="target_name", values="value", aggfunc="first"
    )
    return wide.reindex(index=order, columns=list(TARGETS))
