"""Biomass data: validated Kaggle tables and the Dataset of cleaned photos."""

from fieldvision.data.biomass.dataset import BiomassDataset
from fieldvision.data.biomass.tables import check_images_exist, read_test_table, read_train_table

__all__ = ["BiomassDataset", "check_images_exist", "read_test_table", "read_train_table"]
