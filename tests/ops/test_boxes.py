"""Box IoU and Soft-NMS against torchvision and a slow reference loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchvision

from fieldvision.ops.boxes import box_area, box_iou, pairwise_iou, soft_nms


def _random_boxes(rng: np.random.Generator, n: int, integer: bool = False) -> np.ndarray:
    """``(n, 4)`` xyxy boxes clustered in a 100 px square so that many overlap."""
    xy = rng.uniform(0, 100, (n, 2))
    wh = rng.uniform(5, 40, (n, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1)
    return np.round(boxes) if integer else boxes


def _iou_pair(a, b) -> float:
    """IoU of two boxes written out term by term."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _reference_soft_nms(boxes, scores, sigma, iou_threshold, score_threshold, method):
    """Soft-NMS as in Bodla et al.'s pseudo-code: one box at a time, plain Python lists."""
    remaining = [(i, float(s)) for i, s in enumerate(scores) if s >= score_threshold]
    keep, kept = [], []
    while remaining:
        best = max(range(len(remaining)), key=lambda j: remaining[j][1])
        m, sm = remaining.pop(best)
        keep.append(m)
        kept.append(sm)
        survivors = []
        for i, s in remaining:
            o = _iou_pair(boxes[m], boxes[i])
            if method == "gaussian":
                s = s * math.exp(-(o * o) / sigma)
            elif method == "linear":
                s = s * (1 - o) if o > iou_threshold else s
            elif o > iou_threshold:  # hard
                continue
            if s >= score_threshold:
                survivors.append((i, s))
        remaining = survivors
    return np.array(keep, dtype=np.int64), np.array(kept)


def test_box_iou_matches_torchvision():
    rng = np.random.default_rng(0)
    a, b = _random_boxes(rng, 17), _random_boxes(rng, 9)
    ours = box_iou(a, b)
    ref = torchvision.ops.box_iou(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    assert ours.shape == (17, 9)
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12)
    assert (ours > 0).mean() > 0.1  # the case really has overlaps


def test_box_iou_accepts_tensors_and_handles_empty_and_degenerate():
    rng = np.random.default_rng(1)
    a = _random_boxes(rng, 3)
    np.testing.assert_allclose(box_iou(torch.from_numpy(a), a), box_iou(a, a))
    np.testing.assert_allclose(np.diag(box_iou(a, a)), 1.0)
    assert box_iou(np.zeros((0, 4)), a).shape == (0, 3)
    assert box_iou(a, []).shape == (3, 0)
    point = np.array([[5.0, 5.0, 5.0, 5.0]])
    assert box_iou(point, point)[0, 0] == 0.0  # 0/0 is defined as no overlap
    np.testing.assert_allclose(box_area(np.array([[0, 0, 2, 3], [1, 1, 1, 4]])), [6, 0])
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        box_iou(np.zeros((2, 3)), a)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(
    ("method", "sigma", "iou_threshold"),
    [("gaussian", 0.5, 0.3), ("gaussian", 0.1, 0.3), ("linear", 0.5, 0.3), ("linear", 0.5, 0.0)],
)
def test_soft_nms_matches_reference_loop(seed, method, sigma, iou_threshold):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    boxes, scores = _random_boxes(rng, n), rng.uniform(0.05, 1.0, n)
    kwargs = dict(sigma=sigma, iou_threshold=iou_threshold, score_threshold=0.01, method=method)
    keep, kept = soft_nms(boxes, scores, **kwargs)
    ref_keep, ref_kept = _reference_soft_nms(boxes, scores, **kwargs)
    np.testing.assert_array_equal(keep, ref_keep)
    np.testing.assert_allclose(kept, ref_kept, rtol=1e-12)
    assert np.all(np.diff(kept) <= 1e-12)  # ordered by decayed score
    assert np.all(kept <= scores[keep] + 1e-12)  # scores only ever decrease


def test_soft_nms_keeps_an_occluded_box_that_hard_nms_deletes():
    boxes = np.array([[0, 0, 10, 20], [4, 0, 14, 20]], dtype=float)  # IoU 6/14 = 0.43
    scores = np.array([0.9, 0.8])
    hard, _ = soft_nms(boxes, scores, iou_threshold=0.3, method="hard")
    keep, kept = soft_nms(boxes, scores, method="gaussian", sigma=0.5)
    np.testing.assert_array_equal(hard, [0])
    np.testing.assert_array_equal(keep, [0, 1])
    np.testing.assert_allclose(kept, [0.9, 0.8 * math.exp(-((6 / 14) ** 2) / 0.5)])


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("iou_threshold", [0.1, 0.3, 0.5, 0.7])
def test_hard_limit_equals_torchvision_nms(seed, iou_threshold):
    rng = np.random.default_rng(100 + seed)
    boxes, scores = _random_boxes(rng, 50), rng.uniform(0, 1, 50)
    ref = torchvision.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), iou_threshold)
    keep, kept = soft_nms(
        boxes, scores, iou_threshold=iou_threshold, score_threshold=0.0, method="hard"
    )
    np.testing.assert_array_equal(keep, ref.numpy())
    np.testing.assert_allclose(kept, scores[keep])  # hard NMS never changes a kept score


@pytest.mark.parametrize("seed", range(4))
def test_gaussian_with_vanishing_sigma_is_nms_at_iou_zero(seed):
    # integer boxes of area <= 40**2 have IoU 0 or >= 1/3200, so exp(-IoU**2 / 1e-12) < 1e-40
    rng = np.random.default_rng(200 + seed)
    boxes, scores = _random_boxes(rng, 40, integer=True), rng.uniform(0.1, 1, 40)
    ref = torchvision.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), 0.0)
    keep, _ = soft_nms(boxes, scores, sigma=1e-12, score_threshold=1e-30)
    np.testing.assert_array_equal(keep, ref.numpy())


def test_linear_removes_exact_duplicates_like_nms():
    # linear decay multiplies by 1 - IoU: an exact copy (IoU 1) goes to 0, as in hard NMS
    rng = np.random.default_rng(3)
    base = np.array([[0, 0, 10, 10], [50, 50, 60, 70], [100, 0, 130, 40]], dtype=float)
    boxes = np.repeat(base, 3, axis=0)
    scores = rng.uniform(0.2, 1, 9)
    keep, kept = soft_nms(boxes, scores, method="linear", iou_threshold=0.5)
    ref = torchvision.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), 0.99)
    np.testing.assert_array_equal(keep, ref.numpy())
    np.testing.assert_allclose(kept, scores[keep])


def test_soft_nms_empty_and_bad_input():
    keep, kept = soft_nms(np.zeros((0, 4)), np.zeros(0))
    assert keep.shape == (0,) and keep.dtype == np.int64 and kept.shape == (0,)
    keep, _ = soft_nms(np.array([[0, 0, 1, 1.0]]), np.array([1e-4]))  # below score_threshold
    assert keep.size == 0
    t_keep, _ = soft_nms(torch.tensor([[0, 0, 1, 1.0], [0, 0, 1, 1.0]]), torch.tensor([0.5, 0.9]))
    np.testing.assert_array_equal(t_keep, [1, 0])
    with pytest.raises(ValueError, match="scores"):
        soft_nms(np.zeros((2, 4)), np.zeros(3))
    with pytest.raises(ValueError, match="method"):
        soft_nms(np.zeros((1, 4)), np.ones(1), method="cubic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sigma"):
        soft_nms(np.zeros((1, 4)), np.ones(1), sigma=0.0)


def test_pairwise_iou_is_box_iou_without_the_checks():
    rng = np.random.default_rng(7)
    a, b = _random_boxes(rng, 11), _random_boxes(rng, 6)
    b[0] = [5.0, 5.0, 5.0, 5.0]  # degenerate: zero area
    ref = box_iou(a, b)
    np.testing.assert_array_equal(pairwise_iou(a, b), ref)
    np.testing.assert_array_equal(pairwise_iou(a, b, box_area(a), box_area(b)), ref)
    point = b[:1]
    assert pairwise_iou(point, point)[0, 0] == 0.0
    assert pairwise_iou(a, np.zeros((0, 4))).shape == (11, 0)
