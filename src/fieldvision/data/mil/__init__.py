"""Multiple-instance data: image-level labels, bags of tiles, localisation ground truth.

Files: `samples` (the `MILSamples` container), `readers` (class folders, CSV with optional
group / mask / boxes columns), `dataset` (`BagStore` decoding each image once into a bag of
tiles, `BagDataset`).
"""

from fieldvision.data.mil.dataset import Bag, BagDataset, BagSpec, BagStore, flip_bag
from fieldvision.data.mil.readers import read_class_folders, read_mil_csv, read_mil_data
from fieldvision.data.mil.samples import MILSamples

__all__ = [
    "Bag",
    "BagDataset",
    "BagSpec",
    "BagStore",
    "MILSamples",
    "flip_bag",
    "read_class_folders",
    "read_mil_csv",
    "read_mil_data",
]
