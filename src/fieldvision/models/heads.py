"""Prediction heads: a generic MLP head and the mass-balanced biomass head.

The biomass head predicts the three physical components (green, dead, clover) as
non-negative numbers and derives the two composite targets from them, so
``GDM = green + clover`` and ``total = green + dead + clover`` hold exactly for every
prediction, as they do in the labels.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from fieldvision.schemas.biomass import COMPONENTS, derive_targets

__all__ = ["BiomassHead", "MLPHead"]

# softplus(_UNIT_BIAS) == 1: an untrained head predicts one "scale unit" per component.
_UNIT_BIAS = math.log(math.e - 1.0)


class MLPHead(nn.Module):
    """``Linear → GELU → Dropout → Linear`` (or a single ``Linear`` when ``hidden=0``).

    Args:
        in_dim: Input width.
        out_dim: Output width.
        hidden: Hidden width; 0 for a linear head.
        dropout: Dropout before the last layer.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 128, dropout: float = 0.0) -> None:
        super().__init__()
        if hidden > 0:
            self.net: nn.Module = nn.Sequential(
                nn.Linear(in_dim, hidden),
                nn.GELU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, out_dim),
            )
        else:
            self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, out_dim))

    @property
    def last(self) -> nn.Linear:
        """The output layer (for custom initialisation)."""
        return self.net[-1]

    def forward(self, x: Tensor) -> Tensor:
        """``x: Tensor[B, in_dim] -> Tensor[B, out_dim]``."""
        return self.net(x)


class BiomassHead(nn.Module):
    """MLP that predicts non-negative (green, dead, clover) and derives GDM and total.

    Outputs are in *scaled* units: the caller multiplies the components by a per-component
    scale (e.g. the training-set means in grams) before composing, see `forward`. The last
    bias starts at ``softplus⁻¹(1)`` so an untrained head predicts one scale unit per
    component instead of ~0.69.

    Args:
        in_dim: Input width.
        hidden: Hidden width of the MLP (0 for linear).
        dropout: Dropout before the last layer.
    """

    def __init__(self, in_dim: int, hidden: int = 128, dropout: float = 0.0) -> None:
        super().__init__()
        self.mlp = MLPHead(in_dim, len(COMPONENTS), hidden, dropout)
        nn.init.constant_(self.mlp.last.bias, _UNIT_BIAS)

    def components(self, x: Tensor) -> Tensor:
        """Non-negative components in scaled units: ``Tensor[B, in_dim] -> Tensor[B, 3]``."""
        return F.softplus(self.mlp(x))

    def forward(self, x: Tensor, scale: Tensor | None = None) -> Tensor:
        """Predict the 5 targets.

        Args:
            x: Tensor[B, in_dim].
            scale: Optional Tensor[3] per-component scale applied *before* composing, so the
                mass balance holds exactly in the scaled output units.

        Returns:
            Tensor[B, 5] in `TARGETS` order (`fieldvision.schemas.biomass`), all ≥ 0.
        """
        comps = self.components(x)  # (B, 3)
        if scale is not None:
            comps = comps * scale
        return derive_targets(comps)
