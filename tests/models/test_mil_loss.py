"""MIL loss (bag CE, sparsity, healthy-tile CE), scouter loss and the sparsity ramp."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fieldvision.errors import ConfigError
from fieldvision.models.mil_loss import mil_loss, scouter_loss, sparsity_ramp

LN2, LN3 = math.log(2.0), math.log(3.0)


def _hand_batch():
    """Two bags of two tiles, classes (healthy=0, sick=1); bag 0 healthy, bag 1 sick.

    Tile disease probabilities ``1 - softmax(z)[0]``: bag 0 → (3/4, 1/2), bag 1 → (1/4, 1/2).
    """
    bag = torch.tensor([[0.0, 0.0], [0.0, LN3]], dtype=torch.float64)
    tiles = torch.tensor([[[0.0, LN3], [0.0, 0.0]], [[LN3, 0.0], [0.0, 0.0]]], dtype=torch.float64)
    labels = torch.tensor([0, 1])
    return bag, tiles, labels


def test_hand_values_of_every_term_and_reduction():
    bag, tiles, labels = _hand_batch()
    ce = [LN2, -math.log(3 / 4)]  # bag CE of bag 0 (label 0) and bag 1 (label 1)
    sparsity = [5 / 8, 3 / 8]
    healthy = [(math.log(4) + LN2) / 2, 0.0]  # tile CE toward class 0, healthy bag only
    lam_s, lam_h = 0.5, 2.0
    kw = {"negative_class": 0, "sparsity_weight": lam_s, "healthy_tile_weight": lam_h}
    per_bag, parts = mil_loss(bag, tiles, labels, reduction="none", **kw)
    expected = [ce[i] + lam_s * sparsity[i] + lam_h * healthy[i] for i in range(2)]
    torch.testing.assert_close(per_bag, torch.tensor(expected, dtype=torch.float64))
    total, _ = mil_loss(bag, tiles, labels, reduction="sum", **kw)
    torch.testing.assert_close(total, per_bag.sum())
    mean, parts = mil_loss(bag, tiles, labels, **kw)
    # healthy-tile CE is averaged over the one healthy bag, not over both bags
    want = sum(ce) / 2 + lam_s * sum(sparsity) / 2 + lam_h * healthy[0]
    torch.testing.assert_close(mean, torch.tensor(want, dtype=torch.float64))
    assert set(parts) == {"bag_ce", "sparsity", "healthy_tile_ce"}
    torch.testing.assert_close(parts["bag_ce"], torch.tensor(sum(ce) / 2, dtype=torch.float64))
    torch.testing.assert_close(parts["sparsity"], torch.tensor(0.5, dtype=torch.float64))
    torch.testing.assert_close(
        parts["healthy_tile_ce"], torch.tensor(healthy[0], dtype=torch.float64)
    )
    assert not any(v.requires_grad for v in parts.values())


def test_class_weighted_bag_ce_matches_torch():
    gen = torch.Generator().manual_seed(0)
    bag = torch.randn(6, 3, generator=gen)
    tiles = torch.randn(6, 4, 3, generator=gen)
    labels = torch.tensor([0, 1, 2, 2, 1, 2])
    w = torch.tensor([0.5, 1.0, 3.0])
    loss, parts = mil_loss(bag, tiles, labels, None, class_weights=w)
    torch.testing.assert_close(loss, F.cross_entropy(bag, labels, weight=w))
    per_bag, _ = mil_loss(bag, tiles, labels, None, class_weights=w, reduction="none")
    torch.testing.assert_close(per_bag, F.cross_entropy(bag, labels, weight=w, reduction="none"))
    assert set(parts) == {"bag_ce"}


def test_without_negative_class_only_the_bag_ce_counts():
    bag, tiles, labels = _hand_batch()
    tiles = tiles.clone().requires_grad_()
    loss, parts = mil_loss(bag, tiles, labels, None, sparsity_weight=5.0, healthy_tile_weight=5.0)
    torch.testing.assert_close(loss, F.cross_entropy(bag, labels))
    assert not loss.requires_grad  # the tile logits are not used at all
    assert list(parts) == ["bag_ce"]


def test_diseased_bags_contribute_no_tile_level_ce():
    gen = torch.Generator().manual_seed(1)
    bag = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    tiles = torch.randn(4, 5, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([2, 0, 1, 2])  # class 2 is healthy: bags 1 and 2 are diseased
    loss, parts = mil_loss(bag, tiles, labels, negative_class=2, healthy_tile_weight=1.0)
    loss.backward()
    assert (tiles.grad[[1, 2]] == 0).all()  # never taught "every tile is diseased"
    assert (tiles.grad[[0, 3]] != 0).any()
    # changing a diseased bag's tiles changes nothing
    other = tiles.detach().clone()
    other[[1, 2]] = torch.randn(2, 5, 3, dtype=torch.float64) * 10
    loss2, parts2 = mil_loss(bag, other, labels, negative_class=2)
    torch.testing.assert_close(loss2, loss.detach())
    torch.testing.assert_close(parts2["healthy_tile_ce"], parts["healthy_tile_ce"])


def test_healthy_tile_ce_matches_cross_entropy_toward_the_negative_class():
    gen = torch.Generator().manual_seed(2)
    tiles = torch.randn(3, 4, 3, generator=gen)
    labels = torch.tensor([1, 1, 0])
    _, parts = mil_loss(torch.zeros(3, 3), tiles, labels, negative_class=1)
    ref = F.cross_entropy(tiles[:2].reshape(-1, 3), torch.ones(8, dtype=torch.long))
    torch.testing.assert_close(parts["healthy_tile_ce"], ref)
    _, parts = mil_loss(torch.zeros(3, 3), tiles, torch.tensor([0, 2, 0]), negative_class=1)
    assert parts["healthy_tile_ce"] == 0  # no healthy bag in the batch


def test_sparsity_pushes_disease_probability_down():
    gen = torch.Generator().manual_seed(3)
    tiles = torch.randn(3, 6, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([1, 3, 2])  # diseased bags: sparsity acts there too
    bag = torch.zeros(3, 4, dtype=torch.float64)
    loss, _ = mil_loss(bag, tiles, labels, negative_class=0, sparsity_weight=1.0)
    loss.backward()
    assert (tiles.grad[..., 0] < 0).all()  # raising the healthy logit lowers the loss
    assert (tiles.grad[..., 1:] > 0).all()  # raising a disease logit raises it

    def disease(z):
        return (1 - z.softmax(-1)[..., 0]).mean()

    stepped = tiles.detach() - 0.1 * tiles.grad
    assert disease(stepped) < disease(tiles.detach())


def test_mil_loss_gradcheck():
    gen = torch.Generator().manual_seed(4)
    bag = torch.randn(3, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    tiles = torch.randn(3, 4, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 2])
    mask = torch.tensor([[True, True, False, True], [False, True, False, False], [True] * 4])
    w = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)

    def f(b, t):
        return mil_loss(b, t, labels, 0, 0.7, 1.3, w, mask)[0]

    assert torch.autograd.gradcheck(f, (bag, tiles))


def test_mask_excludes_tiles():
    gen = torch.Generator().manual_seed(5)
    tiles = torch.randn(2, 4, 2, generator=gen, requires_grad=True)
    mask = torch.tensor([[True, False, True, False], [False, False, False, True]])
    labels = torch.tensor([0, 1])
    kw = {"negative_class": 0, "sparsity_weight": 1.0}
    loss, parts = mil_loss(torch.zeros(2, 2), tiles, labels, mask=mask, **kw)
    loss.backward()
    assert (tiles.grad[~mask] == 0).all()
    sub0, sub1 = tiles[0, [0, 2]].detach(), tiles[1, [3]].detach()
    _, p0 = mil_loss(torch.zeros(1, 2), sub0[None], labels[:1], **kw)
    _, p1 = mil_loss(torch.zeros(1, 2), sub1[None], labels[1:], **kw)
    torch.testing.assert_close(parts["sparsity"], (p0["sparsity"] + p1["sparsity"]) / 2)
    torch.testing.assert_close(parts["healthy_tile_ce"], p0["healthy_tile_ce"])


def test_half_precision_logits_are_computed_in_float32():
    bag, tiles, labels = _hand_batch()
    loss, _ = mil_loss(bag.bfloat16(), tiles.bfloat16(), labels, 0, 0.5)
    assert loss.dtype == torch.float32
    assert scouter_loss(torch.zeros(1, 2, 2).half(), torch.ones(1, 2, 2)).dtype == torch.float32


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"negative_class": 3}, ConfigError, "negative_class=3"),
        ({"negative_class": -1}, ConfigError, "negative_class=-1"),
        ({"negative_class": 0, "sparsity_weight": -1.0}, ConfigError, ">= 0"),
        ({"negative_class": 0, "reduction": "avg"}, ValueError, "unknown reduction"),
        ({"negative_class": 0, "class_weights": torch.ones(2)}, ValueError, "class_weights"),
        ({"negative_class": 0, "mask": torch.zeros(2, 4, dtype=torch.bool)}, ValueError, "no"),
        ({"negative_class": 0, "mask": torch.ones(2, 3, dtype=torch.bool)}, ValueError, "mask"),
    ],
)
def test_mil_loss_validation(kwargs, error, match):
    with pytest.raises(error, match=match):
        mil_loss(torch.zeros(2, 3), torch.zeros(2, 4, 3), torch.tensor([0, 1]), **kwargs)


def test_mil_loss_shape_validation():
    with pytest.raises(ValueError, match="do not match"):
        mil_loss(torch.zeros(2, 3), torch.zeros(2, 4, 2), torch.tensor([0, 1]), 0)
    with pytest.raises(ValueError, match="labels"):
        mil_loss(torch.zeros(2, 3), torch.zeros(2, 4, 3), torch.tensor([0]), 0)


# --------------------------------------------------------------------------- scouter loss


def test_scouter_loss_hand_values_and_gradient():
    logits = torch.zeros(2, 1, 2, dtype=torch.float64, requires_grad=True)  # sigmoid = 0.5
    target = torch.tensor([[[1.0, 0.5]], [[0.0, 0.5]]], dtype=torch.float64)
    per_image = scouter_loss(logits, target, reduction="none")
    torch.testing.assert_close(per_image, torch.tensor([0.125, 0.125], dtype=torch.float64))
    torch.testing.assert_close(scouter_loss(logits, target, "sum"), per_image.sum())
    loss = scouter_loss(logits, target)
    torch.testing.assert_close(loss, torch.tensor(0.125, dtype=torch.float64))
    loss.backward()
    # d/dl mean (σ(l) − t)² = 2 (σ − t) σ (1 − σ) / N, N = 4
    want = torch.tensor([[[-0.125, 0.0]], [[0.125, 0.0]]], dtype=torch.float64) / 2
    torch.testing.assert_close(logits.grad, want)
    x = torch.randn(2, 1, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: scouter_loss(x, target), (x,))


def test_scouter_loss_validation():
    with pytest.raises(ValueError, match="Tensor\\[B, R, C\\]"):
        scouter_loss(torch.zeros(2, 3, 3), torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="unknown reduction"):
        scouter_loss(torch.zeros(2, 3, 3), torch.zeros(2, 3, 3), "median")


# --------------------------------------------------------------------------- ramp


@pytest.mark.parametrize(
    ("epoch", "warmup", "weight", "expected"),
    [
        (0.0, 2.0, 0.1, 0.0),
        (1.99, 2.0, 0.1, 0.0),
        (2.0, 2.0, 0.1, 0.0),
        (3.0, 2.0, 0.1, 0.05),
        (3.5, 2.0, 0.1, 0.075),
        (4.0, 2.0, 0.1, 0.1),
        (50.0, 2.0, 0.1, 0.1),
        (0.0, 0.0, 0.3, 0.3),
        (7.0, 0.0, 0.3, 0.3),
        (1.5, 1.0, 0.0, 0.0),
    ],
)
def test_sparsity_ramp(epoch, warmup, weight, expected):
    assert sparsity_ramp(epoch, warmup, weight) == pytest.approx(expected)


def test_sparsity_ramp_validation():
    with pytest.raises(ConfigError, match=">= 0"):
        sparsity_ramp(1.0, -1.0, 0.1)
    with pytest.raises(ConfigError, match=">= 0"):
        sparsity_ramp(1.0, 1.0, -0.1)
