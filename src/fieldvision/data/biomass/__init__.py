"""Biomass data: validated Kaggle tables and the Dataset of cleaned photos.

The tables import no torch; `BiomassDataset` (a torch Dataset) is imported on first use, so
the ONNX deploy path reads the tables without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fieldvision.data.biomass.tables import check_images_exist, read_test_table, read_train_table

if TYPE_CHECKING:
    from fieldvision.data.biomass.dataset import BiomassDataset

__all__ = ["BiomassDataset", "check_images_exist", "read_test_table", "read_train_table"]


def __getattr__(name: str) -> Any:
    if name == "BiomassDataset":
        from fieldvision.data.biomass.dataset import BiomassDataset

        return BiomassDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
