"""Multiple-instance data: image-level labels, bags of tiles, localisation ground truth.

Files: `samples` (the `MILSamples` container), `readers` (class folders, CSV with optional
group / mask / boxes columns), `dataset` (`BagStore` decoding each image once into a bag of
tiles, `BagDataset`). The readers import no torch; the `dataset` names are imported on
first use, so the ONNX deploy path lists images without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fieldvision.data.mil.readers import read_class_folders, read_mil_csv, read_mil_data
from fieldvision.data.mil.samples import MILSamples

if TYPE_CHECKING:
    from fieldvision.data.mil.dataset import (
        Bag,
        BagDataset,
        BagSpec,
        BagStore,
        dihedral_tiles,
        flip_bag,
    )

__all__ = [
    "Bag",
    "BagDataset",
    "BagSpec",
    "BagStore",
    "MILSamples",
    "dihedral_tiles",
    "flip_bag",
    "read_class_folders",
    "read_mil_csv",
    "read_mil_data",
]

_DATASET = frozenset({"Bag", "BagDataset", "BagSpec", "BagStore", "dihedral_tiles", "flip_bag"})


def __getattr__(name: str) -> Any:
    if name in _DATASET:
        from fieldvision.data.mil import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
