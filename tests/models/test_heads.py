"""MLP head and the mass-balanced biomass head."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fieldvision.data.biomass import TARGETS
from fieldvision.models.heads import (
    BIOMASS_COMPONENTS,
    BIOMASS_TARGETS,
    BiomassHead,
    MLPHead,
    compose_targets,
)


def test_target_order_matches_data_layer():
    assert BIOMASS_TARGETS == TARGETS
    assert BIOMASS_COMPONENTS == ("Dry_Green_g", "Dry_Dead_g", "Dry_Clover_g")


@pytest.mark.parametrize(("hidden", "n_linear"), [(0, 1), (16, 2)])
def test_mlp_head_shapes(hidden, n_linear):
    head = MLPHead(8, 3, hidden=hidden, dropout=0.5)
    assert head(torch.randn(4, 8)).shape == (4, 3)
    assert sum(isinstance(m, nn.Linear) for m in head.modules()) == n_linear
    assert head.last.out_features == 3


def test_compose_targets_values():
    comps = torch.tensor([[1.0, 2.0, 3.0], [0.5, 0.0, 4.0]])
    expected = torch.tensor([[1.0, 2.0, 3.0, 4.0, 6.0], [0.5, 0.0, 4.0, 4.5, 4.5]])
    assert torch.equal(compose_targets(comps), expected)
    assert compose_targets(torch.zeros(0, 3)).shape == (0, 5)


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
