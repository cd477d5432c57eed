"""MLP head and the mass-balanced biomass head."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fieldvision.models.heads import BiomassHead, MLPHead


@pytest.mark.parametrize(("hidden", "n_linear"), [(0, 1), (16, 2)])
def test_mlp_head_shapes(hidden, n_linear):
    head = MLPHead(8, 3, hidden=hidden, dropout=0.5)
    assert head(torch.randn(4, 8)).shape == (4, 3)
    assert sum(isinstance(m, nn.Linear) for m in head.modules()) == n_linear
    assert head.last.out_features == 3


def test_biomass_head_non_negative_and_mass_balanced():
    torch.manual_seed(0)
    head = BiomassHead(6, hidden=8)
    with torch.no_grad():
        head.mlp.last.weight.mul_(50)  # push some raw outputs very negative
    out = head(torch.randn(64, 6))
    assert out.shape == (64, 5)
    assert (out >= 0).all()
    green, dead, clover, gdm, total = out.unbind(-1)
    assert torch.equal(gdm, green + clover)
    assert torch.equal(total, green + clover + dead)


def test_biomass_head_scale_applies_before_composing():
    torch.manual_seed(1)
    head = BiomassHead(4, hidden=0)
    x = torch.randn(3, 4)
    scale = torch.tensor([10.0, 20.0, 5.0])
    out = head(x, scale)
    comps = head.components(x) * scale
    torch.testing.assert_close(out[:, :3], comps)
    assert torch.equal(out[:, 3], out[:, 0] + out[:, 2])
    assert torch.equal(out[:, 4], out[:, 0] + out[:, 2] + out[:, 1])


def test_untrained_head_predicts_one_scale_unit():
    head = BiomassHead(4, hidden=8)
    with torch.no_grad():
        head.mlp.last.weight.zero_()
    out = head(torch.randn(2, 4))
    torch.testing.assert_close(out[:, :3], torch.ones(2, 3))


def test_biomass_head_matches_reference_and_gradcheck():
    torch.manual_seed(2)
    head = BiomassHead(4, hidden=0).double()
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    scale = torch.tensor([2.0, 3.0, 0.5], dtype=torch.float64)
    last = head.mlp.last
    green, dead, clover = (F.softplus(x @ last.weight.T + last.bias) * scale).unbind(-1)
    reference = torch.stack([green, dead, clover, green + clover, green + dead + clover], -1)
    torch.testing.assert_close(head(x, scale), reference)
    assert torch.autograd.gradcheck(lambda t: head(t, scale), (x,))
