"""Glance ops: tile selection against a reference loop, tile geometry, tile cutting."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fieldvision.ops.glance as glance
from fieldvision.errors import ConfigError
from fieldvision.ops.glance import (
    binary_entropy,
    cut_tiles,
    select_tiles,
    tile_boxes,
    unseen_evidence,
)

# --------------------------------------------------------------------------- entropy


def _entropy(p: float) -> float:
    return sum(-q * math.log2(q) for q in (p, 1 - p) if q > 0)


def test_binary_entropy_values():
    p = torch.tensor([0.0, 1.0, 0.5, 0.11, 0.25, 0.9, -0.1, 1.2], dtype=torch.float64)
    want = [0.0, 0.0, 1.0, _entropy(0.11), _entropy(0.25), _entropy(0.9), 0.0, 0.0]
    torch.testing.assert_close(binary_entropy(p), torch.tensor(want, dtype=torch.float64))
    x = torch.rand(100, dtype=torch.float64)
    torch.testing.assert_close(binary_entropy(x), binary_entropy(1 - x))  # symmetric


# --------------------------------------------------------------------------- selection


def test_unseen_evidence_after_each_step():
    ranked = torch.tensor([[0.5, 0.5, 0.0], [0.9, 0.2, 0.1]])
    want = torch.tensor([[0.5, 0.0, 0.0], [1 - 0.8 * 0.9, 0.1, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(unseen_evidence(ranked), want)
    tiny = torch.full((1, 64), 1e-9)  # float64 inside: 63e-9 survives, no rounding to 0
    assert unseen_evidence(tiny)[0, 0].item() == pytest.approx(63e-9, rel=1e-6)


def _ref_select(scores: list[float], budget: float, min_tiles: int, stop: float) -> list[int]:
    """Obviously correct: exact budget arithmetic, a sort and a loop over the unseen rest."""
    t = len(scores)
    k_max = min(t, max(min_tiles, math.ceil(Fraction(str(budget)) * t)))
    ranked = sorted(range(t), key=lambda i: (-scores[i], i))
    k = min(min_tiles, t)
    while k < k_max:
        left = 1.0 - math.prod(1.0 - scores[i] for i in ranked[k:])  # evidence still unseen
        if left >= 0.5 or _entropy(left) >= stop:
            k += 1
        else:
            break  # confident that nothing unseen matters: the glance ends
    return sorted(ranked[:k])


def _check(scores, budget, min_tiles=1, stop=0.5):
    s = torch.tensor([scores], dtype=torch.float32)
    mask, k = select_tiles(s, budget, min_tiles, stop)
    assert mask.dtype == torch.bool and mask.shape == s.shape
    assert k.dtype == torch.int64 and k.shape == (1,)
    assert int(k[0]) == int(mask.sum())
    return mask[0].nonzero().flatten().tolist()


CLEAN = [0.002, 0.001, 0.005, 0.003, 0.001, 0.004, 0.002, 0.001]  # 1.4 % left after one
MIXED = [0.9, 0.05, 0.8, 0.02, 0.4, 0.01, 0.03, 0.04]


@pytest.mark.parametrize(
    ("scores", "budget", "min_tiles", "stop", "expected"),
    [
        # confidently clean image: stops at min_tiles whatever the budget
        (CLEAN, 0.5, 1, 0.5, [2]),
        (CLEAN, 1.0, 1, 0.5, [2]),
        (CLEAN, 0.5, 3, 0.5, [2, 3, 5]),
        # many small doubts add up: 16 tiles at 5 % leave 1 − 0.95^(16−k) unseen, which
        # stays uncertain (≥ 0.11, 0.5 bits) until only 2 tiles are left
        ([0.05] * 16, 1.0, 1, 0.5, list(range(14))),
        ([0.05] * 16, 0.5, 1, 0.5, list(range(8))),
        # uncertain image (0.4 → 0.97 bits): uses the whole budget ceil(0.5·8) = 4
        ([0.4, 0.35, 0.45, 0.3, 0.42, 0.38, 0.33, 0.36], 0.5, 1, 0.5, [0, 2, 4, 5]),
        # suspicious image: the whole budget
        ([0.9, 0.8, 0.95, 0.7, 0.6, 0.99, 0.85, 0.75], 0.25, 1, 0.5, [2, 5]),
        # mixed: after 0.9, 0.8, 0.4, 0.05 the rest (0.04 … 0.01) leaves 9.6 % (0.46 bits)
        (MIXED, 1.0, 1, 0.5, [0, 1, 2, 4]),
        # stop_entropy > 1: on only while evidence is likely; after 0.9, 0.8 it is 0.485
        (MIXED, 1.0, 1, 1.01, [0, 2]),
        # ties rank by tile index
        ([0.7, 0.7, 0.7, 0.7], 0.5, 1, 0.5, [0, 1]),
        ([0.01, 0.3, 0.3, 0.3], 0.5, 1, 0.5, [1, 2]),
        # budget rounding: 0.3·10 is 3 (not 4), 0.25·10 = 2.5 → 3, 0.05·10 = 0.5 → 1
        ([0.9] * 10, 0.3, 1, 0.5, [0, 1, 2]),
        ([0.9] * 10, 0.25, 1, 0.5, [0, 1, 2]),
        ([0.9] * 10, 0.05, 1, 0.5, [0]),
        ([0.9] * 7, 1 / 7, 1, 0.5, [0]),
        # min_tiles above the budget wins; above T it is clipped
        ([0.9] * 10, 0.1, 4, 0.5, [0, 1, 2, 3]),
        ([0.01, 0.02], 0.5, 5, 0.5, [0, 1]),
        # budget 1 with stop_entropy 0 keeps everything, even certainly clean tiles
        (CLEAN, 1.0, 1, 0.0, list(range(8))),
        ([0.0, 1.0, 0.0], 1.0, 1, 0.0, [0, 1, 2]),
        # a certain tile (p = 1) unseen keeps the glance going
        ([0.0, 1.0, 0.0, 1.0], 0.75, 1, 0.5, [1, 3]),
    ],
)
def test_select_tiles_cases(scores, budget, min_tiles, stop, expected):
    assert _ref_select(scores, budget, min_tiles, stop) == expected
    assert _check(scores, budget, min_tiles, stop) == expected


@pytest.mark.parametrize("seed", range(4))
def test_select_tiles_matches_reference_on_random_scores(seed):
    gen = torch.Generator().manual_seed(seed)
    t = int(torch.randint(1, 20, (1,), generator=gen))
    scores = torch.rand(16, t, generator=gen) ** 3  # mostly healthy
    scores[::3] = torch.rand(len(scores[::3]), t, generator=gen)  # some uncertain images
    scores[1, : t // 2] = 0.5  # ties at the threshold
    for budget, min_tiles, stop in [(0.25, 1, 0.5), (0.5, 2, 0.3), (1.0, 1, 0.8), (0.1, 3, 0.0)]:
        mask, k = select_tiles(scores, budget, min_tiles, stop)
        for b in range(len(scores)):
            ref = _ref_select(scores[b].tolist(), budget, min_tiles, stop)
            assert mask[b].nonzero().flatten().tolist() == ref
            assert int(k[b]) == len(ref)


def test_select_tiles_returns_a_constant_mask_on_the_input_device():
    scores = torch.rand(3, 5, requires_grad=True)
    mask, k = select_tiles(scores, 0.5)
    assert not mask.requires_grad and mask.device == scores.device
    assert (k >= 1).all() and (k <= 3).all()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"budget": 0.0}, ConfigError, "budget"),
        ({"budget": 1.5}, ConfigError, "budget"),
        ({"budget": -0.2}, ConfigError, "budget"),
        ({"budget": 0.5, "min_tiles": 0}, ConfigError, "min_tiles"),
        ({"budget": 0.5, "stop_entropy": -0.1}, ConfigError, "stop_entropy"),
        ({"budget": 0.5, "stop_entropy": float("nan")}, ConfigError, "stop_entropy"),
    ],
)
def test_select_tiles_validation(kwargs, error, match):
    with pytest.raises(error, match=match):
        select_tiles(torch.rand(2, 4), **kwargs)


def test_select_tiles_shape_validation():
    with pytest.raises(ValueError, match="Tensor\\[B, T\\]"):
        select_tiles(torch.rand(4), 0.5)
    with pytest.raises(ValueError, match="T >= 1"):
        select_tiles(torch.rand(2, 0), 0.5)


# --------------------------------------------------------------------------- tile boxes


@pytest.mark.parametrize(
    ("h", "w", "rows", "cols"),
    [(64, 64, 4, 4), (7, 10, 3, 4), (100, 37, 8, 5), (5, 5, 5, 5), (13, 1, 2, 1), (9, 9, 1, 1)],
)
def test_tile_boxes_partition_the_image(h, w, rows, cols):
    boxes = tile_boxes(h, w, rows, cols)
    assert boxes.shape == (rows * cols, 4) and boxes.dtype == np.int64
    cover = np.zeros((h, w), dtype=int)
    for x1, y1, x2, y2 in boxes:
        cover[y1:y2, x1:x2] += 1
    assert (cover == 1).all()  # no gap, no overlap
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    assert areas.sum() == h * w
    grid = boxes.reshape(rows, cols, 4)  # row-major
    assert (grid[:, :, 1] == grid[:, :1, 1]).all() and (grid[:, :, 0] == grid[:1, :, 0]).all()
    assert np.diff(grid[0, :, 0]).min(initial=1) > 0 and np.diff(grid[:, 0, 1]).min(initial=1) > 0
    widths = boxes[:, 2] - boxes[:, 0]
    assert widths.max() - widths.min() <= 1  # uneven sizes differ by one pixel at most


def test_tile_boxes_uneven_boundaries_round_half_up():
    boxes = tile_boxes(7, 10, 3, 4)
    # columns round(j·10/4) = 0, 2.5→3, 5, 7.5→8, 10; rows round(i·7/3) = 0, 2, 5, 7
    assert boxes[:4, [0, 2]].tolist() == [[0, 3], [3, 5], [5, 8], [8, 10]]
    assert boxes[::4, [1, 3]].tolist() == [[0, 2], [2, 5], [5, 7]]


def test_tile_boxes_overlap_geometry():
    base = tile_boxes(100, 80, 4, 4)  # tiles 20 wide, 25 high
    boxes = tile_boxes(100, 80, 4, 4, overlap=0.25)  # grow 5 px left/right, 6 px up/down
    assert boxes[5].tolist() == [20 - 5, 25 - 6, 40 + 5, 50 + 6]  # interior tile
    assert boxes[0].tolist() == [0, 0, 25, 31]  # clipped at the top-left corner
    assert boxes[15].tolist() == [55, 69, 80, 100]  # clipped at the bottom-right corner
    assert (boxes[:, :2] <= base[:, :2]).all() and (boxes[:, 2:] >= base[:, 2:]).all()
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 80).all() and (boxes[:, 3] <= 100).all()
    big = tile_boxes(10, 10, 2, 2, overlap=2.0)
    assert (big == [0, 0, 10, 10]).all()  # everything clipped to the whole image


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((0, 10, 1, 1), "positive"),
        ((10, 10, 0, 2), "does not fit"),
        ((10, 10, 11, 2), "does not fit"),
        ((10, 3, 2, 4), "does not fit"),
        ((10, 10, 2, 2, -0.1), "overlap"),
        ((10, 10, 2, 2, float("inf")), "overlap"),
    ],
)
def test_tile_boxes_validation(args, match):
    with pytest.raises(ValueError, match=match):
        tile_boxes(*args)


# --------------------------------------------------------------------------- cut tiles


def _manual(image, boxes, size):
    """Obviously correct: slice and resize each box of each image."""
    out = []
    for img in image:
        tiles = [
            F.interpolate(
                img[None, :, y1:y2, x1:x2], size=(size, size), mode="bilinear", antialias=True
            )[0]
            for x1, y1, x2, y2 in boxes.tolist()
        ]
        out.append(torch.stack(tiles))
    return torch.stack(out)


@pytest.mark.parametrize(
    ("hw", "grid", "overlap", "size"),
    [
        ((32, 48), (2, 3), 0.0, 16),  # even: fast path, no resize
        ((32, 48), (2, 3), 0.0, 8),  # even: fast path, shrink
        ((30, 50), (4, 3), 0.0, 12),  # uneven: per box
        ((32, 48), (2, 2), 0.2, 20),  # overlap: per box
        ((17, 23), (1, 1), 0.0, 32),  # one tile, enlarged
    ],
)
def test_cut_tiles_equals_manual_crops(hw, grid, overlap, size):
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, *hw, generator=gen)
    boxes = tile_boxes(*hw, *grid, overlap=overlap)
    tiles = cut_tiles(image, boxes, size)
    assert tiles.shape == (2, len(boxes), 3, size, size)
    torch.testing.assert_close(tiles, _manual(image, boxes, size))
    single = cut_tiles(image[1], torch.from_numpy(boxes), size)  # [3, H, W] and tensor boxes
    torch.testing.assert_close(single, tiles[1])


def test_fast_path_is_taken_and_equals_the_per_box_path(monkeypatch):
    calls = []
    real = glance.grid_tiles

    def spy(*args):
        calls.append(args[1:])
        return real(*args)

    monkeypatch.setattr(glance, "grid_tiles", spy)
    gen = torch.Generator().manual_seed(1)
    image = torch.rand(3, 3, 40, 60, generator=gen, dtype=torch.float64)
    boxes = tile_boxes(40, 60, 4, 5)
    for size in (10, 7, 16):
        fast = cut_tiles(image, boxes, size)
        perm = np.random.default_rng(size).permutation(len(boxes))
        slow = cut_tiles(image, boxes[perm], size)  # not the canonical order: per box
        torch.testing.assert_close(slow, fast[:, perm])
    assert calls == [(4, 5)] * 3  # one reshape per fast call, none for the permuted boxes


@pytest.mark.parametrize("size", [8, 16, 5])
def test_a_glance_selection_is_resized_in_one_batch(monkeypatch, size):
    calls = []
    real = glance.global_view

    def spy(x, out_size):
        calls.append(tuple(x.shape))
        return real(x, out_size)

    monkeypatch.setattr(glance, "global_view", spy)
    gen = torch.Generator().manual_seed(2)
    image = torch.rand(3, 32, 48, generator=gen, dtype=torch.float64)
    boxes = tile_boxes(32, 48, 2, 3)[[4, 0, 2]]  # a scouter's pick, in rank order
    tiles = cut_tiles(image, boxes, size)
    torch.testing.assert_close(tiles, _manual(image[None], boxes, size)[0])
    assert calls == [(3, 3, 16, 16)]  # one resize call for the three crops


def test_cut_tiles_gradients_reach_the_covered_pixels():
    image = torch.rand(1, 3, 20, 20, requires_grad=True)
    boxes = np.array([[0, 0, 10, 10], [10, 10, 20, 20]])
    cut_tiles(image, boxes, 5).sum().backward()
    g = image.grad[0].abs().sum(0)
    assert (g[:10, :10] > 0).all() and (g[10:, 10:] > 0).all()
    assert (g[:10, 10:] == 0).all() and (g[10:, :10] == 0).all()


def test_cut_tiles_keeps_dtype():
    image = torch.rand(3, 16, 16).half()
    assert cut_tiles(image, tile_boxes(16, 16, 2, 2), 4).dtype == torch.float16
    assert cut_tiles(image, tile_boxes(16, 16, 3, 3), 4).dtype == torch.float16


@pytest.mark.parametrize(
    ("boxes", "match"),
    [
        ([[0, 0, 11, 5]], "outside"),
        ([[-1, 0, 5, 5]], "outside"),
        ([[3, 0, 3, 5]], "empty"),
        ([[0, 0, 2.5, 5]], "integer"),
        ([[0, 0, 5]], "\\[T, 4\\]"),
        (np.zeros((0, 4), dtype=int), "\\[T, 4\\]"),
    ],
)
def test_cut_tiles_validation(boxes, match):
    with pytest.raises(ValueError, match=match):
        cut_tiles(torch.rand(3, 10, 10), boxes, 4)


def test_cut_tiles_shape_validation():
    with pytest.raises(ValueError, match="Tensor\\[C, H, W\\]"):
        cut_tiles(torch.rand(10, 10), [[0, 0, 5, 5]], 4)
    with pytest.raises(ValueError, match="size"):
        cut_tiles(torch.rand(3, 10, 10), [[0, 0, 5, 5]], 0)
