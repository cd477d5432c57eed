"""Biomass models: Phase 1 (metadata from the image) and Phase 2 (biomass from image + meta).

Phase 1 (`Phase1Model`): the cleaned 2:1 image is resized, split into left and right
halves, both go through one shared backbone and their features are averaged; small heads
predict month as (sin, cos), NDVI and height (z-scored) and, optionally, species and state.

Phase 2 (`Phase2Model`): views = 1 global (resized whole image) + R×C tiles cut from the
full-resolution image; one shared backbone encodes every view; tile tokens are pooled by
mean or attention with a learned query; the global feature and the tile aggregate are fused
at feature level, modulated by FiLM on the Phase-1 metadata (identity at init), and a head
predicts non-negative (green, dead, clover) and derives GDM and total (mass balance exact).
Head variants (``head="projection"``, interval-classification ``bins``) live in
`fieldvision.models.biomass_heads`.

Both models take images in ``[0, 1]`` and normalise them internally (ImageNet statistics),
so every caller (training, TTA, export) feeds the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import Tensor, nn

from fieldvision.errors import ConfigError
from fieldvision.models.backbone import BackboneChoice, backbone_for, size_pair
from fieldvision.models.biomass_heads import BinHead, ProjectionHead, blend_bins, check_bins
from fieldvision.models.film import FiLM
from fieldvision.models.heads import BiomassHead, MLPHead
from fieldvision.models.normalize import Normalize
from fieldvision.models.pooling import AttentionPool, MeanPool
from fieldvision.models.registry import register_model
from fieldvision.ops.tiling import global_view, grid_tiles, halves
from fieldvision.schemas.biomass import TARGETS, WEIGHTS, derive_targets

__all__ = [
    "PHASE1_TASKS",
    "Phase1Config",
    "Phase1Model",
    "Phase2Config",
    "Phase2Model",
    "phase1_loss",
    "weighted_biomass_loss",
]

# Phase-1 task names, as used in outputs and `task_weights`.
PHASE1_TASKS: tuple[str, ...] = ("month", "ndvi", "height", "species", "state")


def _encode(backbone: nn.Module, views: Tensor, channels_last: bool) -> Tensor:
    """Pooled backbone features of a batch of views: Tensor[N, 3, h, w] -> Tensor[N, C]."""
    if channels_last:
        views = views.contiguous(memory_format=torch.channels_last)
    return backbone(views)


def _check_image(image: Tensor, who: str) -> None:
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"{who}: expected image Tensor[B, 3, H, W], got {tuple(image.shape)}")


# --------------------------------------------------------------------------- Phase 1


class Phase1Config(BackboneChoice):
    """Phase-1 (metadata) model. Defaults are the CPU demo recipe."""

    input_size: tuple[int, int] = (128, 256)  # (H, W) the cleaned image is resized to
    hidden: int = Field(128, ge=0)  # hidden width of each task head (0 = linear heads)
    dropout: float = Field(0.1, ge=0, lt=1)  # dropout inside the task heads
    use_species: bool = True  # species head: a switch, the seed warns of negative transfer
    use_state: bool = True  # state head: same switch
    channels_last: bool = True  # NHWC backbone input: ~1.5x faster CPU training (oneDNN)


@register_model("biomass_phase1", Phase1Config)
class Phase1Model(nn.Module):
    """Predict month, NDVI, height (and optionally species, state) from the image.

    Args:
        cfg: `Phase1Config` (or a section that extends it).
        n_species: Number of species classes (data-derived; needed when ``use_species``).
        n_states: Number of state classes (data-derived; needed when ``use_state``).

    Raises:
        ConfigError: A classification head is enabled with fewer than 2 classes.
    """

    def __init__(self, cfg: Phase1Config, n_species: int = 0, n_states: int = 0) -> None:
        super().__init__()
        self.cfg = Phase1Config.narrow(cfg)
        self.dims = {"n_species": int(n_species), "n_states": int(n_states)}
        cfg = self.cfg
        self.input_size = size_pair(cfg.input_size, "input_size")
        if self.input_size[1] % 2:
            raise ConfigError(f"input_size width must be even to split in halves: {cfg.input_size}")
        for flag, n, name in (
            (cfg.use_species, n_species, "species"),
            (cfg.use_state, n_states, "state"),
        ):
            if flag and n < 2:
                raise ConfigError(
                    f"phase 1: use_{name}=true needs at least 2 {name} classes, got {n}",
                    hint=f"set use_{name}=false or pass the number of {name} classes",
                )
        self.normalize = Normalize()
        self.backbone = backbone_for(cfg, cfg.channels_last)
        c = self.backbone.num_features
        self.heads = nn.ModuleDict(
            {
                "month": MLPHead(c, 2, cfg.hidden, cfg.dropout),
                "ndvi": MLPHead(c, 1, cfg.hidden, cfg.dropout),
                "height": MLPHead(c, 1, cfg.hidden, cfg.dropout),
            }
        )
        if cfg.use_species:
            self.heads["species"] = MLPHead(c, n_species, cfg.hidden, cfg.dropout)
        if cfg.use_state:
            self.heads["state"] = MLPHead(c, n_states, cfg.hidden, cfg.dropout)

    @property
    def tasks(self) -> tuple[str, ...]:
        """The output keys of `forward`, fixed by the config."""
        return tuple(self.heads.keys())

    def features(self, image: Tensor) -> Tensor:
        """Shared image feature: mean of the left- and right-half backbone features.

        Args:
            image: Tensor[B, 3, H, W] in [0, 1].

        Returns:
            Tensor[B, C].
        """
        _check_image(image, "Phase1Model")
        x = self.normalize(global_view(image, self.input_size))  # (B, 3, h, w)
        views = halves(x)  # (B, 2, 3, h, w/2)
        b = views.shape[0]
        # (B*2, C): one batched backbone call for both halves
        feats = _encode(self.backbone, views.flatten(0, 1), self.cfg.channels_last)
        return feats.view(b, 2, -1).mean(dim=1)  # (B, C)

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        """Predict the metadata.

        Args:
            image: Tensor[B, 3, H, W] in [0, 1].

        Returns:
            ``month``: Tensor[B, 2] (sin, cos) (not normalised to the unit circle);
            ``ndvi``, ``height``: Tensor[B] in z-scored units;
            ``species``: logits Tensor[B, S] and ``state``: logits Tensor[B, K], present
            only when enabled in the config.
        """
        f = self.features(image)  # (B, C)
        out: dict[str, Tensor] = {}
        for name, head in self.heads.items():
            y = head(f)
            out[name] = y.squeeze(-1) if name in ("ndvi", "height") else y
        return out


def phase1_loss(
    outputs: Mapping[str, Tensor],
    batch: Mapping[str, Tensor],
    task_weights: Mapping[str, float] | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Weighted multi-task Phase-1 loss.

    MSE for month (sin, cos), NDVI and height (z-scored); cross-entropy for species and
    state when the model predicts them.

    Args:
        outputs: `Phase1Model` output.
        batch: ``month_sin``, ``month_cos``, ``ndvi_z``, ``height_z``: Tensor[B] float;
            ``species``, ``state``: Tensor[B] int64 (read only when predicted).
        task_weights: Weight per task name (`PHASE1_TASKS`); missing tasks weigh 1.

    Returns:
        ``(loss, parts)``: the scalar total and each task's unweighted loss (detached).

    Raises:
        ConfigError: `task_weights` names an unknown task.
    """
    weights = dict(task_weights or {})
    unknown = sorted(set(weights) - set(PHASE1_TASKS))
    if unknown:
        raise ConfigError(
            f"unknown phase-1 task weight(s) {unknown}; known tasks: {', '.join(PHASE1_TASKS)}"
        )
    month_pred = outputs["month"]
    month_true = torch.stack([batch["month_sin"], batch["month_cos"]], dim=-1)  # (B, 2)
    parts: dict[str, Tensor] = {
        "month": F.mse_loss(month_pred, month_true.to(month_pred.dtype)),
        "ndvi": F.mse_loss(outputs["ndvi"], batch["ndvi_z"].to(outputs["ndvi"].dtype)),
        "height": F.mse_loss(outputs["height"], batch["height_z"].to(outputs["height"].dtype)),
    }
    for name in ("species", "state"):
        if name in outputs:
            parts[name] = F.cross_entropy(outputs[name], batch[name].long())
    loss = sum(weights.get(name, 1.0) * value for name, value in parts.items())
    return loss, {name: value.detach() for name, value in parts.items()}  # type: ignore[return-value]


# --------------------------------------------------------------------------- Phase 2


class Phase2Config(BackboneChoice):
    """Phase-2 (biomass) model. Defaults are the CPU demo recipe; one backbone for all views."""

    global_size: tuple[int, int] = (128, 256)  # (H, W) of the resized whole-image view
    tile_grid: tuple[int, int] = (2, 4)  # (rows, cols) of tiles cut from the full image
    tile_input: tuple[int, int] | None = None  # resize tiles to (h, w); None = keep H/R × W/C
    use_tiles: bool = True  # False = global-only baseline
    aggregation: Literal["mean", "attention"] = "attention"  # tile-token pooling
    num_heads: int = Field(4, ge=1)  # attention heads (aggregation="attention")
    use_film: bool = True  # FiLM on `meta` (Phase-1 predictions); False = meta ignored
    fusion_dim: int = Field(128, ge=1)  # width after fusing global ⊕ tile aggregate
    hidden: int = Field(128, ge=0)  # hidden width of the biomass head
    dropout: float = Field(0.1, ge=0, lt=1)  # dropout in the head
    channels_last: bool = True  # NHWC backbone input: ~1.5x faster CPU training (oneDNN)
    # "components": 3 non-negative components, GDM and total derived; "projection": all 5
    # predicted, then orthogonally projected onto the mass balance (biomass_heads).
    head: Literal["components", "projection"] = "components"
    # Interval-classification auxiliary heads: K quantile bins per component of the
    # training fold (0 = off); prediction = (1 - bin_blend)·regression + bin_blend·E[bin].
    bins: int = Field(0, ge=0)
    bin_blend: float = Field(0.5, ge=0, le=1)

    @field_validator("bins")
    @classmethod
    def _bins_not_one(cls, v: int) -> int:
        if v == 1:
            raise ValueError("bins must be 0 (off) or at least 2: one bin classifies nothing")
        return v


@register_model("biomass_phase2", Phase2Config)
class Phase2Model(nn.Module):
    """Global + tiles → shared backbone → pooling → fusion → FiLM → mass-balanced head.

    Args:
        cfg: `Phase2Config` (or a section that extends it).
        meta_dim: Width of the metadata vector FiLM is conditioned on (data-derived).
        target_scale: 5 per-target scales in grams (data-derived); None = 1.
        bin_edges: ``[3][bins + 1]`` bin edges in grams per component (data-derived, see
            `quantile_bins`); required when ``cfg.bins > 0``.
        bin_centres: ``[3][bins]`` bin centres in grams, likewise.

    Raises:
        ConfigError: Invalid sizes, aggregation, target scale, or bins.
    """

    def __init__(
        self,
        cfg: Phase2Config,
        meta_dim: int = 4,
        target_scale: Sequence[float] | None = None,
        bin_edges: Sequence[Sequence[float]] | None = None,
        bin_centres: Sequence[Sequence[float]] | None = None,
    ) -> None:
        super().__init__()
        self.cfg = Phase2Config.narrow(cfg)
        self.meta_dim = int(meta_dim)
        scale_list = None if target_scale is None else [float(s) for s in target_scale]
        self.dims = {"meta_dim": self.meta_dim, "target_scale": scale_list}
        cfg = self.cfg
        self.global_size = size_pair(cfg.global_size, "global_size")
        self.tile_grid = size_pair(cfg.tile_grid, "tile_grid")
        self.tile_input = (
            None if cfg.tile_input is None else size_pair(cfg.tile_input, "tile_input")
        )
        aggregation = str(cfg.aggregation).lower()
        if aggregation not in ("mean", "attention"):
            raise ConfigError(f"aggregation must be 'mean' or 'attention', got {cfg.aggregation!r}")
        scale = [1.0] * len(TARGETS) if scale_list is None else scale_list
        if len(scale) != len(TARGETS) or min(scale) <= 0:
            raise ConfigError(
                f"target_scale must be {len(TARGETS)} positive numbers "
                f"({', '.join(TARGETS)}), got {target_scale!r}"
            )
        # Persistent: a checkpoint carries the scale it was trained with.
        self.register_buffer("target_scale", torch.tensor([float(s) for s in scale]))

        self.normalize = Normalize()
        self.backbone = backbone_for(cfg, cfg.channels_last)
        c = self.backbone.num_features
        self.pool: nn.Module | None = None
        if cfg.use_tiles:
            self.pool = (
                AttentionPool(c, cfg.num_heads) if aggregation == "attention" else MeanPool()
            )
        fused_in = 2 * c if cfg.use_tiles else c
        self.fusion = nn.Sequential(
            nn.Linear(fused_in, cfg.fusion_dim), nn.LayerNorm(cfg.fusion_dim)
        )
        self.film = FiLM(self.meta_dim, cfg.fusion_dim) if cfg.use_film else None
        self.act = nn.GELU()
        self.head: BiomassHead | ProjectionHead = (
            ProjectionHead(cfg.fusion_dim, scale, cfg.hidden, cfg.dropout)
            if cfg.head == "projection"
            else BiomassHead(cfg.fusion_dim, cfg.hidden, cfg.dropout)
        )
        self.bin_head = self._init_bins(bin_edges, bin_centres)

    def _init_bins(
        self, edges: Sequence[Sequence[float]] | None, centres: Sequence[Sequence[float]] | None
    ) -> BinHead | None:
        """The bin classifier and its persistent ``bin_edges`` / ``bin_centres`` buffers."""
        k = self.cfg.bins
        if k == 0:
            return None
        if edges is None or centres is None:
            raise ConfigError(
                f"phase2.bins={k} needs the data-derived bin_edges and bin_centres "
                "(the training pipeline computes them from the fold with `quantile_bins`)"
            )
        e = torch.tensor(edges, dtype=torch.float32)
        c = torch.tensor(centres, dtype=torch.float32)
        check_bins(e, c, k)
        self.dims.update({"bin_edges": e.tolist(), "bin_centres": c.tolist()})
        # Persistent, like target_scale: a checkpoint carries the bins it was trained with.
        self.register_buffer("bin_edges", e)
        self.register_buffer("bin_centres", c)
        return BinHead(self.cfg.fusion_dim, k, self.cfg.hidden, self.cfg.dropout)

    @property
    def num_tiles(self) -> int:
        """Tiles per image (0 for the global-only baseline)."""
        return self.tile_grid[0] * self.tile_grid[1] if self.cfg.use_tiles else 0

    def _backbone(self, views: Tensor) -> Tensor:  # (N, 3, h, w) -> (N, C)
        return _encode(self.backbone, views, self.cfg.channels_last)

    def _encode_views(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Backbone features of the global view and the tiles.

        Args:
            x: Tensor[B, 3, H, W], normalised.

        Returns:
            ``(global: Tensor[B, C], tiles: Tensor[B, T, C] | None)``.
        """
        b = x.shape[0]
        g = global_view(x, self.global_size)  # (B, 3, gh, gw)
        if not self.cfg.use_tiles:
            return self._backbone(g), None
        rows, cols = self.tile_grid
        tiles = grid_tiles(x, rows, cols)  # (B, T, 3, th, tw)
        t = tiles.shape[1]
        tiles = tiles.flatten(0, 1)  # (B*T, 3, th, tw)
        if self.tile_input is not None and tuple(tiles.shape[-2:]) != self.tile_input:
            tiles = global_view(tiles, self.tile_input)
        if g.shape[-2:] == tiles.shape[-2:]:
            # Fast path: one backbone call over all B×(1+T) views.
            views = torch.cat([g.unsqueeze(1), tiles.view(b, t, *tiles.shape[1:])], dim=1)
            feats = self._backbone(views.flatten(0, 1)).view(b, 1 + t, -1)  # (B, 1+T, C)
            return feats[:, 0], feats[:, 1:]
        return self._backbone(g), self._backbone(tiles).view(b, t, -1)  # (B, C), (B, T, C)

    def forward(self, image: Tensor, meta: Tensor | None = None) -> dict[str, Tensor | None]:
        """Predict biomass.

        Args:
            image: Tensor[B, 3, H, W] in [0, 1]; H and W divisible by the tile grid.
            meta: Tensor[B, meta_dim] conditioning metadata; required when ``use_film``,
                ignored otherwise.

        Returns:
            ``targets``: Tensor[B, 5] grams in `TARGETS` order, ≥ 0, mass balance exact;
            ``components``: Tensor[B, 3] grams (green, dead, clover);
            ``tile_weights``: Tensor[B, T] pooling weights, or None without tiles;
            ``bin_logits``: Tensor[B, 3, K] (only with ``bins > 0``; ``targets`` already
            blends the regression with their expectation).

        Raises:
            ValueError: Wrong image shape, or `meta` missing / of the wrong width with FiLM on.
        """
        _check_image(image, "Phase2Model")
        if self.film is not None:
            if meta is None:
                raise ValueError(
                    "Phase2Model has use_film=True and needs meta Tensor[B, "
                    f"{self.meta_dim}] (Phase-1 predicted metadata), got None"
                )
            if meta.ndim != 2 or meta.shape != (image.shape[0], self.meta_dim):
                raise ValueError(
                    f"Phase2Model: meta must be Tensor[{image.shape[0]}, {self.meta_dim}], "
                    f"got {tuple(meta.shape)}"
                )
        x = self.normalize(image)
        g, tiles = self._encode_views(x)  # (B, C), (B, T, C) | None
        tile_weights = None
        if tiles is not None and self.pool is not None:
            agg, tile_weights = self.pool(tiles)  # (B, C), (B, T)
            fused = self.fusion(torch.cat([g, agg], dim=-1))  # (B, fusion_dim)
        else:
            fused = self.fusion(g)  # (B, fusion_dim)
        if self.film is not None and meta is not None:
            fused = self.film(fused, meta.to(fused.dtype))
        h = self.act(fused)
        comps = self.head.components(h)  # (B, 3) scaled units
        comps = comps * self.target_scale[:3].to(comps.dtype)  # grams
        out: dict[str, Tensor | None] = {"tile_weights": tile_weights}
        if self.bin_head is not None:
            logits = self.bin_head(h)  # (B, 3, K)
            comps = blend_bins(comps, logits, self.bin_centres, self.cfg.bin_blend)
            out["bin_logits"] = logits
        # GDM and total from the final components: the balance is exact after blending too.
        return {"targets": derive_targets(comps), "components": comps, **out}


def weighted_biomass_loss(
    pred: Tensor,
    target: Tensor,
    weights: Sequence[float] | Tensor = WEIGHTS,
    scale: Tensor | None = None,
    kind: str = "mse",
    reduction: str = "mean",
    eps: float = 1e-6,
    huber_delta: float = 1.0,
) -> Tensor:
    """Metric-weighted regression loss on scaled targets.

    Each column is divided by its scale (so grams of very different magnitudes are
    comparable), the element loss is MSE or Huber, and targets are combined with the metric
    weights: ``per_sample = Σ_j w_j ℓ(pred_j / s_j, target_j / s_j) / Σ_j w_j``.

    Args:
        pred: Tensor[B, 5] predictions (grams).
        target: Tensor[B, 5] labels (grams).
        weights: 5 target weights (default: the competition's 0.1, 0.1, 0.1, 0.2, 0.5).
        scale: Tensor[5] per-target scale; None = 1.
        kind: ``"mse"`` or ``"huber"``.
        reduction: ``"mean"`` | ``"sum"`` over the batch, or ``"none"`` for Tensor[B].
        eps: Lower bound on the scale.
        huber_delta: Huber transition point, in scaled units.

    Returns:
        Scalar tensor (or Tensor[B] with ``reduction="none"``).

    Raises:
        ValueError: Shape mismatch, or unknown `kind` / `reduction`.
    """
    if pred.shape != target.shape or pred.ndim != 2:
        raise ValueError(
            f"pred and target must both be Tensor[B, K], got {tuple(pred.shape)} "
            f"and {tuple(target.shape)}"
        )
    w = torch.as_tensor(weights, dtype=pred.dtype, device=pred.device)  # (K,)
    if w.shape != (pred.shape[1],):
        raise ValueError(f"weights must have {pred.shape[1]} entries, got {tuple(w.shape)}")
    s = (
        torch.ones_like(w)
        if scale is None
        else scale.to(device=pred.device, dtype=pred.dtype).clamp_min(eps)
    )
    p, y = pred / s, target.to(pred.dtype) / s  # (B, K)
    kind = kind.lower()
    if kind == "mse":
        elem = (p - y).square()
    elif kind == "huber":
        elem = F.huber_loss(p, y, reduction="none", delta=huber_delta)
    else:
        raise ValueError(f"unknown loss kind {kind!r}; choose 'mse' or 'huber'")
    per_sample = (elem * w).sum(dim=-1) / w.sum()  # (B,)
    if reduction == "mean":
        return per_sample.mean() if per_sample.numel() else per_sample.sum()
    if reduction == "sum":
        return per_sample.sum()
    if reduction == "none":
        return per_sample
    raise ValueError(f"unknown reduction {reduction!r}; choose 'mean', 'sum' or 'none'")
