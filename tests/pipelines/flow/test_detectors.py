"""Tests for the video detectors (OpenCV HOG and the ONNX contract)."""

from __future__ import annotations

import numpy as np
import pytest

from fieldvision.errors import ConfigError
from fieldvision.pipelines.flow.detectors import hog_detector, make_detector, onnx_detector


def test_onnx_detector_applies_min_score_and_soft_nms(detector_file):
    frame = np.zeros((240, 320, 3), np.uint8)
    dets = onnx_detector(detector_file)(frame)
    # Soft-NMS keeps both overlapping people, the second with a decayed score.
    assert len(dets) == 3
    assert dets.confidence[0] == pytest.approx(0.9)
    assert dets.confidence[1] < 0.8
    kept = onnx_detector(detector_file, min_score=0.5)(frame)
    assert len(kept) == 2 and (kept.xyxy[:, 0] < 100).all()


def test_make_detector_refuses_missing_or_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        make_detector(str(tmp_path / "nope.onnx"))
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="not a loadable ONNX model"):
        make_detector(str(broken))


def test_hog_detector_finds_nobody_in_an_empty_frame():
    import cv2

    if not hasattr(cv2, "HOGDescriptor"):
        with pytest.raises(ConfigError, match="no HOG people detector"):
            hog_detector()
        return
    dets = hog_detector()(np.zeros((256, 192, 3), np.uint8))
    assert len(dets) == 0 and dets.xyxy.shape == (0, 4)
