"""Tests for the FP32-vs-INT8 output agreement (the task metrics are in test_quantize)."""

from __future__ import annotations

import numpy as np
import pytest

from fieldvision.export.accuracy import _relative, agreement


def test_agreement_by_hand():
    fp32 = np.array([[1.0, 0.0], [0.0, 2.0]])
    int8 = np.array([[1.0, 0.5], [0.0, 1.0]])
    out = agreement("embedding", fp32, int8)
    assert out["max_abs"] == 1.0 and out["mean_abs"] == pytest.approx(0.375)
    # Row cosines: 1/sqrt(1.25) and 1.
    assert out["cosine"] == pytest.approx((1 / np.sqrt(1.25) + 1) / 2)
    assert "top1" not in out


def test_classifier_outputs_get_top1_and_scalars_one_cosine():
    logits = agreement(
        "tile_logits", np.array([[2.0, 1.0], [0.0, 1.0]]), np.array([[2, 1], [1, 0.0]])
    )
    assert logits["top1"] == 0.5
    scalar = agreement("mass", np.array([[2.0], [4.0]]), np.array([[2.0], [4.0]]))
    assert scalar["cosine"] == pytest.approx(1.0) and scalar["max_abs"] == 0.0


def test_relative_change():
    assert _relative(0.5, 0.49) == pytest.approx(-0.02)
    assert _relative(None, 0.4) is None
