"""Shared fixtures of the biomass pipeline tests: one tiny synthetic dataset and run."""

from __future__ import annotations

from pathlib import Path

import pytest

from fieldvision.config import load_config
from fieldvision.data.synthetic.pasture import generate_pasture_dataset
from fieldvision.pipelines.biomass import BiomassConfig, train

# 64x128 cleaned images, 32x32 tiles, 2 folds, 1 epoch per phase.
TINY = [
    "train.folds=2", "phase1.epochs=1", "phase2.epochs=1", "data.clean.size=[64,128]",
    "phase1.input_size=[32,64]", "phase2.global_size=[32,64]", "train.progress=false",
    "data.batch_size=8", "train.device=cpu",
]  # fmt: skip


def tiny_cfg(*extra: str) -> BiomassConfig:
    """The tiny recipe with extra ``key=value`` overrides."""
    return load_config(BiomassConfig, overrides=[*TINY, *extra])


@pytest.fixture(scope="session")
def tiny():
    """`tiny("key=value", ...)`: the tiny recipe with extra overrides."""
    return tiny_cfg


@pytest.fixture(scope="module")
def pasture(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pasture") / "data"
    generate_pasture_dataset(out, n_train=12, n_test=3, size=(64, 128), seed=2, progress=False)
    return out


@pytest.fixture(scope="module")
def biomass_run(pasture, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    train(pasture, out, tiny_cfg())
    return out
