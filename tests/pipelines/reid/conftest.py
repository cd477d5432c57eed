"""Shared fixtures of the pipeline tests: one tiny synthetic re-ID dataset and trained run
per module, built from the same tiny recipe."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from fieldvision.config import load_config
from fieldvision.data.synthetic.coats import generate_coat_dataset
from fieldvision.pipelines.reid import fit
from fieldvision.pipelines.reid.config import ReIDPipelineConfig

TINY_REID = {
    "data": {"image_size": [32, 32]},
    "model": {"backbone": "fv_tiny_cnn", "embedding_dim": 16},
    "train": {"epochs": 1, "p": 3, "k": 2, "device": "cpu"},
    "inference": {"batch_size": 16, "rerank_k1": 4, "rerank_k2": 2},
}


def _reid_cfg(**sections) -> ReIDPipelineConfig:
    base = json.loads(json.dumps(TINY_REID))
    for key, value in sections.items():
        base.setdefault(key, {}).update(value)
    return load_config(ReIDPipelineConfig, base=base)


@pytest.fixture(scope="session")
def reid_cfg() -> Callable[..., ReIDPipelineConfig]:
    """`reid_cfg(train={...}, ...)`: the tiny recipe with section overrides."""
    return _reid_cfg


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("coats") / "data"
    generate_coat_dataset(out, n_identities=5, per_id=6, seed=3, size=(32, 32))
    return out


@pytest.fixture(scope="module")
def run(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    summary = fit(data, out, _reid_cfg(), progress=False)
    assert summary["epochs_run"] == 1 and summary["with_mask"] is True
    return out
