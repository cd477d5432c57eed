"""FiLM: feature-wise linear modulation of image features by a conditioning vector.

``FiLM(f, c) = γ(c) ⊙ f + β(c)`` with ``γ = 1 + Δγ``. The conditioning (here: Phase-1
predicted metadata such as month, NDVI, height) changes *how* the visual features are read
rather than being concatenated as extra evidence. The generator's last layer starts at zero,
so an untrained FiLM is exactly the identity and adding it cannot hurt a model at step 0.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["FiLM"]


class FiLM(nn.Module):
    """Condition features on a small vector through a per-channel scale and shift.

    Args:
        cond_dim: Width ``M`` of the conditioning vector.
        feat_dim: Width ``D`` of the features being modulated.
        hidden: Hidden width of the γ/β generator MLP.
    """

    def __init__(self, cond_dim: int, feat_dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.feat_dim = feat_dim
        self.generator = nn.Sequential(
            nn.Linear(cond_dim, hidden),
            nn.SiLU(),
            nn.Linear(hidden, 2 * feat_dim),
        )
        # Zero last layer: Δγ = β = 0, so FiLM starts as the exact identity.
        last = self.generator[-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, f: Tensor, cond: Tensor) -> Tensor:
        """Modulate features.

        Args:
            f: Tensor[B, D] features.
            cond: Tensor[B, M] conditioning vector.

        Returns:
            Tensor[B, D]: ``(1 + Δγ(cond)) ⊙ f + β(cond)``.
        """
        delta_gamma, beta = self.generator(cond).chunk(2, dim=-1)  # (B, D), (B, D)
        return f + delta_gamma * f + beta
