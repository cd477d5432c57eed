"""Multiple-instance learning (MIL) over image tiles: pooling, a tile expert and a scouter.

An image (a *bag*) is cut into ``T`` tiles (its *instances*); only the image has a label.
The *expert* (`MILExpert`) scores every tile with one shared backbone and a tile head, then
pools the per-tile class logits into bag logits, per class:

* ``max``: the bag logit of class ``c`` is that of the tile most confident in ``c``;
* ``topk``: the mean of the ``k`` largest tile logits of ``c``;
* ``attention`` / ``gated_attention`` (Ilse et al., 2018): a learned softmax over tiles,
  one attention distribution per class, ``bag_c = Σ_t a_{t,c} z_{t,c}``.

Every pool returns ``(bag_logits: Tensor[B, C], weights: Tensor[B, T, C])``; each weight
column sums to 1 over the tiles, so the weights say *which tiles* made the decision for
each class. An optional boolean tile mask ``Tensor[B, T]`` restricts a bag to its selected
tiles (unselected tiles get weight 0); glance inference uses it to run the expert on the
few tiles the *scouter* (`Scouter`) found interesting. A bag with no selected tile is an
error: there is nothing to decide from.

Both models take images in ``[0, 1]`` and normalise them internally.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from fieldvision.errors import ConfigError
from fieldvision.models.backbone import BackboneChoice, backbone_for, size_pair
from fieldvision.models.heads import MLPHead
from fieldvision.models.normalize import Normalize
from fieldvision.models.registry import register_model
from fieldvision.ops.tiling import global_view

__all__ = [
    "AttentionPool",
    "GatedAttentionPool",
    "MILExpert",
    "MILExpertConfig",
    "Scouter",
    "ScouterConfig",
    "max_pool",
    "topk_mean_pool",
]


# --------------------------------------------------------------------------- pooling


def _tile_mask(tile_logits: Tensor, mask: Tensor | None) -> Tensor:
    """Validate the pooling inputs; the mask as Tensor[B, T] bool (all True for None).

    Raises:
        ValueError: `tile_logits` is not 3-D, the mask has the wrong shape or dtype, or a
            bag has no selected tile.
    """
    if tile_logits.ndim != 3:
        raise ValueError(f"tile_logits must be Tensor[B, T, C], got {tuple(tile_logits.shape)}")
    b, t, _ = tile_logits.shape
    if t == 0:
        raise ValueError("cannot pool a bag of 0 tiles")
    if mask is None:
        return torch.ones(b, t, dtype=torch.bool, device=tile_logits.device)
    _check_mask(mask, b, t)
    return mask


def _check_mask(mask: Tensor, b: int, t: int) -> None:
    """Raise ValueError unless `mask` is a bool Tensor[b, t] selecting ≥ 1 tile per bag."""
    if mask.shape != (b, t) or mask.dtype != torch.bool:
        raise ValueError(
            f"mask must be a bool Tensor[{b}, {t}], got {mask.dtype} {tuple(mask.shape)}"
        )
    empty = ~mask.any(dim=1)  # (B,)
    if bool(empty.any()):
        bags = empty.nonzero().flatten().tolist()
        raise ValueError(f"bag(s) {bags} have no selected tile: nothing to pool")


def max_pool(tile_logits: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Per-class max over the (selected) tiles.

    Args:
        tile_logits: Tensor[B, T, C].
        mask: Tensor[B, T] bool of selected tiles; None selects all.

    Returns:
        ``(bag_logits: Tensor[B, C], weights: Tensor[B, T, C])``: the weights are one-hot on
        each class's argmax tile (the first one on ties), and the gradient reaches only that
        tile.

    Raises:
        ValueError: Bad shapes, or a bag with no selected tile.
    """
    mask = _tile_mask(tile_logits, mask)
    masked = tile_logits.masked_fill(~mask.unsqueeze(-1), float("-inf"))  # (B, T, C)
    idx = masked.argmax(dim=1, keepdim=True)  # (B, 1, C)
    bag = tile_logits.gather(1, idx).squeeze(1)  # (B, C)
    weights = torch.zeros_like(tile_logits).scatter_(1, idx, 1.0)  # (B, T, C)
    return bag, weights


def topk_mean_pool(
    tile_logits: Tensor, mask: Tensor | None = None, k: int = 2
) -> tuple[Tensor, Tensor]:
    """Per-class mean of the `k` largest (selected) tile logits.

    ``k`` is clipped, per bag, to its number of selected tiles, so ``k ≥ T`` is the mean
    over the selected tiles and ``k = 1`` is `max_pool`.

    Args:
        tile_logits: Tensor[B, T, C].
        mask: Tensor[B, T] bool of selected tiles; None selects all.
        k: Tiles averaged per class (≥ 1).

    Returns:
        ``(bag_logits: Tensor[B, C], weights: Tensor[B, T, C])``: weight ``1 / k_b`` on each
        class's top ``k_b`` tiles (ties broken by tile index), 0 elsewhere.

    Raises:
        ValueError: ``k < 1``, bad shapes, or a bag with no selected tile.
    """
    if int(k) < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    mask = _tile_mask(tile_logits, mask)
    t = tile_logits.shape[1]
    kk = min(int(k), t)
    k_b = mask.sum(dim=1).clamp(max=kk)  # (B,) tiles averaged in each bag
    masked = tile_logits.detach().masked_fill(~mask.unsqueeze(-1), float("-inf"))  # (B, T, C)
    order = masked.sort(dim=1, descending=True, stable=True).indices[:, :kk]  # (B, kk, C)
    rank = torch.arange(kk, device=tile_logits.device).view(1, kk, 1)  # (1, kk, 1)
    inv_k = 1.0 / k_b.to(tile_logits.dtype).view(-1, 1, 1)  # (B, 1, 1)
    top_w = (rank < k_b.view(-1, 1, 1)).to(tile_logits.dtype) * inv_k  # (B, kk, 1)
    top_w = top_w.expand(-1, -1, tile_logits.shape[2])  # (B, kk, C)
    weights = torch.zeros_like(tile_logits).scatter_(1, order, top_w)  # (B, T, C)
    bag = (weights * tile_logits).sum(dim=1)  # (B, C); weights are constants for autograd
    return bag, weights


def _attention_pool(
    scores: Tensor, tile_logits: Tensor, mask: Tensor | None
) -> tuple[Tensor, Tensor]:
    """Softmax of `scores` over the selected tiles, then the weighted sum of the logits.

    Args:
        scores: Tensor[B, T, C] attention scores (one per tile and class).
        tile_logits: Tensor[B, T, C].
        mask: Tensor[B, T] bool or None.

    Returns:
        ``(bag_logits: Tensor[B, C], weights: Tensor[B, T, C])``.
    """
    mask = _tile_mask(tile_logits, mask)
    if scores.shape != tile_logits.shape:
        raise ValueError(
            f"attention scores {tuple(scores.shape)} and tile_logits "
            f"{tuple(tile_logits.shape)} must have the same shape"
        )
    scores = scores.masked_fill(~mask.unsqueeze(-1), float("-inf"))  # (B, T, C)
    # Softmax in fp32 under AMP: fp16 exponentials overflow for large scores.
    half = scores.dtype in (torch.float16, torch.bfloat16)
    weights = torch.softmax(scores.float() if half else scores, dim=1).to(scores.dtype)
    bag = (weights * tile_logits).sum(dim=1)  # (B, C)
    return bag, weights


def _check_features(features: Tensor, tile_logits: Tensor, in_dim: int) -> None:
    if features.ndim != 3 or features.shape[:2] != tile_logits.shape[:2]:
        raise ValueError(
            f"features must be Tensor[B, T, D] with the (B, T) of tile_logits "
            f"{tuple(tile_logits.shape)}, got {tuple(features.shape)}"
        )
    if features.shape[2] != in_dim:
        raise ValueError(f"features have width {features.shape[2]}, the pool expects {in_dim}")


class AttentionPool(nn.Module):
    """Attention-based MIL pooling (Ilse et al., 2018), one attention per class.

    ``s_{t,c} = w_c^T tanh(V h_t)``, ``a_{·,c} = softmax_t(s_{·,c})`` over the selected
    tiles, ``bag_c = Σ_t a_{t,c} z_{t,c}``. ``w`` has no bias: a per-class constant does not
    change a softmax over tiles.

    Args:
        in_dim: Tile feature width ``D``.
        num_classes: Classes ``C`` (one attention distribution each).
        attention_dim: Hidden width ``L`` of the attention network.
    """

    def __init__(self, in_dim: int, num_classes: int, attention_dim: int = 64) -> None:
        super().__init__()
        self.in_dim = int(in_dim)
        self.v = nn.Linear(in_dim, attention_dim)
        self.w = nn.Linear(attention_dim, num_classes, bias=False)

    def scores(self, features: Tensor) -> Tensor:
        """Attention scores: ``Tensor[B, T, D] -> Tensor[B, T, C]``."""
        return self.w(torch.tanh(self.v(features)))

    def forward(
        self, features: Tensor, tile_logits: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Pool tile logits with attention computed from the tile features.

        Args:
            features: Tensor[B, T, D] tile features ``h``.
            tile_logits: Tensor[B, T, C] tile logits ``z``.
            mask: Tensor[B, T] bool of selected tiles; None selects all.

        Returns:
            ``(bag_logits: Tensor[B, C], weights: Tensor[B, T, C])``; the weights sum to 1
            over the tiles and are 0 on unselected tiles.

        Raises:
            ValueError: Bad shapes, or a bag with no selected tile.
        """
        _check_features(features, tile_logits, self.in_dim)
        return _attention_pool(self.scores(features), tile_logits, mask)


class GatedAttentionPool(AttentionPool):
    """Gated attention MIL pooling (Ilse et al., 2018), one attention per class.

    ``s_{t,c} = w_c^T (tanh(V h_t) ⊙ sigmoid(U h_t))``; otherwise as `AttentionPool`. The
    sigmoid gate lets the score leave tanh's nearly linear regime for small ``V h``.

    Args:
        in_dim: Tile feature width ``D``.
        num_classes: Classes ``C``.
        attention_dim: Hidden width ``L`` of the attention network.
    """

    def __init__(self, in_dim: int, num_classes: int, attention_dim: int = 64) -> None:
        super().__init__(in_dim, num_classes, attention_dim)
        self.u = nn.Linear(in_dim, attention_dim)

    def scores(self, features: Tensor) -> Tensor:
        """Attention scores: ``Tensor[B, T, D] -> Tensor[B, T, C]``."""
        return self.w(torch.tanh(self.v(features)) * torch.sigmoid(self.u(features)))


# --------------------------------------------------------------------------- models


class MILExpertConfig(BackboneChoice):
    """MIL tile expert: backbone + tile head + bag pooling. Defaults are the CPU demo recipe."""

    backbone: str = "fv_tiny_cnn"  # ours (fv_tiny_cnn, fv_small_resnet) or any timm name
    tile_size: int = Field(64, ge=1)  # tiles are resized to tile_size × tile_size
    pooling: Literal["max", "topk", "attention", "gated_attention"] = "max"
    topk: int = Field(2, ge=1)  # tiles averaged per class (pooling="topk")
    attention_dim: int = Field(64, ge=1)  # hidden width of the attention pools
    hidden: int = Field(0, ge=0)  # tile head MLP width (0 = linear head)
    dropout: float = Field(0.0, ge=0, lt=1)  # dropout inside the tile head
    channels_last: bool = True  # NHWC backbone input: faster CPU convolutions (oneDNN)


@register_model("mil_expert", MILExpertConfig)
class MILExpert(nn.Module):
    """Score every tile of a bag with one shared backbone, then pool tile logits per class.

    With a negative (healthy) class ``n``, pooling runs over each tile's log-odds against
    it, ``z_{t,c} - z_{t,n}``, and the bag's negative logit is 0: a bag is of disease ``c``
    when some tile (max), its top-k tiles or its attended tiles prefer ``c`` over healthy,
    and healthy when no tile does. Pooling raw logits per class instead makes the healthy
    bag logit the *most* healthy-looking tile of the bag, which every diseased image also
    has (its leaf is mostly healthy): the bag task then cannot be learnt.

    Args:
        cfg: `MILExpertConfig` (or a section that extends it).
        num_classes: Number of image classes ``C`` (data-derived, ≥ 2).
        negative_class: Index of the class without evidence, or None (data-derived).

    Raises:
        ConfigError: Fewer than 2 classes, or a negative class out of range.
    """

    def __init__(
        self, cfg: MILExpertConfig, num_classes: int, negative_class: int | None = None
    ) -> None:
        super().__init__()
        self.cfg = MILExpertConfig.narrow(cfg)
        self.dims = {"num_classes": int(num_classes), "negative_class": negative_class}
        cfg = self.cfg
        if int(num_classes) < 2:
            raise ConfigError(f"mil_expert needs at least 2 classes, got {num_classes}")
        if negative_class is not None and not 0 <= int(negative_class) < int(num_classes):
            raise ConfigError(
                f"mil_expert: negative_class {negative_class} is not a class index "
                f"(0..{int(num_classes) - 1})"
            )
        self.negative_class = None if negative_class is None else int(negative_class)
        self.num_classes = int(num_classes)
        self.normalize = Normalize()
        self.backbone = backbone_for(cfg, cfg.channels_last)
        self.num_features = int(self.backbone.num_features)
        self.head = MLPHead(self.num_features, self.num_classes, cfg.hidden, cfg.dropout)
        self.attention: AttentionPool | None = None
        if cfg.pooling == "attention":
            self.attention = AttentionPool(self.num_features, self.num_classes, cfg.attention_dim)
        elif cfg.pooling == "gated_attention":
            self.attention = GatedAttentionPool(
                self.num_features, self.num_classes, cfg.attention_dim
            )

    def score_tiles(self, tiles: Tensor) -> tuple[Tensor, Tensor]:
        """Class logits and features of a flat batch of tiles (one backbone call).

        Args:
            tiles: Tensor[N, 3, h, w] in [0, 1]; resized to ``tile_size`` (antialiased)
                when ``(h, w)`` differs.

        Returns:
            ``(logits: Tensor[N, C], features: Tensor[N, D])``.
        """
        if tiles.ndim != 4 or tiles.shape[1] != 3:
            raise ValueError(
                f"MILExpert: expected tiles Tensor[N, 3, h, w], got {tuple(tiles.shape)}"
            )
        s = self.cfg.tile_size
        x = self.normalize(global_view(tiles, (s, s)))  # (N, 3, s, s)
        if self.cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        features = self.backbone(x)  # (N, D)
        return self.head(features), features  # (N, C), (N, D)

    def pool(
        self, tile_logits: Tensor, tile_features: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Pool tile logits into bag logits with the configured pooling.

        Args:
            tile_logits: Tensor[B, T, C].
            tile_features: Tensor[B, T, D] (read by the attention pools only).
            mask: Tensor[B, T] bool of selected tiles; None selects all.

        Returns:
            ``(bag_logits: Tensor[B, C], weights: Tensor[B, T, C])``; with a negative class
            the bag's negative logit is 0 and the others are pooled tile log-odds.
        """
        if self.negative_class is not None:
            n = self.negative_class
            tile_logits = tile_logits - tile_logits[..., n : n + 1]  # (B, T, C) log-odds
        if self.attention is not None:
            return self.attention(tile_features, tile_logits, mask)
        if self.cfg.pooling == "topk":
            return topk_mean_pool(tile_logits, mask, self.cfg.topk)
        return max_pool(tile_logits, mask)

    def forward(self, tiles: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        """Classify bags of tiles.

        With a mask, only the selected tiles go through the backbone (gathered into one
        batch, scored, scattered back); unselected tiles get logits and features 0 and
        pooling weight 0, so the result equals running the expert on the selected tiles
        alone.

        Args:
            tiles: Tensor[B, T, 3, h, w] in [0, 1].
            mask: Tensor[B, T] bool of selected tiles; None selects all. Every bag needs
                at least one selected tile.

        Returns:
            Always the same keys, in training and in eval mode:

            * ``tile_logits``: Tensor[B, T, C];
            * ``bag_logits``: Tensor[B, C];
            * ``weights``: Tensor[B, T, C] pooling weights (sum to 1 over tiles);
            * ``tile_features``: Tensor[B, T, D] pooled backbone features.

        Raises:
            ValueError: Bad shapes, or a bag with no selected tile.
        """
        if tiles.ndim != 5 or tiles.shape[2] != 3:
            raise ValueError(
                f"MILExpert: expected tiles Tensor[B, T, 3, h, w], got {tuple(tiles.shape)}"
            )
        b, t = tiles.shape[:2]
        flat = tiles.flatten(0, 1)  # (B*T, 3, h, w)
        if mask is None:
            logits, feats = self.score_tiles(flat)  # (B*T, C), (B*T, D)
        else:
            _check_mask(mask, b, t)  # before any backbone work
            idx = mask.reshape(-1).nonzero().squeeze(1)  # (N,) selected flat indices
            sel_logits, sel_feats = self.score_tiles(flat.index_select(0, idx))  # (N, C), (N, D)
            logits = sel_logits.new_zeros(b * t, sel_logits.shape[1]).index_copy(0, idx, sel_logits)
            feats = sel_feats.new_zeros(b * t, sel_feats.shape[1]).index_copy(0, idx, sel_feats)
        tile_logits = logits.view(b, t, -1)  # (B, T, C)
        tile_features = feats.view(b, t, -1)  # (B, T, D)
        bag_logits, weights = self.pool(tile_logits, tile_features, mask)
        return {
            "tile_logits": tile_logits,
            "bag_logits": bag_logits,
            "weights": weights,
            "tile_features": tile_features,
        }


class ScouterConfig(BackboneChoice):
    """Scouter: a light whole-image network predicting which tile regions matter."""

    backbone: str = "fv_tiny_cnn"  # ours (fv_tiny_cnn, fv_small_resnet) or any timm name
    input_size: tuple[int, int] = (128, 128)  # (H, W) the whole image is resized to
    channels_last: bool = True  # NHWC backbone input: faster CPU convolutions (oneDNN)


@register_model("mil_scouter", ScouterConfig)
class Scouter(nn.Module):
    """Predict a per-region importance map of the whole image, on the tile grid.

    ``image → resize(input_size) → backbone feature map → 1×1 conv → adaptive average pool
    to the grid``. Region ``(i, j)`` of the output is tile ``i * cols + j`` of a row-major
    ``rows × cols`` tiling (`fieldvision.ops.glance.tile_boxes`), so
    ``importance.flatten(1)`` is a Tensor[B, T] of tile scores for
    `fieldvision.ops.glance.select_tiles`.

    Args:
        cfg: `ScouterConfig` (or a section that extends it).
        grid: ``(rows, cols)`` of the output map.

    Raises:
        ConfigError: `grid` or `input_size` is not two positive integers.
    """

    def __init__(self, cfg: ScouterConfig, grid: Sequence[int] = (8, 8)) -> None:
        super().__init__()
        self.cfg = ScouterConfig.narrow(cfg)
        self.grid = size_pair(grid, "scouter grid")
        self.dims = {"grid": list(self.grid)}
        self.input_size = size_pair(self.cfg.input_size, "input_size")
        self.normalize = Normalize()
        self.backbone = backbone_for(self.cfg, self.cfg.channels_last)
        self.score = nn.Conv2d(self.backbone.num_features, 1, kernel_size=1)

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        """Score the grid regions of each image.

        Args:
            image: Tensor[B, 3, H, W] in [0, 1], any H and W.

        Returns:
            ``logits``: Tensor[B, R, C] (R × C the grid) and ``importance``: their sigmoid.
        """
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(
                f"Scouter: expected image Tensor[B, 3, H, W], got {tuple(image.shape)}"
            )
        x = self.normalize(global_view(image, self.input_size))  # (B, 3, h, w)
        if self.cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        fmap = self.backbone.forward_features(x)  # (B, D, h', w')
        score = self.score(fmap)  # (B, 1, h', w')
        logits = F.adaptive_avg_pool2d(score, self.grid).squeeze(1)  # (B, R, C)
        return {"logits": logits, "importance": torch.sigmoid(logits)}
