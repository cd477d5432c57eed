"""Token pools (mean, attention with a learned query) and GeM."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fieldvision.errors import ConfigError
from fieldvision.models.pooling import AttentionPool, GeM, MeanPool, gem


def _reference_attention_pool(pool: AttentionPool, tokens: torch.Tensor):
    """Slow, explicit multi-head attention of one learned query over the tokens."""
    attn = pool.attn
    d = tokens.shape[-1]
    h = attn.num_heads
    dh = d // h
    wq, wk, wv = attn.in_proj_weight.split(d)
    bq, bk, bv = attn.in_proj_bias.split(d)
    kv = F.layer_norm(tokens, (d,), pool.norm.weight, pool.norm.bias, pool.norm.eps)
    pooled, weights = [], []
    for b in range(tokens.shape[0]):
        q = pool.query[0, 0] @ wq.T + bq  # (D,)
        k = kv[b] @ wk.T + bk  # (T, D)
        v = kv[b] @ wv.T + bv  # (T, D)
        heads, head_w = [], []
        for i in range(h):
            sl = slice(i * dh, (i + 1) * dh)
            scores = (k[:, sl] @ q[sl]) / math.sqrt(dh)  # (T,)
            a = torch.softmax(scores, dim=0)
            heads.append(a @ v[:, sl])
            head_w.append(a)
        out = torch.cat(heads) @ attn.out_proj.weight.T + attn.out_proj.bias
        pooled.append(out)
        weights.append(torch.stack(head_w).mean(0))
    return torch.stack(pooled), torch.stack(weights)


def test_mean_pool_is_mean_with_uniform_weights():
    x = torch.randn(3, 5, 7)
    pooled, w = MeanPool()(x)
    torch.testing.assert_close(pooled, x.mean(1))
    torch.testing.assert_close(w, torch.full((3, 5), 0.2))


@pytest.mark.parametrize("num_heads", [1, 4])
def test_attention_pool_matches_reference(num_heads):
    torch.manual_seed(0)
    pool = AttentionPool(8, num_heads=num_heads).double().eval()
    with torch.no_grad():
        pool.query.normal_()  # a non-trivial query so the weights are not near-uniform
        pool.norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(2, 6, 8, dtype=torch.float64)
    pooled, w = pool(x)
    ref_pooled, ref_w = _reference_attention_pool(pool, x)
    torch.testing.assert_close(pooled, ref_pooled)
    torch.testing.assert_close(w, ref_w)
    assert w.shape == (2, 6)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, dtype=torch.float64))
    assert w.std() > 1e-3  # weights really depend on the tokens


@pytest.mark.parametrize("pool_cls", [MeanPool, lambda: AttentionPool(12, num_heads=3)])
def test_token_pools_are_permutation_invariant(pool_cls):
    torch.manual_seed(1)
    pool = pool_cls().eval()
    x = torch.randn(4, 8, 12)
    perm = torch.randperm(8)
    pooled, w = pool(x)
    pooled_p, w_p = pool(x[:, perm])
    torch.testing.assert_close(pooled_p, pooled, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(w_p, w[:, perm], atol=1e-6, rtol=1e-5)


def test_attention_pool_gradcheck():
    torch.manual_seed(2)
    pool = AttentionPool(4, num_heads=2).double()
    x = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: pool(t)[0], (x,))
    assert torch.autograd.gradcheck(lambda t: pool(t)[1], (x,))
    pool(x)[0].sum().backward()
    assert pool.query.grad is not None and pool.query.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("dim", "heads", "error"),
    [(8, 4, None), (8, 3, ConfigError), (8, 0, ConfigError), (96, 4, None)],
)
def test_attention_pool_head_validation(dim, heads, error):
    if error is None:
        AttentionPool(dim, num_heads=heads)
    else:
        with pytest.raises(error, match="num_heads"):
            AttentionPool(dim, num_heads=heads)


def test_gem_p1_is_average_pool():
    x = torch.rand(2, 3, 5, 4) + 0.1
    torch.testing.assert_close(GeM(p=1.0)(x), F.adaptive_avg_pool2d(x, 1).flatten(1))


def test_gem_large_p_approaches_max():
    x = torch.rand(2, 3, 6, 6, dtype=torch.float64) + 0.1
    mx = x.amax(dim=(2, 3))
    err = [(gem(x, p) - mx).abs().max().item() for p in (3.0, 20.0, 200.0)]
    assert err[0] > err[1] > err[2]
    assert err[2] < 0.03 * mx.max().item()
    assert torch.all(gem(x, 200.0) <= mx + 1e-9)  # a power mean never exceeds the max


def test_gem_matches_reference_loop():
    x = torch.rand(1, 2, 3, 3, dtype=torch.float64)
    p = 2.5
    ref = [(sum(v**p for v in x[0, c].flatten().tolist()) / 9) ** (1 / p) for c in range(2)]
    torch.testing.assert_close(gem(x, p)[0], torch.tensor(ref, dtype=torch.float64))


def test_gem_learnable_flag_and_gradcheck():
    learn = GeM(p=3.0).double()
    fixed = GeM(p=3.0, learnable=False)
    assert [n for n, _ in learn.named_parameters()] == ["p"]
    assert list(fixed.parameters()) == [] and "p" in dict(fixed.named_buffers())
    x = (torch.rand(2, 3, 4, 4, dtype=torch.float64) + 0.1).requires_grad_()
    assert torch.autograd.gradcheck(learn, (x,))
    p = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t, q: gem(t, q), (x, p))
    learn(x).sum().backward()
    assert learn.p.grad is not None and torch.isfinite(learn.p.grad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_gem_keeps_dtype(dtype):
    x = torch.rand(2, 4, 3, 3, dtype=dtype) + 0.1
    assert GeM()(x).dtype == dtype
