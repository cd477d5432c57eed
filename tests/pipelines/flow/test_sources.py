"""Tests for per-camera detection sources."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from fieldvision.errors import DataError
from fieldvision.pipelines.flow.sources import open_source

from .conftest import write_video


def _camera(**source):
    base = {"kind": "mot", "path": None, "embeddings": None, "detector": None, "min_score": None,
            "reid_run": None}  # fmt: skip
    return SimpleNamespace(id="cam", fps=10.0, source=SimpleNamespace(**{**base, **source}))


def test_mot_source_attaches_embeddings_and_counts_frames(tmp_path):
    det = tmp_path / "det.txt"
    det.write_text("1,-1,0,0,10,20,0.9,-1,-1,-1\n3,-1,5,5,10,20,0.8,-1,-1,-1\n")
    np.save(tmp_path / "emb.npy", np.eye(2, 4, dtype=np.float32))
    src = open_source(_camera(path=det, embeddings=tmp_path / "emb.npy"))
    frames = list(src.frames())
    assert src.n_frames == 3 and [f for f, _ in frames] == [1, 2, 3]
    assert len(frames[1][1]) == 0 and frames[2][1].embedding.tolist() == [[0, 1, 0, 0]]


def test_mot_source_validates_before_anything_runs(tmp_path):
    det = tmp_path / "det.txt"
    det.write_text("1,-1,0,0,10,20,0.9,-1,-1,-1\n")
    np.save(tmp_path / "emb.npy", np.ones((3, 4), np.float32))
    with pytest.raises(DataError, match="det.txt"):
        open_source(_camera(path=det, embeddings=tmp_path / "emb.npy"))


def test_video_source_runs_the_detector_on_every_frame(tmp_path, detector_file):
    video = write_video(tmp_path / "cam.avi", frames=4)
    src = open_source(_camera(kind="video", path=video, detector=str(detector_file)))
    frames = list(src.frames())
    assert src.kind == "video" and [f for f, _ in frames] == [1, 2, 3, 4]
    assert all(len(d) == 3 for _, d in frames)


def test_unreadable_video_is_a_data_error(tmp_path, detector_file):
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(DataError, match="cannot open video"):
        open_source(_camera(kind="video", path=bad, detector=str(detector_file)))
