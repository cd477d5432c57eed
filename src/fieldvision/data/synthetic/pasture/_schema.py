"""Kaggle CSIRO Image2Biomass column names and the long -> wide table reshape."""

from __future__ import annotations

import pandas as pd

from fieldvision.schemas.biomass import COMPONENTS, TARGETS, TEST_COLUMNS, TRAIN_COLUMNS

# One source of truth for the Kaggle schema: `fieldvision.schemas.biomass`.
TARGET_NAMES = TARGETS
COMPONENT_NAMES = COMPONENTS
KAGGLE_TRAIN_COLUMNS = list(TRAIN_COLUMNS)
KAGGLE_TEST_COLUMNS = list(TEST_COLUMNS)


def _wide(long_df: pd.DataFrame) -> pd.DataFrame:
    """One row per image (Kaggle columns) with the targets as columns."""
    meta_cols = ["Sampling_Date", "State", "Species", "Pre_GSHH_NDVI", "Height_Ave_cm"]
    meta = long_df.drop_duplicates("image_path").set_index("image_path")[meta_cols]
    targets = long_df.pivot(index="image_path", columns="target_name", values="target")
    return meta.join(targets[list(TARGET_NAMES)]).reset_index()
