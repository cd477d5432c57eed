"""Bags of tiles: decoded once, tiled row-major, whole-bag flips consistent with the image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fieldvision.data.images import read_rgb, write_image
from fieldvision.data.mil import (
    BagDataset,
    BagSpec,
    BagStore,
    dihedral_tiles,
    flip_bag,
    read_class_folders,
)
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


def _dihedral_reference(tile: torch.Tensor, op: int) -> torch.Tensor:
    """One tile by hand: ``op % 4`` counter-clockwise quarter turns, then mirror if op >= 4."""
    out = tile.numpy()
    for _ in range(op % 4):
        out = np.rot90(out, 1, axes=(-2, -1))  # counter-clockwise, as torch.rot90
    if op >= 4:
        out = out[..., ::-1]
    return torch.from_numpy(out.copy())


def test_dihedral_tiles_turns_each_tile_by_its_own_op():
    tiles = torch.arange(8 * 2 * 3 * 3, dtype=torch.float32).view(8, 2, 3, 3)
    ops = np.array([0, 1, 2, 3, 4, 5, 6, 7])
    out = dihedral_tiles(tiles, ops)
    for t, op in enumerate(ops):
        torch.testing.assert_close(out[t], _dihedral_reference(tiles[t], int(op)))
    # The 8 elements are distinct (a tile with no symmetry lands 8 different ways) ...
    assert len({tuple(out[t, 0].flatten().tolist()) for t in range(8)}) == 8
    # ... every one keeps the tile's pixels, and the input is not modified.
    torch.testing.assert_close(out.flatten(1).sort().values, tiles.flatten(1).sort().values)
    torch.testing.assert_close(tiles, torch.arange(144.0).view(8, 2, 3, 3))


@pytest.mark.parametrize(
    ("shape", "ops", "message"),
    [
        ((2, 3, 4, 5), [0, 0], "Tensor\\[T, C, s, s\\]"),
        ((2, 3, 4, 4), [0], "2 integers in \\[0, 8\\)"),
        ((2, 3, 4, 4), [0, 8], "2 integers in \\[0, 8\\)"),
        ((2, 3, 4, 4), [-1, 0], "2 integers in \\[0, 8\\)"),
    ],
)
def test_dihedral_tiles_bad_input(shape, ops, message):
    with pytest.raises(ValueError, match=message):
        dihedral_tiles(torch.zeros(shape), np.array(ops))


def test_tile_augment_turns_tiles_independently_and_reproducibly(samples):
    store = BagStore(samples, BagSpec(grid=(2, 2), tile_size=8, scout_size=(16, 16)))
    plain = BagDataset(store, augment=True, seed=3)
    turned = BagDataset(store, augment=True, seed=3, tile_augment=True)
    raw = BagDataset(store)[1]["tiles"]
    changed = set()
    for epoch in range(6):
        plain.set_epoch(epoch)
        turned.set_epoch(epoch)
        a, b = plain[1], turned[1]
        torch.testing.assert_close(a["image"], b["image"])  # the scouter's view: untouched
        torch.testing.assert_close(b["tiles"], turned[1]["tiles"])  # reproducible
        for t in range(4):
            # Each served tile is some D4 image of the flipped bag's tile at that place.
            images = [_dihedral_reference(a["tiles"][t], op) for op in range(8)]
            assert any(torch.equal(b["tiles"][t], im) for im in images)
            changed.add(not torch.equal(a["tiles"][t], b["tiles"][t]))
        # Pixels are only moved within tiles, never between them.
        torch.testing.assert_close(b["tiles"].sum(), raw.sum())
    assert changed == {True, False}  # some tiles turned, some left as they were
    off = BagDataset(store, augment=False, tile_augment=True)  # augment off: no turns
    torch.testing.assert_close(off[1]["tiles"], raw)
