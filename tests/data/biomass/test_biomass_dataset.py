"""The biomass Dataset: cleaned photos in [0, 1], attached arrays, seeded augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from fieldvision.data.biomass import BiomassDataset
from fieldvision.data.cache import ImageCache
from fieldvision.data.images import write_image
from fieldvision.errors import DataError
from fieldvision.ops.cleaning import CleanConfig


def make_images(root, split, ids, h=32, w=64):
    for k, image_id in enumerate(ids):
        img = np.full((h, w, 3), 40 * k, np.uint8)
        img[:, : w // 2, 0] = 250  # left half red: flips are visible
        write_image(root / split / f"{image_id}.png", img)


def test_listed_image_that_is_corrupt_fails_when_loaded(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "ID1.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    cache = ImageCache(tmp_path / "cache", CleanConfig(size=(16, 32)))
    ds = BiomassDataset([tmp_path / "train" / "ID1.jpg"], cache)
    with pytest.raises(DataError, match="ID1.jpg"):
        ds[0]


# --------------------------------------------------------------------------- dataset


@pytest.fixture
def dataset_parts(tmp_path):
    ids = ["A", "B", "C"]
    make_images(tmp_path, "train", ids)
    paths = [tmp_path / "train" / f"{i}.png" for i in ids]
    cache = ImageCache(tmp_path / "cache", CleanConfig(size=(16, 32), bottom_crop=0.0))
    targets = np.arange(15, dtype=np.float32).reshape(3, 5)
    return paths, cache, targets


def test_dataset_items(dataset_parts):
    paths, cache, targets = dataset_parts
    ds = BiomassDataset(paths, cache, arrays={"targets": targets, "month": np.array([1, 5, 9])})
    assert len(ds) == 3
    item = ds[1]
    assert item["image"].shape == (3, 16, 32) and item["image"].dtype == torch.float32
    assert item["image"].min() >= 0.0 and item["image"].max() <= 1.0
    assert item["index"] == 1
    assert torch.equal(item["targets"], torch.tensor(targets[1]))
    assert item["month"].item() == 5
    assert torch.allclose(ds[-1]["image"], ds[2]["image"])
    with pytest.raises(IndexError):
        ds[3]


def test_plain_items_are_the_cleaned_photo_in_unit_range(dataset_parts):
    # No flips, no normalisation: test-time views are made by the inference loop, and
    # models normalise inside.
    paths, cache, _ = dataset_parts
    ds = BiomassDataset(paths, cache)
    for i, path in enumerate(paths):
        expected = torch.from_numpy(np.array(cache.get(path))).permute(2, 0, 1).float() / 255
        assert torch.equal(ds[i]["image"], expected)


def test_augment_flips_and_jitters_within_unit_range(dataset_parts):
    paths, cache, _ = dataset_parts
    ds = BiomassDataset(paths, cache, augment=True, seed=0)
    red_side = set()
    for epoch in range(12):
        ds.set_epoch(epoch)
        x = ds[0]["image"]  # image 0: red left half, black right half
        assert x.min() >= 0.0 and x.max() <= 1.0
        left, right = x[0, :, :16].mean(), x[0, :, 16:].mean()
        red_side.add("left" if left > right else "right")
    assert red_side == {"left", "right"}  # horizontal flips happen, and not always


def test_augment_is_seeded_per_epoch_and_index(dataset_parts):
    paths, cache, _ = dataset_parts
    a = BiomassDataset(paths, cache, augment=True, seed=3)
    b = BiomassDataset(paths, cache, augment=True, seed=3)
    assert all(torch.equal(a[i]["image"], b[i]["image"]) for i in range(3))
    epochs = []
    for epoch in range(6):
        a.set_epoch(epoch)
        epochs.append(a[0]["image"])
    assert any(not torch.equal(epochs[0], e) for e in epochs[1:])
    a.set_epoch(0)
    assert torch.equal(a[0]["image"], epochs[0])


def test_dataset_rejects_misaligned_arrays(dataset_parts):
    paths, cache, targets = dataset_parts
    with pytest.raises(ValueError, match="2 rows for 3 paths"):
        BiomassDataset(paths, cache, arrays={"targets": targets[:2]})
    with pytest.raises(ValueError, match="reserved"):
        BiomassDataset(paths, cache, arrays={"image": targets})


def test_dataloader_batches(dataset_parts):
    paths, cache, targets = dataset_parts
    loader = DataLoader(BiomassDataset(paths, cache, arrays={"targets": targets}), batch_size=2)
    batch = next(iter(loader))
    assert batch["image"].shape == (2, 3, 16, 32)
    assert batch["targets"].shape == (2, 5)
    assert batch["index"].tolist() == [0, 1]


# --------------------------------------------------------------------------- artifacts


def test_artifact_p_zero_leaves_every_item_bit_identical(dataset_parts):
    paths, cache, _ = dataset_parts
    plain = BiomassDataset(paths, cache, augment=True, seed=4)
    off = BiomassDataset(paths, cache, augment=True, seed=4, artifact_p=0.0)
    for epoch in range(3):
        plain.set_epoch(epoch)
        off.set_epoch(epoch)
        assert all(torch.equal(plain[i]["image"], off[i]["image"]) for i in range(3))


def test_artifacts_are_pasted_seeded_and_leave_flips_alone(dataset_parts):
    paths, cache, _ = dataset_parts
    plain = BiomassDataset(paths, cache, seed=1)
    always = BiomassDataset(paths, cache, seed=1, artifact_p=1.0)
    again = BiomassDataset(paths, cache, seed=1, artifact_p=1.0)
    for i in range(3):
        changed = (always[i]["image"] != plain[i]["image"]).any(0)  # (H, W)
        assert changed.any() and changed.float().mean() < 0.5  # a small artifact, not a redraw
        assert torch.equal(always[i]["image"], again[i]["image"])  # deterministic
    always.set_epoch(1)
    assert not torch.equal(always[0]["image"], again[0]["image"])  # a new draw per epoch
    # The artifact stream is separate: every epoch flips exactly as without artifacts.
    flips = BiomassDataset(paths, cache, augment=True, seed=1)
    both = BiomassDataset(paths, cache, augment=True, seed=1, artifact_p=1.0)
    sides = []
    for epoch in range(8):
        flips.set_epoch(epoch)
        both.set_epoch(epoch)
        for ds in (flips, both):
            x = ds[0]["image"]  # image 0: red left half, black right half
            sides.append(bool(x[0, :, :16].mean() > x[0, :, 16:].mean()))
    assert sides[0::2] == sides[1::2] and len(set(sides)) == 2


def test_artifact_p_is_validated(dataset_parts):
    paths, cache, _ = dataset_parts
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="artifact_p"):
            BiomassDataset(paths, cache, artifact_p=bad)
