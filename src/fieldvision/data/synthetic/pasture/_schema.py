"""Kaggle CSIRO Image2Biomass column names and the long -> wide table reshape."""

from __future__ import annotations

import pandas as pd

TARGET_NAMES = ("Dry_Green_g", "Dry_Dead_g", "Dry_Clover_g", "GDM_g", "Dry_Total_g")
COMPONENT_NAMES = TARGET_NAMES[:3]
KAGGLE_TRAIN_COLUMNS = [
    "sample_id",
    "image_path",
    "Sampling_Date",
    "State",
    "Species",
    "Pre_GSHH_NDVI",
    "Height_Ave_cm",
    "target_name",
    "target",
]
KAGGLE_TEST_COLUMNS = ["sample_id", "image_path", "target_name"]


def _wide(long_df: pd.DataFrame) -> pd.DataFrame:
    """One row per image (Kaggle columns) with the targets as columns."""
    meta_cols = ["Sampling_Date", "State", "Species", "Pre_GSHH_NDVI", "Height_Ave_cm"]
    meta = long_df.drop_duplicates("image_path").set_index("image_path")[meta_cols]
    targets = long_df.pivot(index="image_path", columns="target_name", values="target")
    return meta.join(targets[list(TARGET_NAMES)]).reset_index()
