"""Tests for embedding video crops with a re-ID run (the video cameras' appearance)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from fieldvision.config import load_config
from fieldvision.data.synthetic.coats import generate_coat_dataset
from fieldvision.errors import RunError
from fieldvision.pipelines.flow.appearance import reid_crop_embedder
from fieldvision.pipelines.flow.sources import open_source
from fieldvision.pipelines.reid import fit
from fieldvision.pipelines.reid.config import ReIDPipelineConfig
from fieldvision.tracking.detections import Detections

from .conftest import write_video

TINY = {
    "data": {"image_size": [32, 32]},
    "model": {"backbone": "fv_tiny_cnn", "embedding_dim": 16},
    "train": {"epochs": 1, "p": 3, "k": 2, "device": "cpu"},
}


@pytest.fixture(scope="module")
def reid_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("reid")
    generate_coat_dataset(root / "data", n_identities=4, per_id=4, seed=1, size=(32, 32))
    fit(root / "data", root / "run", load_config(ReIDPipelineConfig, base=TINY), progress=False)
    return root / "run"


def test_crops_are_embedded_unit_length_and_deterministic(reid_run):
    embed = reid_crop_embedder(reid_run)
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    dets = Detections(xyxy=[[10, 10, 40, 90], [10, 10, 40, 90], [100, 0, 170, 50]])
    emb = embed(frame, dets)
    assert emb.shape == (3, 16) and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert np.allclose(emb[0], emb[1])  # same crop, same feature
    assert embed(frame, Detections.empty()).shape == (0, 16)


def test_video_source_with_reid_run_gives_embeddings(reid_run, tmp_path, detector_file):
    video = write_video(tmp_path / "v.avi", frames=3)
    source = SimpleNamespace(
        kind="video", path=video, embeddings=None, detector=str(detector_file), min_score=0.0,
        reid_run=reid_run,
    )  # fmt: skip
    cam = SimpleNamespace(id="c", fps=10.0, source=source)
    frames = list(open_source(cam).frames())
    assert all(d.embedding is not None and d.embedding.shape == (3, 16) for _, d in frames)


def test_not_a_reid_run_is_refused(tmp_path):
    with pytest.raises(RunError):
        reid_crop_embedder(tmp_path)
