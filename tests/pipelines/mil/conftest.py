"""Fixtures of the MIL pipeline tests: a tiny learnable MIL dataset and a trained run.

Healthy images are green noise; ``spot`` images carry one small red square (≈ 2 % of the
image) somewhere: the evidence is local, the label is per image, the mask is saved.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fieldvision.config import load_config
from fieldvision.data.images import write_image
from fieldvision.pipelines.mil import MILConfig, train

TINY = [
    "data.grid=[4,4]", "data.min_tile_px=8", "data.batch_size=8",
    "expert.tile_size=16", "expert.epochs=2", "expert.sparsity_warmup_epochs=1",
    "scouter.input_size=[32,32]", "scouter.epochs=1",
    "train.progress=false", "train.device=cpu", "data.negative_class=healthy",
]  # fmt: skip


def tiny_mil(*extra: str) -> MILConfig:
    return load_config(MILConfig, overrides=[*TINY, *extra])


def make_spots(root: Path, n: int = 24, size: int = 64, seed: int = 0) -> Path:
    """Write ``root/labels.csv`` + images + masks; returns the CSV path."""
    rng = np.random.default_rng(seed)
    rows = ["image,label,group,mask"]
    for i in range(n):
        img = np.zeros((size, size, 3), np.uint8)
        img[..., 1] = rng.integers(90, 160, (size, size))
        img[..., 0] = rng.integers(0, 40, (size, size))
        mask = np.zeros((size, size), np.uint8)
        label = "spot" if i % 2 else "healthy"
        if label == "spot":
            y, x = rng.integers(0, size - 10, 2)
            img[y : y + 9, x : x + 9] = (220, 30, 30)
            mask[y : y + 9, x : x + 9] = 255
        write_image(root / "images" / f"{i:03d}.png", img)
        write_image(root / "masks" / f"{i:03d}.png", mask)
        rows.append(f"images/{i:03d}.png,{label},g{i // 4},masks/{i:03d}.png")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root / "labels.csv"


@pytest.fixture(scope="session")
def mil_cfg():
    """`mil_cfg("key=value", ...)`: the tiny recipe with extra overrides."""
    return tiny_mil


@pytest.fixture(scope="module")
def spots(tmp_path_factory) -> Path:
    return make_spots(tmp_path_factory.mktemp("spots") / "data").parent


@pytest.fixture(scope="module")
def mil_run(spots, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mil") / "run"
    train(spots, out, tiny_mil())
    return out
