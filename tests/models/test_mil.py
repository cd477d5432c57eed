"""MIL pooling (max, top-k mean, attention, gated attention), the tile expert and the scouter."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fieldvision.errors import ConfigError
from fieldvision.models.mil import (
    AttentionPool,
    GatedAttentionPool,
    MILExpert,
    MILExpertConfig,
    Scouter,
    ScouterConfig,
    max_pool,
    topk_mean_pool,
)

# --------------------------------------------------------------------------- references


def _selected(mask, b, t):
    return [i for i in range(t) if mask is None or bool(mask[b, i])]


def _ref_max(z, mask):
    """One-hot weight on the first tile reaching the max of each (bag, class)."""
    b_, t_, c_ = z.shape
    bag = torch.zeros(b_, c_, dtype=z.dtype)
    w = torch.zeros_like(z)
    for b in range(b_):
        sel = _selected(mask, b, t_)
        for c in range(c_):
            best = sel[0]
            for i in sel:
                if z[b, i, c] > z[b, best, c]:
                    best = i
            bag[b, c] = z[b, best, c]
            w[b, best, c] = 1.0
    return bag, w


def _ref_topk(z, mask, k):
    b_, t_, c_ = z.shape
    bag = torch.zeros(b_, c_, dtype=z.dtype)
    w = torch.zeros_like(z)
    for b in range(b_):
        sel = _selected(mask, b, t_)
        kb = min(k, len(sel))
        for c in range(c_):
            ranked = sorted(sel, key=lambda i: (-float(z[b, i, c]), i))[:kb]
            for i in ranked:
                w[b, i, c] = 1.0 / kb
            bag[b, c] = sum(float(z[b, i, c]) for i in ranked) / kb
    return bag, w


def _ref_attention(pool, h, z, mask):
    """Explicit per-(bag, class) softmax over the selected tiles."""
    b_, t_, c_ = z.shape
    gated = isinstance(pool, GatedAttentionPool)
    bag = torch.zeros(b_, c_, dtype=z.dtype)
    w = torch.zeros_like(z)
    for b in range(b_):
        sel = _selected(mask, b, t_)
        for c in range(c_):
            scores = []
            for i in sel:
                hid = torch.tanh(pool.v.weight @ h[b, i] + pool.v.bias)
                if gated:
                    hid = hid * torch.sigmoid(pool.u.weight @ h[b, i] + pool.u.bias)
                scores.append(float(pool.w.weight[c] @ hid))
            m = max(scores)
            e = [math.exp(s - m) for s in scores]
            for i, ei in zip(sel, e, strict=True):
                w[b, i, c] = ei / sum(e)
                bag[b, c] += w[b, i, c] * z[b, i, c]
    return bag, w


def _random_mask(b, t, gen, p=0.5):
    mask = torch.rand(b, t, generator=gen) < p
    mask[torch.arange(b), torch.randint(0, t, (b,), generator=gen)] = True  # ≥ 1 per bag
    return mask


CASES = [(1, 1, 2), (2, 5, 3), (3, 7, 4), (4, 3, 1)]  # (B, T, C)


# --------------------------------------------------------------------------- pooling


@pytest.mark.parametrize(("b", "t", "c"), CASES)
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("k", [1, 2, 5])
def test_functional_pools_match_reference(b, t, c, masked, k):
    gen = torch.Generator().manual_seed(b * 100 + t * 10 + c + k)
    z = torch.randn(b, t, c, generator=gen, dtype=torch.float64)
    mask = _random_mask(b, t, gen) if masked else None
    bag, w = max_pool(z, mask)
    ref_bag, ref_w = _ref_max(z, mask)
    torch.testing.assert_close(bag, ref_bag)
    torch.testing.assert_close(w, ref_w)
    bag, w = topk_mean_pool(z, mask, k=k)  # k > #selected happens for k = 5
    ref_bag, ref_w = _ref_topk(z, mask, k)
    torch.testing.assert_close(bag, ref_bag)
    torch.testing.assert_close(w, ref_w)


@pytest.mark.parametrize("pool_cls", [AttentionPool, GatedAttentionPool])
@pytest.mark.parametrize(("b", "t", "c"), CASES)
@pytest.mark.parametrize("masked", [False, True])
def test_attention_pools_match_reference(pool_cls, b, t, c, masked):
    torch.manual_seed(b + t + c)
    gen = torch.Generator().manual_seed(7 * b + t)
    pool = pool_cls(6, c, attention_dim=5).double()
    h = torch.randn(b, t, 6, generator=gen, dtype=torch.float64)
    z = torch.randn(b, t, c, generator=gen, dtype=torch.float64)
    mask = _random_mask(b, t, gen) if masked else None
    bag, w = pool(h, z, mask)
    with torch.no_grad():
        ref_bag, ref_w = _ref_attention(pool, h, z, mask)
    torch.testing.assert_close(bag, ref_bag)
    torch.testing.assert_close(w, ref_w)


def _all_pools(c, d):
    torch.manual_seed(3)
    att, gated = AttentionPool(d, c, 8), GatedAttentionPool(d, c, 8)
    return {
        "max": lambda h, z, m: max_pool(z, m),
        "topk": lambda h, z, m: topk_mean_pool(z, m, k=3),
        "attention": att,
        "gated": gated,
    }


@pytest.mark.parametrize("name", ["max", "topk", "attention", "gated"])
def test_weights_sum_to_one_and_vanish_on_masked_tiles(name):
    gen = torch.Generator().manual_seed(11)
    b, t, c, d = 5, 6, 3, 4
    pool = _all_pools(c, d)[name]
    h, z = torch.randn(b, t, d, generator=gen), torch.randn(b, t, c, generator=gen)
    mask = _random_mask(b, t, gen, p=0.4)
    with torch.no_grad():
        for m in (None, mask):
            bag, w = pool(h, z, m)
            assert bag.shape == (b, c) and w.shape == (b, t, c)
            torch.testing.assert_close(w.sum(1), torch.ones(b, c))
            assert (w >= 0).all()
            if m is not None:
                assert (w[~m] == 0).all()
                # masked tiles do not influence the result at all
                z2 = z.masked_fill(~m.unsqueeze(-1), 1e4)
                h2 = h.masked_fill(~m.unsqueeze(-1), -50.0)
                torch.testing.assert_close(pool(h2, z2, m)[0], bag)


@pytest.mark.parametrize("name", ["max", "topk", "attention", "gated"])
def test_a_bag_without_selected_tiles_is_an_error(name):
    pool = _all_pools(2, 4)[name]
    mask = torch.tensor([[True, False, False], [False, False, False]])
    with pytest.raises(ValueError, match=r"bag\(s\) \[1\] have no selected tile"):
        pool(torch.randn(2, 3, 4), torch.randn(2, 3, 2), mask)


def test_pool_input_validation():
    z = torch.randn(2, 3, 2)
    with pytest.raises(ValueError, match="Tensor\\[B, T, C\\]"):
        max_pool(torch.randn(2, 3))
    with pytest.raises(ValueError, match="bool Tensor\\[2, 3\\]"):
        max_pool(z, torch.ones(2, 3))  # float mask
    with pytest.raises(ValueError, match="bool Tensor\\[2, 3\\]"):
        topk_mean_pool(z, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="k must be >= 1"):
        topk_mean_pool(z, k=0)
    with pytest.raises(ValueError, match="width 5"):
        AttentionPool(4, 2)(torch.randn(2, 3, 5), z)


def test_topk_with_k1_is_max_and_large_k_is_mean():
    gen = torch.Generator().manual_seed(5)
    z = torch.randn(3, 6, 2, generator=gen)
    mask = _random_mask(3, 6, gen)
    torch.testing.assert_close(topk_mean_pool(z, mask, k=1), max_pool(z, mask))
    mean = (z * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
    torch.testing.assert_close(topk_mean_pool(z, mask, k=100)[0], mean)


def test_topk_ties_go_to_the_lower_index():
    z = torch.tensor([[[1.0], [2.0], [2.0], [2.0]]])
    _, w = topk_mean_pool(z, k=2)
    torch.testing.assert_close(w[0, :, 0], torch.tensor([0.0, 0.5, 0.5, 0.0]))
    _, w = max_pool(z)
    torch.testing.assert_close(w[0, :, 0], torch.tensor([0.0, 1.0, 0.0, 0.0]))


def test_max_pool_gradient_reaches_only_the_argmax_tile():
    gen = torch.Generator().manual_seed(2)
    z = torch.randn(3, 5, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    mask = _random_mask(3, 5, gen)
    bag, w = max_pool(z, mask)
    bag.sum().backward()
    torch.testing.assert_close(z.grad, w)  # one-hot on each class's argmax, 0 elsewhere
    assert (z.grad[~mask] == 0).all()


def test_topk_gradcheck():
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(2, 5, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    mask = _random_mask(2, 5, gen)
    assert torch.autograd.gradcheck(lambda x: topk_mean_pool(x, mask, k=2)[0], (z,))
    assert torch.autograd.gradcheck(lambda x: topk_mean_pool(x, None, k=3)[0], (z,))


@pytest.mark.parametrize("pool_cls", [AttentionPool, GatedAttentionPool])
def test_attention_gradcheck(pool_cls):
    torch.manual_seed(4)
    gen = torch.Generator().manual_seed(4)
    pool = pool_cls(4, 3, attention_dim=5).double()
    h = torch.randn(2, 4, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    z = torch.randn(2, 4, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    mask = _random_mask(2, 4, gen)
    for m in (None, mask):
        assert torch.autograd.gradcheck(lambda a, b, m=m: pool(a, b, m), (h, z))
    pool(h, z, mask)[0].sum().backward()
    for p in pool.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_attention_pools_are_permutation_equivariant():
    torch.manual_seed(6)
    pool = GatedAttentionPool(4, 2, 8)
    h, z = torch.randn(3, 6, 4), torch.randn(3, 6, 2)
    perm = torch.randperm(6)
    with torch.no_grad():
        bag, w = pool(h, z)
        bag_p, w_p = pool(h[:, perm], z[:, perm])
    torch.testing.assert_close(bag_p, bag)
    torch.testing.assert_close(w_p, w[:, perm])


# --------------------------------------------------------------------------- expert


def _expert(pooling="max", **kw):
    torch.manual_seed(0)
    cfg = MILExpertConfig(pooling=pooling, tile_size=32, attention_dim=8, **kw)
    return MILExpert(cfg, num_classes=3).eval()


@pytest.mark.parametrize("pooling", ["max", "topk", "attention", "gated_attention"])
def test_expert_output_shapes_and_keys(pooling):
    model = _expert(pooling, hidden=16)
    tiles = torch.rand(2, 5, 3, 32, 32)
    with torch.no_grad():
        outs = [model.train()(tiles), model.eval()(tiles)]
    for out in outs:
        assert list(out) == ["tile_logits", "bag_logits", "weights", "tile_features"]
        assert out["tile_logits"].shape == (2, 5, 3)
        assert out["bag_logits"].shape == (2, 3)
        assert out["weights"].shape == (2, 5, 3)
        assert out["tile_features"].shape == (2, 5, model.num_features)
        torch.testing.assert_close(out["weights"].sum(1), torch.ones(2, 3))


class _BatchSizes:
    """Forward hook recording the batch size of every backbone call."""

    def __init__(self, module):
        self.sizes: list[int] = []
        self.handle = module.register_forward_hook(lambda m, a, o: self.sizes.append(a[0].shape[0]))


@pytest.mark.parametrize("pooling", ["max", "topk", "attention", "gated_attention"])
def test_masked_forward_equals_the_expert_on_the_selected_tiles_alone(pooling):
    model = _expert(pooling)
    gen = torch.Generator().manual_seed(1)
    tiles = torch.rand(3, 5, 3, 32, 32, generator=gen)
    mask = torch.tensor([[True, False, True, False, False], [False] * 4 + [True], [True] * 5])
    calls = _BatchSizes(model.backbone)
    with torch.no_grad():
        out = model(tiles, mask)
    assert calls.sizes == [int(mask.sum())]  # one call, unselected tiles never scored
    for b in range(3):
        sel = mask[b].nonzero().flatten()
        with torch.no_grad():
            alone = model(tiles[b : b + 1, sel])
        torch.testing.assert_close(out["bag_logits"][b], alone["bag_logits"][0])
        torch.testing.assert_close(out["tile_logits"][b, sel], alone["tile_logits"][0])
        torch.testing.assert_close(out["weights"][b, sel], alone["weights"][0])
    assert (out["tile_logits"][~mask] == 0).all() and (out["weights"][~mask] == 0).all()
    assert (out["tile_features"][~mask] == 0).all()
    assert calls.sizes[1:] == [2, 1, 5]
    calls.handle.remove()


def test_unmasked_forward_is_one_batched_backbone_call():
    model = _expert()
    calls = _BatchSizes(model.backbone)
    with torch.no_grad():
        model(torch.rand(2, 4, 3, 32, 32))
    assert calls.sizes == [8]


def test_masked_forward_gradients_reach_only_selected_tiles():
    model = _expert("attention").train()
    tiles = torch.rand(2, 3, 3, 32, 32, requires_grad=True)
    mask = torch.tensor([[True, False, True], [False, True, False]])
    model(tiles, mask)["bag_logits"].sum().backward()
    per_tile = tiles.grad.abs().sum(dim=(2, 3, 4))  # (B, T)
    assert (per_tile[~mask] == 0).all() and (per_tile[mask] > 0).all()


def test_expert_rejects_empty_bags_before_the_backbone():
    model = _expert()
    calls = _BatchSizes(model.backbone)
    with pytest.raises(ValueError, match="no selected tile"):
        model(torch.rand(2, 3, 3, 32, 32), torch.tensor([[True, False, False], [False] * 3]))
    assert calls.sizes == []


def test_tiles_are_resized_to_tile_size():
    model = _expert()  # tile_size 32
    big = torch.rand(4, 3, 64, 48)
    calls = []
    model.backbone.register_forward_hook(lambda m, a, o: calls.append(tuple(a[0].shape)))
    with torch.no_grad():
        logits, feats = model.score_tiles(big)
        small = F.interpolate(big, size=(32, 32), mode="bilinear", antialias=True)
        ref_logits, ref_feats = model.score_tiles(small)
    assert calls == [(4, 3, 32, 32)] * 2
    torch.testing.assert_close(logits, ref_logits)
    torch.testing.assert_close(feats, ref_feats)
    assert logits.shape == (4, 3) and feats.shape == (4, model.num_features)


def test_expert_validation():
    with pytest.raises(ConfigError, match="at least 2 classes"):
        MILExpert(MILExpertConfig(), num_classes=1)
    with pytest.raises(ValueError, match="Tensor\\[B, T, 3, h, w\\]"):
        _expert()(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError):
        MILExpertConfig(pooling="mean")


# --------------------------------------------------------------------------- scouter


@pytest.mark.parametrize(
    ("hw", "grid"),
    [((48, 96), (4, 4)), ((100, 37), (3, 5)), ((64, 64), (8, 8)), ((40, 80), (1, 1))],
)
def test_scouter_shapes_for_any_image_and_grid(hw, grid):
    torch.manual_seed(0)
    model = Scouter(ScouterConfig(input_size=(64, 96)), grid=grid).eval()
    assert model.dims == {"grid": list(grid)}
    with torch.no_grad():
        out = model(torch.rand(2, 3, *hw))
    assert list(out) == ["logits", "importance"]
    assert out["logits"].shape == (2, *grid)
    torch.testing.assert_close(out["importance"], torch.sigmoid(out["logits"]))


def test_scouter_is_one_backbone_call_at_input_size(monkeypatch):
    model = Scouter(ScouterConfig(input_size=(32, 48)), grid=(2, 3))
    shapes = []
    features = model.backbone.forward_features

    def spy(x):
        shapes.append(tuple(x.shape))
        return features(x)

    monkeypatch.setattr(model.backbone, "forward_features", spy)
    with torch.no_grad():
        model(torch.rand(3, 3, 50, 70))
    assert shapes == [(3, 3, 32, 48)]


def test_scouter_validation():
    with pytest.raises(ConfigError, match="grid"):
        Scouter(ScouterConfig(), grid=(0, 4))
    with pytest.raises(ConfigError, match="grid"):
        Scouter(ScouterConfig(), grid=(2, 2, 2))
    with pytest.raises(ValueError, match="Tensor\\[B, 3, H, W\\]"):
        Scouter(ScouterConfig())(torch.rand(3, 8, 8))


@pytest.mark.parametrize("pooling", ["max", "topk", "attention", "gated_attention"])
def test_negative_class_pools_tile_log_odds_against_it(pooling):
    """With a healthy class, its bag logit is 0 and a disease's is the pooled tile log-odds:
    a bag is diseased when some tile prefers the disease over healthy."""
    torch.manual_seed(0)
    cfg = MILExpertConfig(pooling=pooling, tile_size=32, attention_dim=8, topk=2)
    model = MILExpert(cfg, num_classes=3, negative_class=0).eval()
    plain = MILExpert(cfg, num_classes=3).eval()
    plain.load_state_dict(model.state_dict())
    tiles = torch.rand(2, 5, 3, 32, 32)
    with torch.no_grad():
        out = model(tiles)
        ref = plain.pool(out["tile_logits"] - out["tile_logits"][..., :1], out["tile_features"])
    torch.testing.assert_close(out["bag_logits"][:, 0], torch.zeros(2))
    torch.testing.assert_close(out["bag_logits"], ref[0])
    if pooling == "max":
        log_odds = out["tile_logits"][..., 1:] - out["tile_logits"][..., :1]
        torch.testing.assert_close(out["bag_logits"][:, 1:], log_odds.max(dim=1).values)
    with pytest.raises(ConfigError, match="negative_class 3"):
        MILExpert(cfg, num_classes=3, negative_class=3)
