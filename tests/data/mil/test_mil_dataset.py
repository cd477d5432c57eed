"""Bags of tiles: decoded once, tiled row-major, whole-bag flips consistent with the image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fieldvision.data.images import read_rgb, write_image
from fieldvision.data.mil import BagDataset, BagSpec, BagStore, flip_bag, read_class_folders
from fieldvision.errors import DataError
from fieldvision.ops.glance import cut_tiles, tile_boxes


@pytest.fixture()
def samples(tmp_path: Path):
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        for i in range(2):
            write_image(tmp_path / cls / f"{i}.png", rng.integers(0, 255, (64, 96, 3), np.uint8))
    return read_class_folders(tmp_path)


def test_bags_are_decoded_once_and_tiled_row_major(samples):
    calls = []

    def reader(path):
        calls.append(path)
        return read_rgb(path)

    store = BagStore(samples, BagSpec(grid=(2, 3), tile_size=16, scout_size=(24, 24)),
                     reader=reader)  # fmt: skip
    store.prepare()
    bag = store.bag(0)
    assert bag.tiles.shape == (6, 3, 16, 16) and bag.tiles.dtype == torch.uint8
    assert bag.image.shape == (3, 24, 24) and bag.size == (64, 96)
    np.testing.assert_array_equal(bag.boxes, tile_boxes(64, 96, 2, 3))
    store.bag(0)
    BagDataset(store)[1]
    assert len(calls) == len(samples)  # every file read exactly once
    image = torch.from_numpy(read_rgb(samples.paths[0])).permute(2, 0, 1).float() / 255
    expected = cut_tiles(image, bag.boxes, 16)
    torch.testing.assert_close(bag.tiles.float() / 255, expected, atol=1 / 255, rtol=0)


def test_too_small_images_and_input_size(samples):
    with pytest.raises(DataError, match="too small for a 8×8 grid"):
        BagStore(samples, BagSpec(grid=(8, 8), min_tile_px=16)).bag(0)
    store = BagStore(samples, BagSpec(grid=(2, 2), tile_size=8, input_size=(32, 32)))
    assert store.bag(0).size == (32, 32)


def test_whole_bag_flip_equals_tiling_the_flipped_image(samples):
    store = BagStore(samples, BagSpec(grid=(2, 3), tile_size=16, scout_size=(24, 24)))
    item = BagDataset(store)[0]
    item["target"] = torch.arange(6.0).view(2, 3)
    image = torch.from_numpy(read_rgb(samples.paths[0])).permute(2, 0, 1).float() / 255
    boxes = tile_boxes(64, 96, 2, 3)
    for h, v in ((True, False), (False, True), (True, True)):
        flipped = flip_bag(item, h, v, (2, 3))
        dims = [d for d, on in ((2, h), (1, v)) if on]
        ref = cut_tiles(image.flip(dims), boxes, 16)
        torch.testing.assert_close(flipped["tiles"], ref, atol=1.5 / 255, rtol=0)
        ref_target = item["target"].flip([d - 1 for d in dims])
        torch.testing.assert_close(flipped["target"], ref_target)


def test_dataset_items_labels_augmentation_and_views(samples):
    store = BagStore(samples, BagSpec(grid=(2, 2), tile_size=8, scout_size=(16, 16)))
    labels = samples.label_ids(samples.classes)
    ds = BagDataset(store, np.array([3, 0]), labels[[3, 0]], augment=True, seed=1)
    a = ds[0]
    assert a["label"].item() == 1 and a["tiles"].shape == (4, 3, 8, 8)
    seen = set()
    for epoch in range(8):
        ds.set_epoch(epoch)
        again = ds[0]
        ds.set_epoch(epoch)
        torch.testing.assert_close(again["tiles"], ds[0]["tiles"])  # reproducible per epoch
        seen.add(again["tiles"].sum(dim=(1, 2, 3)).argmax().item())
    assert len(seen) > 1  # the flips move tiles around
    views = BagDataset(store, with_tiles=False, arrays={"target": np.zeros((4, 2, 2))})[2]
    assert "tiles" not in views and views["target"].shape == (2, 2) and views["label"] == -1
    with pytest.raises(ValueError, match="array 'x' has 3 rows"):
        BagDataset(store, arrays={"x": np.zeros(3)})
