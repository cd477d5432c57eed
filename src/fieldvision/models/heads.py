"""Prediction heads: a generic MLP head and the mass-balanced biomass head.

The biomass head predicts the three physical components (green, dead, clover) as
non-negative numbers and derives the two composite targets from them, so
``GDM = green + clover`` and ``total = green + dead + clover`` hold exactly for every
prediction, as they do in the labels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["BIOMASS_COMPONENTS", "BIOMASS_TARGETS", "BiomassHead", "MLPHead", "compose_targets"]

# Output order of the biomass models; the same order as `fieldvision.data.biomass.TARGETS`
# (models sit below data in the layering, so the names are repeated here and a test keeps
# the two in sync).
BIOMASS_TARGETS: tuple[str, ...] = (
    "Dry_Green_g",
    "Dry_Dead_g",
    "Dry_Clover_g",
    "GDM_g",
    "Dry_Total_g",
)
BIOMASS_COMPONENTS: tuple[str, ...] = BIOMASS_TARGETS[:3]

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


def compose_targets(components: Tensor) -> Tensor:
    """Derive the 5 biomass targets from the 3 components.

    Args:
        components: Tensor[..., 3] ordered (green, dead, clover).

    Returns:
        Tensor[..., 5] ordered like `BIOMASS_TARGETS`:
        (green, dead, clover, green + clover, green + dead + clover).
    """
    green, dead, clover = components.unbind(dim=-1)
    gdm = green + clover
    total = gdm + dead
    return torch.stack([green, dead, clover, gdm, total], dim=-1)


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
        self.mlp = MLPHead(in_dim, len(BIOMASS_COMPONENTS), hidden, dropout)
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
            Tensor[B, 5] in `BIOMASS_TARGETS` order, all ≥ 0.
        """
        comps = self.components(x)  # (B, 3)
        if scale is not None:
            comps = comps * scale
        return compose_targets(comps)
