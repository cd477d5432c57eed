"""Phase-2 head variants: interval-classification auxiliary heads and the balance projection.

Two alternatives to the plain 3-component `BiomassHead` (``fieldvision.models.heads``),
each a `Phase2Config` switch:

* **Interval classification** (``phase2.bins = K > 0``): next to the regression head, a
  classifier per component (green, dead, clover) over K quantile bins of the training fold.
  It is trained with cross-entropy (`bin_cross_entropy`) on the bin of the true value, and
  the prediction blends the regression with the bin expectation (`blend_bins`):
  ``(1 − α)·regression + α·Σ_k softmax(logits)_k · centre_k``.
* **Balance projection** (``phase2.head = "projection"``): `ProjectionHead` predicts all five
  targets independently and projects them orthogonally onto the mass-balanced subspace
  ``{GDM = green + clover, total = green + dead + clover}`` (`balance_projection`).

Both end in three non-negative components from which `derive_targets` builds the five
targets, so the mass balance of the final prediction stays exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fieldvision.errors import ConfigError
from fieldvision.models.heads import MLPHead
from fieldvision.schemas.biomass import COMPONENTS, TARGETS

__all__ = [
    "BALANCE_CONSTRAINTS",
    "BinHead",
    "ProjectionHead",
    "assign_bins",
    "balance_projection",
    "bin_cross_entropy",
    "bin_expectation",
    "blend_bins",
    "check_bins",
    "quantile_bins",
]

# softplus(_UNIT_BIAS) == 1 (as in `BiomassHead`): an untrained head predicts one scale unit.
_UNIT_BIAS = math.log(math.e - 1.0)

#: The 2×5 constraint matrix A (`TARGETS` order): ``A @ y = 0`` is the mass balance,
#: row 0 ``green + clover − GDM``, row 1 ``green + dead + clover − total``.
BALANCE_CONSTRAINTS: tuple[tuple[float, ...], ...] = (
    (1.0, 0.0, 1.0, -1.0, 0.0),
    (1.0, 1.0, 1.0, 0.0, -1.0),
)


# --------------------------------------------------------------------------- projection


def balance_projection(scale: Sequence[float] | Tensor | None = None) -> Tensor:
    """The orthogonal projection onto the mass-balanced subspace, in scaled units.

    With ``u = y / s`` (grams divided by the per-target scale, so that targets of very
    different magnitudes weigh alike: the same units the loss uses), the constraint
    ``A y = 0`` reads ``A_s u = 0`` with ``A_s = A · diag(s)``, and the projection is the
    fixed matrix ``P = I − A_sᵀ (A_s A_sᵀ)⁻¹ A_s`` (computed in float64). ``u @ P.T`` is the
    balanced vector closest to ``u`` in the Euclidean norm of scaled units.

    Args:
        scale: 5 positive per-target scales (`TARGETS` order); None = 1 (grams).

    Returns:
        Tensor[5, 5] float32, symmetric and idempotent.

    Raises:
        ConfigError: `scale` is not 5 positive numbers.
    """
    s = torch.ones(len(TARGETS), dtype=torch.float64)
    if scale is not None:
        s = torch.as_tensor(scale, dtype=torch.float64).flatten()
    if s.shape != (len(TARGETS),) or not bool((s > 0).all()):
        raise ConfigError(f"balance projection: scale must be 5 positive numbers, got {scale!r}")
    a = torch.tensor(BALANCE_CONSTRAINTS, dtype=torch.float64) * s  # (2, 5) = A · diag(s)
    p = torch.eye(len(TARGETS), dtype=torch.float64) - a.T @ torch.linalg.solve(a @ a.T, a)
    return p.float()


class ProjectionHead(nn.Module):
    """MLP predicting the 5 targets independently (≥ 0), then projected to mass balance.

    The projection (`balance_projection`) is a constant matmul, so ONNX exports it as one.
    The projected vector can leave the non-negative orthant (e.g. a large GDM against small
    green and clover pushes dead below 0): its three components are then clamped at 0 and
    `Phase2Model` re-derives GDM and total from them, so the balance stays exact and every
    target stays ≥ 0; where a clamp acts, the result is no longer the exact orthogonal
    projection (and that component gets no gradient from that sample).

    The last bias starts at ``softplus⁻¹(1)``: an untrained head predicts one scale unit for
    every target, which is already balanced when the scales are the training means.

    Args:
        in_dim: Input width.
        scale: 5 per-target scales in grams (the units the projection is orthogonal in).
        hidden: Hidden width of the MLP (0 for linear).
        dropout: Dropout before the last layer.
    """

    def __init__(
        self,
        in_dim: int,
        scale: Sequence[float] | Tensor | None = None,
        hidden: int = 128,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.mlp = MLPHead(in_dim, len(TARGETS), hidden, dropout)
        nn.init.constant_(self.mlp.last.bias, _UNIT_BIAS)
        # Persistent: a checkpoint carries the projection its scales defined.
        self.register_buffer("projection", balance_projection(scale))

    def raw(self, x: Tensor) -> Tensor:
        """Independent non-negative targets in scaled units: Tensor[B, in_dim] -> Tensor[B, 5]."""
        return F.softplus(self.mlp(x))

    def project(self, u: Tensor) -> Tensor:
        """Orthogonal projection of Tensor[B, 5] scaled targets (no clamping): Tensor[B, 5]."""
        return u @ self.projection.to(u.dtype).T

    def components(self, x: Tensor) -> Tensor:
        """Projected components in scaled units, clamped at 0: Tensor[B, in_dim] -> Tensor[B, 3]."""
        return self.project(self.raw(x))[:, : len(COMPONENTS)].clamp_min(0.0)


# --------------------------------------------------------------------------- bins


def quantile_bins(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """K quantile bins per component and the mean training value inside each.

    Edges are the ``0, 1/K, …, 1`` quantiles of each column. Centres are the *mean of the
    training values in the bin*, not the midpoint: the bin expectation ``Σ p_k c_k`` is then
    the conditional mean when the classifier is right, whereas the midpoint is biased in
    skewed bins (the top bin spans up to the largest outlier). A bin left empty by repeated
    edges (e.g. many clover zeros) takes the midpoint of its edges; it never gets a label.

    Args:
        values: Array[N, 3] training component values in grams (green, dead, clover).
        k: Number of bins, ≥ 2.

    Returns:
        ``(edges: float64[3, K + 1], centres: float64[3, K])``, grams.

    Raises:
        ConfigError: Fewer than 2 bins, or no / non-finite values.
    """
    values = np.asarray(values, dtype=np.float64)
    if k < 2:
        raise ConfigError(f"phase2.bins must be 0 (off) or at least 2, got {k}")
    if values.ndim != 2 or values.shape[1] != len(COMPONENTS) or len(values) == 0:
        raise ConfigError(f"bins need Array[N ≥ 1, 3] component values, got {values.shape}")
    if not np.isfinite(values).all():
        raise ConfigError("bins: the training component values contain NaN or inf")
    edges = np.quantile(values, np.linspace(0.0, 1.0, k + 1), axis=0).T  # (3, K+1)
    labels = assign_bins(torch.from_numpy(values), torch.from_numpy(edges)).numpy()  # (N, 3)
    centres = (edges[:, :-1] + edges[:, 1:]) / 2.0
    for j in range(len(COMPONENTS)):
        for b in range(k):
            inside = values[labels[:, j] == b, j]
            if inside.size:
                centres[j, b] = inside.mean()
    return edges, centres


def check_bins(edges: Tensor, centres: Tensor, k: int) -> None:
    """Refuse bin edges / centres that do not fit `k` bins per component.

    Raises:
        ConfigError: Shapes other than ``[3, K + 1]`` / ``[3, K]``, non-finite values, or
            decreasing edges.
    """
    if tuple(edges.shape) != (len(COMPONENTS), k + 1) or tuple(centres.shape) != (
        len(COMPONENTS),
        k,
    ):
        raise ConfigError(
            f"phase2.bins={k} needs bin_edges [3, {k + 1}] and bin_centres [3, {k}], got "
            f"{list(edges.shape)} and {list(centres.shape)}"
        )
    if not (torch.isfinite(edges).all() and torch.isfinite(centres).all()):
        raise ConfigError("bin_edges / bin_centres contain NaN or inf")
    if bool((edges[:, 1:] < edges[:, :-1]).any()):
        raise ConfigError("bin_edges must be non-decreasing along each component")


def assign_bins(values: Tensor, edges: Tensor) -> Tensor:
    """The bin of each component value: the number of inner edges ≤ the value.

    A value on an inner edge belongs to the bin above it; values below the first edge go to
    bin 0 and above the last to bin K − 1 (outside the training range = the outer bins).

    Args:
        values: Tensor[B, 3] grams.
        edges: Tensor[3, K + 1] grams, non-decreasing per row.

    Returns:
        Tensor[B, 3] int64 in ``[0, K)``.
    """
    inner = edges[:, 1:-1].to(values.dtype)  # (3, K-1)
    return (values.unsqueeze(-1) >= inner).sum(dim=-1)  # (B, 3)


def bin_expectation(logits: Tensor, centres: Tensor) -> Tensor:
    """``Σ_k softmax(logits)_k · centre_k`` per component.

    Args:
        logits: Tensor[B, 3, K].
        centres: Tensor[3, K] grams.

    Returns:
        Tensor[B, 3] grams.
    """
    return (logits.softmax(dim=-1) * centres.to(logits.dtype)).sum(dim=-1)


def blend_bins(regression: Tensor, logits: Tensor, centres: Tensor, alpha: float) -> Tensor:
    """``(1 − α)·regression + α·bin_expectation``: Tensor[B, 3] grams (≥ 0 if both are)."""
    if alpha == 0.0:  # exactly the regression (no 0 · x rounding)
        return regression
    if alpha == 1.0:
        return bin_expectation(logits, centres)
    return (1.0 - alpha) * regression + alpha * bin_expectation(logits, centres)


def bin_cross_entropy(logits: Tensor, components: Tensor, edges: Tensor) -> Tensor:
    """Cross-entropy of the bin classifiers against the bins of the true components.

    Args:
        logits: Tensor[B, 3, K].
        components: Tensor[B, 3] true grams (green, dead, clover).
        edges: Tensor[3, K + 1] grams.

    Returns:
        Scalar: the mean over samples and components.
    """
    labels = assign_bins(components.to(edges.dtype), edges)  # (B, 3)
    return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten())


class BinHead(nn.Module):
    """MLP giving K bin logits per component: ``Tensor[B, in_dim] -> Tensor[B, 3, K]``.

    Args:
        in_dim: Input width.
        n_bins: Bins per component, ≥ 2.
        hidden: Hidden width (0 for linear).
        dropout: Dropout before the last layer.
    """

    def __init__(self, in_dim: int, n_bins: int, hidden: int = 128, dropout: float = 0.0) -> None:
        super().__init__()
        self.n_bins = int(n_bins)
        self.mlp = MLPHead(in_dim, len(COMPONENTS) * self.n_bins, hidden, dropout)

    def forward(self, x: Tensor) -> Tensor:
        """Bin logits: Tensor[B, 3, K]."""
        return self.mlp(x).unflatten(-1, (len(COMPONENTS), self.n_bins))
