"""Phase-2 head variants: the balance projection and the interval-classification bins."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fieldvision.errors import ConfigError
from fieldvision.models.biomass_heads import (
    BALANCE_CONSTRAINTS,
    BinHead,
    ProjectionHead,
    assign_bins,
    balance_projection,
    bin_cross_entropy,
    bin_expectation,
    blend_bins,
    check_bins,
    quantile_bins,
)
from fieldvision.schemas.biomass import derive_targets

SCALE = (40.0, 20.0, 8.0, 48.0, 68.0)
A = np.array(BALANCE_CONSTRAINTS)

# --------------------------------------------------------------------------- projection


@pytest.mark.parametrize("scale", [None, SCALE])
def test_projection_is_symmetric_idempotent_and_balances(scale):
    p = balance_projection(scale).double()
    torch.testing.assert_close(p @ p, p, atol=1e-6, rtol=0)
    torch.testing.assert_close(p, p.T, atol=1e-7, rtol=0)
    s = torch.ones(5, dtype=torch.float64) if scale is None else torch.tensor(scale).double()
    u = torch.rand(64, 5, dtype=torch.float64) * 3  # scaled units
    grams = (u @ p.T) * s
    green, dead, clover, gdm, total = grams.unbind(-1)
    assert (gdm - green - clover).abs().max() < 1e-5
    assert (total - green - dead - clover).abs().max() < 1e-5


def test_projection_is_the_least_squares_balanced_vector_in_scaled_units():
    """Brute force: the closest balanced vector is N c with N a basis of balanced vectors
    (in scaled units) and c from NumPy least squares; the residual is orthogonal to N."""
    s = np.array(SCALE)
    basis = derive_targets(np.eye(3)).T / s[:, None]  # (5, 3): green, dead, clover columns
    p = balance_projection(SCALE).double().numpy()
    u = np.random.default_rng(0).uniform(0, 3, size=(32, 5))
    coef, *_ = np.linalg.lstsq(basis, u.T, rcond=None)
    np.testing.assert_allclose(u @ p.T, (basis @ coef).T, atol=1e-5)
    residual = u - u @ p.T
    np.testing.assert_allclose(residual @ basis, 0.0, atol=1e-5)
    # Not the grams projection: a different metric gives a different answer.
    assert not np.allclose(p, balance_projection(None).numpy(), atol=1e-3)


def test_projection_leaves_balanced_vectors_unchanged():
    s = torch.tensor(SCALE)
    comps = torch.rand(16, 3) * torch.tensor([80.0, 40.0, 20.0])
    u = derive_targets(comps) / s
    torch.testing.assert_close(u @ balance_projection(SCALE).T, u, atol=1e-5, rtol=1e-5)
    assert np.allclose(A @ (u * s).numpy().T, 0.0, atol=1e-4)


@pytest.mark.parametrize("scale", [(1.0, 2.0), (1.0, 2.0, 3.0, 0.0, 5.0), (1, -1, 1, 1, 1)])
def test_projection_refuses_bad_scales(scale):
    with pytest.raises(ConfigError, match="5 positive numbers"):
        balance_projection(scale)


def test_projection_head_components_clamped_and_balanced():
    torch.manual_seed(0)
    head = ProjectionHead(6, SCALE, hidden=8)
    with torch.no_grad():
        head.mlp.last.weight.mul_(30)  # large, unbalanced raw outputs: some clamps act
    x = torch.randn(128, 6)
    comps = head.components(x)
    assert comps.shape == (128, 3) and (comps >= 0).all()
    projected = head.project(head.raw(x))[:, :3]
    assert (projected < 0).any()  # the clamp was needed somewhere
    kept = (projected >= 0).all(dim=1)
    torch.testing.assert_close(comps[kept], projected[kept])
    assert head.projection.shape == (5, 5) and "projection" in head.state_dict()


def test_untrained_projection_head_predicts_balanced_unit_scales():
    head = ProjectionHead(4, SCALE, hidden=0)
    with torch.no_grad():
        head.mlp.last.weight.zero_()
    # softplus(bias) = 1 per target; with mean scales 1·s is already balanced.
    torch.testing.assert_close(head.components(torch.randn(3, 4)), torch.ones(3, 3))


# --------------------------------------------------------------------------- bins


def _loop_bins(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    out = np.zeros(values.shape, dtype=np.int64)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            k = 0
            for e in edges[j, 1:-1]:  # the bin above every inner edge ≤ value
                if values[i, j] >= e:
                    k += 1
            out[i, j] = k
    return out


def test_assign_bins_matches_a_loop_on_edges_and_outside_the_range():
    edges = np.array(
        [[0.0, 1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 5.0, 9.0], [-1.0, 0.5, 0.5, 0.7, 1.0]]
    )
    col = np.array([-5.0, 0.0, 0.5, 0.7, 1.0, 2.0, 3.0, 4.0, 5.0, 9.0, 100.0, 0.49999])
    values = np.stack([col, col, col], axis=1)
    got = assign_bins(torch.from_numpy(values), torch.from_numpy(edges)).numpy()
    np.testing.assert_array_equal(got, _loop_bins(values, edges))
    assert got[0].tolist() == [0, 0, 0] and got[-2].tolist() == [3, 3, 3]  # outside: clamped
    assert got[1, 0] == 0 and got[5, 0] == 2  # on an inner edge: the bin above it
    assert got[1, 1] == 2  # zeros on the repeated edges skip the empty bins
    assert got[2, 2] == 2 and got[-1, 2] == 0  # 0.5 twice: bin 1 is empty


def test_quantile_bins_edges_and_centres_are_bin_means():
    rng = np.random.default_rng(0)
    values = np.stack([rng.gamma(2, 10, 200), rng.gamma(1, 5, 200), rng.gamma(1, 2, 200)], 1)
    values[:90, 2] = 0.0  # many clover zeros: repeated edges, empty bins
    edges, centres = quantile_bins(values, 5)
    assert edges.shape == (3, 6) and centres.shape == (3, 5)
    np.testing.assert_allclose(edges[:, 0], values.min(0))
    np.testing.assert_allclose(edges[:, -1], values.max(0))
    labels = _loop_bins(values, edges)
    counts = [np.bincount(labels[:, j], minlength=5) for j in range(3)]
    assert all(abs(c - 40).max() <= 1 for c in counts[:2])  # quantiles: ~equal counts
    for j in range(3):
        for k in range(5):
            inside = values[labels[:, j] == k, j]
            want = inside.mean() if inside.size else (edges[j, k] + edges[j, k + 1]) / 2
            assert centres[j, k] == pytest.approx(want)
    assert counts[2][0] == 0 and centres[2, 0] == 0.0  # empty bin: the midpoint of 0 and 0


@pytest.mark.parametrize(
    ("values", "k", "match"),
    [
        (np.ones((4, 3)), 1, "at least 2"),
        (np.ones((4, 2)), 4, r"Array\[N ≥ 1, 3\]"),
        (np.zeros((0, 3)), 4, r"Array\[N ≥ 1, 3\]"),
        (np.full((4, 3), np.nan), 4, "NaN or inf"),
    ],
)
def test_quantile_bins_bad_input(values, k, match):
    with pytest.raises(ConfigError, match=match):
        quantile_bins(values, k)


@pytest.mark.parametrize(
    ("edges", "centres", "match"),
    [
        (torch.zeros(3, 4), torch.zeros(3, 4), r"bin_edges \[3, 5\]"),
        (torch.zeros(2, 5), torch.zeros(2, 4), r"bin_edges \[3, 5\]"),
        (torch.full((3, 5), float("nan")), torch.zeros(3, 4), "NaN or inf"),
        (torch.tensor([[0.0, 2, 1, 3, 4]] * 3), torch.zeros(3, 4), "non-decreasing"),
    ],
)
def test_check_bins_refuses_bad_shapes_and_values(edges, centres, match):
    with pytest.raises(ConfigError, match=match):
        check_bins(edges, centres, 4)


def test_blend_endpoints_and_middle():
    torch.manual_seed(0)
    reg = torch.rand(4, 3) * 10
    logits = torch.randn(4, 3, 6)
    centres = torch.rand(3, 6) * 20
    expectation = (logits.softmax(-1) * centres).sum(-1)
    torch.testing.assert_close(bin_expectation(logits, centres), expectation)
    assert torch.equal(blend_bins(reg, logits, centres, 0.0), reg)
    torch.testing.assert_close(blend_bins(reg, logits, centres, 1.0), expectation)
    torch.testing.assert_close(
        blend_bins(reg, logits, centres, 0.25), 0.75 * reg + 0.25 * expectation
    )
    # A confident classifier's expectation is its bin's centre.
    sure = torch.full((1, 3, 6), -30.0)
    sure[0, :, 2] = 30.0
    torch.testing.assert_close(bin_expectation(sure, centres)[0], centres[:, 2])


def test_bin_cross_entropy_matches_hand_value_and_reaches_the_logits():
    torch.manual_seed(1)
    head = BinHead(5, 4, hidden=8)
    x = torch.randn(6, 5)
    edges = torch.tensor([[0.0, 1, 2, 3, 4]] * 3)
    true = torch.rand(6, 3) * 4
    logits = head(x)
    assert logits.shape == (6, 3, 4)
    logits.retain_grad()
    loss = bin_cross_entropy(logits, true, edges)
    labels = true.floor().long().clamp(max=3)
    manual = -logits.log_softmax(-1).gather(-1, labels.unsqueeze(-1)).mean()
    torch.testing.assert_close(loss, manual)
    loss.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())


def test_blended_prediction_sends_gradients_to_the_bin_logits():
    logits = torch.randn(2, 3, 4, requires_grad=True)
    reg = torch.rand(2, 3, requires_grad=True)
    blend_bins(reg, logits, torch.rand(3, 4), 0.5).sum().backward()
    assert logits.grad.abs().sum() > 0 and reg.grad.abs().sum() > 0
