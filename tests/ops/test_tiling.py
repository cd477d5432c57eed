"""Tiling ops against slow reference loops, across dtypes, with gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fieldvision.ops.tiling import global_view, grid_tiles, halves, untile

FLOAT_DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


def reference_tiles(x: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Obviously correct: slice every tile in row-major order."""
    B, _, H, W = x.shape
    h, w = H // rows, W // cols
    out = []
    for b in range(B):
        tiles = []
        for r in range(rows):
            for c in range(cols):
                tiles.append(x[b, :, r * h : (r + 1) * h, c * w : (c + 1) * w])
        out.append(torch.stack(tiles))
    return torch.stack(out)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize(
    ("shape", "rows", "cols"),
    [((2, 3, 8, 16), 2, 4), ((1, 1, 6, 6), 3, 2), ((3, 2, 4, 8), 1, 1), ((2, 5, 9, 12), 3, 4)],
)
def test_grid_tiles_matches_reference(shape, rows, cols, dtype):
    x = torch.randn(shape).to(dtype)
    got = grid_tiles(x, rows, cols)
    B, C, H, W = shape
    assert got.shape == (B, rows * cols, C, H // rows, W // cols)
    assert got.dtype == dtype
    assert torch.equal(got, reference_tiles(x, rows, cols))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_untile_inverts_grid_tiles(dtype):
    x = torch.randn(2, 3, 8, 16).to(dtype)
    assert torch.equal(untile(grid_tiles(x, 2, 4), 2, 4), x)


def test_untile_of_per_tile_scores_is_a_heatmap():
    scores = torch.arange(8.0).reshape(1, 8, 1, 1, 1)  # one score per tile
    heat = untile(scores, 2, 4)
    assert heat.shape == (1, 1, 2, 4)
    assert heat[0, 0].tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_halves_are_left_and_right(dtype):
    x = torch.randn(2, 3, 4, 10).to(dtype)
    h = halves(x)
    assert h.shape == (2, 2, 3, 4, 5)
    assert torch.equal(h[:, 0], x[..., :5])
    assert torch.equal(h[:, 1], x[..., 5:])


def test_empty_batch_gives_empty_output():
    x = torch.zeros(0, 3, 8, 16)
    assert grid_tiles(x, 2, 4).shape == (0, 8, 3, 4, 4)
    assert halves(x).shape == (0, 2, 3, 8, 8)
    assert untile(torch.zeros(0, 8, 3, 4, 4), 2, 4).shape == (0, 3, 8, 16)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: grid_tiles(torch.zeros(1, 3, 7, 16), 2, 4), "height H=7"),
        (lambda: grid_tiles(torch.zeros(1, 3, 8, 15), 2, 4), "width W=15"),
        (lambda: grid_tiles(torch.zeros(3, 8, 16), 2, 4), "[B, C, H, W]"),
        (lambda: grid_tiles(torch.zeros(1, 3, 8, 16), 0, 4), "at least one"),
        (lambda: halves(torch.zeros(1, 3, 8, 15)), "must be even"),
        (lambda: untile(torch.zeros(1, 6, 3, 4, 4), 2, 4), "expected rows*cols"),
        (lambda: untile(torch.zeros(1, 3, 4, 4), 2, 4), "[B, N, C, h, w]"),
        (lambda: global_view(torch.zeros(1, 3, 8, 16), (0, 4)), "positive"),
    ],
)
def test_bad_input_raises_value_error(call, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("*", r"\*")):
        call()


def test_global_view_rejects_integer_images():
    with pytest.raises(TypeError, match="float"):
        global_view(torch.zeros(1, 3, 8, 16, dtype=torch.uint8), (4, 8))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_global_view_shape_dtype_and_constant_image(dtype):
    x = torch.full((2, 3, 32, 64), 0.25).to(dtype)
    y = global_view(x, (8, 16))
    assert y.shape == (2, 3, 8, 16)
    assert y.dtype == dtype
    assert torch.allclose(y.float(), torch.full_like(y.float(), 0.25), atol=1e-2)


def test_global_view_is_antialiased_bilinear():
    x = torch.randn(1, 3, 32, 64, dtype=torch.float64)
    ref = F.interpolate(x, size=(8, 16), mode="bilinear", antialias=True, align_corners=False)
    assert torch.allclose(global_view(x, (8, 16)), ref)
    # Antialiasing averages a checkerboard to grey; plain bilinear would alias it.
    checker = (torch.arange(64)[None, :] + torch.arange(32)[:, None]) % 2
    small = global_view(checker.double()[None, None], (8, 16))
    assert torch.allclose(small, torch.full_like(small, 0.5), atol=0.05)


def test_global_view_same_size_is_identity():
    x = torch.randn(1, 3, 8, 16)
    assert torch.equal(global_view(x, (8, 16)), x)


def test_gradients_flow_through_every_op():
    x = torch.randn(1, 2, 4, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: grid_tiles(t, 2, 2), (x,))
    assert torch.autograd.gradcheck(halves, (x,))
    assert torch.autograd.gradcheck(lambda t: untile(grid_tiles(t, 2, 4), 2, 4), (x,))
    assert torch.autograd.gradcheck(lambda t: global_view(t, (2, 3)), (x,))
    y = torch.randn(1, 4, 2, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: untile(t, 2, 2), (y,))
