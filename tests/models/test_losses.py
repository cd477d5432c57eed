"""Margin heads vs pytorch-metric-learning, batch-hard triplet vs a slow reference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import ArcFaceLoss, CosFaceLoss

from fieldvision.errors import ConfigError
from fieldvision.models.losses import (
    HEADS,
    ArcFaceHead,
    CosFaceHead,
    SoftmaxHead,
    batch_hard_triplet_loss,
    create_head,
)


def _data(n: int = 12, e: int = 16, c: int = 5, seed: int = 0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, e, generator=g, dtype=dtype)
    y = torch.randint(0, c, (n,), generator=g)
    return x, y


@pytest.mark.parametrize("margin", [0.2, 0.5])
def test_arcface_matches_pytorch_metric_learning(margin):
    x, y = _data()
    ours = ArcFaceHead(16, 5, scale=30.0, margin=margin)
    ref = ArcFaceLoss(5, 16, margin=math.degrees(margin), scale=30.0)
    with torch.no_grad():
        ref.W.copy_(ours.weight.t())
    torch.testing.assert_close(ours(x, y), ref(x, y), rtol=1e-4, atol=1e-4)


def test_cosface_matches_pytorch_metric_learning():
    x, y = _data(seed=1)
    ours = CosFaceHead(16, 5, scale=20.0, margin=0.35)
    ref = CosFaceLoss(5, 16, margin=0.35, scale=20.0)
    with torch.no_grad():
        ref.W.copy_(ours.weight.t())
    torch.testing.assert_close(ours(x, y), ref(x, y), rtol=1e-4, atol=1e-4)


def test_arcface_fallback_past_pi_minus_m():
    head = ArcFaceHead(2, 2, scale=1.0, margin=0.5)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    x = torch.tensor([[-1.0, 0.01]])  # angle to class 0 is ~pi: beyond pi - m
    logit = head.logits(x, torch.tensor([0]))[0, 0]
    cos = F.normalize(x)[0, 0]
    torch.testing.assert_close(logit, cos - 0.5 * math.sin(0.5), atol=1e-5, rtol=0)
    # ... and the curve stays monotonic in the angle there.
    x2 = torch.tensor([[-1.0, 0.2]])
    assert head.logits(x2, torch.tensor([0]))[0, 0] > logit


@pytest.mark.parametrize("name", HEADS.names())
def test_heads_reduction_smoothing_and_logits(name):
    x, y = _data(seed=2)
    head = create_head(name, 16, 5, label_smoothing=0.1)
    per = head(x, y, reduction="none")
    assert per.shape == (12,) and torch.isfinite(per).all()
    torch.testing.assert_close(head(x, y, reduction="mean"), per.mean())
    torch.testing.assert_close(head(x, y, reduction="sum"), per.sum())
    assert head.logits(x).shape == (12, 5)
    with pytest.raises(ValueError):
        head(x, y, reduction="max")
    empty = head(x[:0], y[:0])
    assert empty.item() == 0.0


def test_softmax_head_is_linear_cross_entropy():
    x, y = _data(seed=3)
    head = SoftmaxHead(16, 5)
    expected = F.cross_entropy(F.linear(x, head.weight, head.bias), y)
    torch.testing.assert_close(head(x, y), expected)


def test_margin_raises_target_loss():
    x, y = _data(seed=4)
    plain = CosFaceHead(16, 5, margin=0.0)
    margin = CosFaceHead(16, 5, margin=0.3)
    margin.load_state_dict(plain.state_dict())
    assert margin(x, y) > plain(x, y)


@pytest.mark.parametrize("cls", [ArcFaceHead, CosFaceHead])
def test_gradcheck_float64(cls):
    x, y = _data(n=6, e=4, c=3, seed=5, dtype=torch.float64)
    x.requires_grad_(True)
    head = cls(4, 3, scale=4.0).double()
    assert torch.autograd.gradcheck(lambda t: head(t, y), (x,))


def test_registry_errors():
    with pytest.raises(ConfigError, match="arcface"):
        create_head("circle", 4, 3)
    with pytest.raises(ConfigError):
        ArcFaceHead(4, 0)


def _triplet_reference(x, y, margin, normalize=True):
    if normalize:
        x = F.normalize(x, dim=1)
    losses = []
    for i in range(len(y)):
        pos = [torch.dist(x[i], x[j]) for j in range(len(y)) if j != i and y[j] == y[i]]
        neg = [torch.dist(x[i], x[j]) for j in range(len(y)) if y[j] != y[i]]
        if not pos or not neg:
            continue
        losses.append(F.relu(max(pos) - min(neg) + margin))
    return torch.stack(losses).mean() if losses else torch.tensor(0.0)


@pytest.mark.parametrize("normalize", [True, False])
def test_batch_hard_triplet_matches_reference(normalize):
    x, _ = _data(n=10, seed=6)
    y = torch.tensor([0, 0, 1, 1, 1, 2, 2, 3, 4, 4])  # identity 3 has no positive
    ours = batch_hard_triplet_loss(x, y, margin=0.3, normalize=normalize)
    ref = _triplet_reference(x, y, 0.3, normalize)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    per = batch_hard_triplet_loss(x, y, 0.3, normalize, reduction="none")
    assert per[7] == 0  # the anchor without a positive contributes nothing


def test_triplet_edge_cases_and_gradcheck():
    x, _ = _data(n=4, seed=7)
    assert batch_hard_triplet_loss(x, torch.tensor([0, 1, 2, 3])).item() == 0.0
    assert batch_hard_triplet_loss(x, torch.tensor([0, 0, 0, 0])).item() == 0.0
    assert batch_hard_triplet_loss(x[:0], torch.tensor([], dtype=torch.long)).item() == 0.0
    xd, _ = _data(n=6, e=3, seed=8, dtype=torch.float64)
    xd.requires_grad_(True)
    yd = torch.tensor([0, 0, 1, 1, 2, 2])
    assert torch.autograd.gradcheck(lambda t: batch_hard_triplet_loss(t, yd, 0.5), (xd,))
