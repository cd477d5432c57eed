"""`ReIDDataset` items and the reproducibility of its augmentation."""

from __future__ import annotations

import pytest
import torch

from fieldvision.data.reid import ReIDDataset
from fieldvision.data.transforms import TrainTransform


def test_dataset_items(tmp_path, files):
    for i in range(4):
        files.image(tmp_path / f"{i}.png", 40 * i)
    paths = sorted(tmp_path.glob("*.png"))
    ds = ReIDDataset(paths, [0, 0, 1, 1], TrainTransform((16, 16)), with_mask=True, seed=3)
    item = ds[1]
    assert set(item) == {"image", "mask", "label", "index"}
    assert item["image"].shape == (3, 16, 16) and item["mask"].shape == (1, 16, 16)
    assert item["label"].dtype == torch.int64 and item["label"].item() == 0 and item["index"] == 1
    # Same epoch, fresh dataset: the same augmentation; another epoch: a different one.
    again = ReIDDataset(paths, [0, 0, 1, 1], TrainTransform((16, 16)), with_mask=True, seed=3)
    assert torch.equal(again[1]["image"], item["image"])
    again.set_epoch(1)
    assert not torch.equal(again[1]["image"], item["image"])
    plain = ReIDDataset(paths)
    assert set(plain[0]) == {"image", "label", "index"} and plain[0]["label"].item() == -1
    assert plain[0]["image"].shape == (3, 8, 8)
    with pytest.raises(ValueError):
        ReIDDataset(paths, [0])
