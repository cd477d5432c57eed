"""Pooling layers: token pooling (mean, attention with a learned query) and GeM for maps.

Token pools take ``tokens: Tensor[B, T, D]`` (e.g. one token per image tile) and return
``(pooled: Tensor[B, D], weights: Tensor[B, T])`` so callers can swap them freely and always
get per-token weights to visualise (uniform for `MeanPool`). Neither uses positions, so both
are invariant to the order of the tokens.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fieldvision.errors import ConfigError

__all__ = ["AttentionPool", "GeM", "MeanPool", "gem"]


class MeanPool(nn.Module):
    """Average of the tokens; weights are uniform ``1 / T``."""

    def forward(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """Pool tokens.

        Args:
            tokens: Tensor[B, T, D].

        Returns:
            ``(pooled: Tensor[B, D], weights: Tensor[B, T])``.
        """
        b, t, _ = tokens.shape
        weights = tokens.new_full((b, t), 1.0 / max(t, 1))  # (B, T)
        return tokens.mean(dim=1), weights


class AttentionPool(nn.Module):
    """Multi-head attention pooling: one learned query token attends over the T tokens.

    The query is a parameter (not computed from the tokens), so the pool learns *which kind*
    of token matters (e.g. tiles with dense clover) while staying permutation invariant.
    Keys and values are layer-normalised first so the softmax temperature does not drift
    with the backbone's feature scale.

    Args:
        dim: Token width ``D``; must be divisible by `num_heads`.
        num_heads: Attention heads; the returned weights are averaged over heads.
        dropout: Dropout on the attention weights (training only).

    Raises:
        ConfigError: `dim` is not divisible by `num_heads`.
    """

    def __init__(self, dim: int, num_heads: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        if num_heads < 1 or dim % num_heads != 0:
            raise ConfigError(
                f"attention pooling: feature width {dim} is not divisible by num_heads={num_heads}",
                hint="pick num_heads among the divisors of the backbone's feature width",
            )
        self.query = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.query, std=0.02)
        self.norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)

    def forward(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """Pool tokens.

        Args:
            tokens: Tensor[B, T, D].

        Returns:
            ``(pooled: Tensor[B, D], weights: Tensor[B, T])``; weight rows sum to 1.
        """
        b = tokens.shape[0]
        kv = self.norm(tokens)  # (B, T, D)
        query = self.query.expand(b, -1, -1)  # (B, 1, D)
        pooled, weights = self.attn(
            query, kv, kv, need_weights=True, average_attn_weights=True
        )  # (B, 1, D), (B, 1, T)
        return pooled.squeeze(1), weights.squeeze(1)


def gem(x: Tensor, p: Tensor | float = 3.0, eps: float = 1e-6) -> Tensor:
    """Generalized-mean pooling over the spatial dimensions.

    ``(mean(clamp(x, eps) ** p)) ** (1 / p)``: ``p = 1`` is average pooling, ``p → ∞``
    approaches max pooling.

    Args:
        x: Tensor[B, C, H, W] feature map.
        p: Exponent (a float or a scalar tensor, possibly learnable).
        eps: Lower clamp so fractional powers of non-positive values stay defined.

    Returns:
        Tensor[B, C].
    """
    return x.clamp(min=eps).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)


class GeM(nn.Module):
    """Generalized-mean pooling of feature maps with a (by default learnable) exponent.

    Args:
        p: Initial exponent.
        eps: Lower clamp of the activations.
        learnable: Learn `p` by gradient descent.
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6, learnable: bool = True) -> None:
        super().__init__()
        if learnable:
            self.p = nn.Parameter(torch.tensor(float(p)))
        else:
            self.register_buffer("p", torch.tensor(float(p)))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        """Pool a feature map ``x: Tensor[B, C, H, W]`` to ``Tensor[B, C]``."""
        # The exponent is computed in x's dtype so float64 gradchecks stay float64.
        return gem(x, self.p.to(x.dtype), self.eps)

    def extra_repr(self) -> str:
        return f"p={float(self.p):.3f}, eps={self.eps}"
