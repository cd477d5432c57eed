"""Re-identification embedding model: backbone → GeM → projection → BNNeck → L2 norm.

The model maps images to L2-normalised embeddings; the identity classifier (ArcFace /
CosFace / softmax head) is a loss and lives in the training system, so the model can be
exported and used for retrieval on identities it never saw.

Neck order (documented because papers differ): ``pooled (C) → Linear(C→E, no bias) →
BatchNorm1d(E)``. The BN is the *BNNeck* of Luo et al. (2019): it sits between the
feature used by the metric loss (``features``, before BN) and the feature used by the
classifier head and for retrieval (``neck`` / ``embedding``, after BN). Projecting first
keeps the BN (and the head) at the embedding size, which is what the real-data recipes of
the seed do (backbone → BN → Linear → BN); our Linear-then-BN drops the first BN, which
GeM-pooled features of a normalised backbone do not need.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from fieldvision.models.backbone import create_backbone
from fieldvision.models.pooling import GeM

__all__ = ["ReIDConfig", "ReIDModel"]


@dataclass
class ReIDConfig:
    """Architecture and loss settings of a re-ID model (all plain values)."""

    backbone: str = "fv_small_resnet"  # any name in BACKBONES or timm
    pretrained: bool | str = False  # False or a local weights file (never downloads)
    embedding_dim: int = 128  # E, the size of the retrieval embedding
    gem_p: float = 3.0  # initial GeM exponent (1 = average pooling, large = max pooling)
    gem_learnable: bool = True  # learn the GeM exponent
    dropout: float = 0.0  # dropout on pooled features before the projection
    drop_path_rate: float = 0.0  # stochastic depth for timm backbones that support it
    in_chans: int = 3
    loss: str = "arcface"  # margin head: arcface | cosface | softmax (used by the system)
    margin: float | None = None  # None: the head's default (arcface 0.5 rad, cosface 0.35)
    scale: float = 30.0  # logit scale s of the margin head
    label_smoothing: float = 0.1
    triplet_weight: float = 0.0  # > 0 adds batch-hard triplet loss on `features`
    triplet_margin: float = 0.3

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for checkpoints and run directories)."""
        return asdict(self)


class ReIDModel(nn.Module):
    """Embedding network.

    Args:
        backbone: Backbone name (see `create_backbone`).
        pretrained: False or a local weights file.
        embedding_dim: Output size ``E``.
        gem_p: Initial GeM exponent.
        gem_learnable: Learn the exponent.
        dropout: Dropout before the projection.
        drop_path_rate: Stochastic depth (timm backbones).
        in_chans: Input channels.
    """

    def __init__(
        self,
        backbone: str = "fv_small_resnet",
        pretrained: bool | str | os.PathLike[str] = False,
        embedding_dim: int = 128,
        gem_p: float = 3.0,
        gem_learnable: bool = True,
        dropout: float = 0.0,
        drop_path_rate: float = 0.0,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        self.backbone = create_backbone(
            backbone, pretrained=pretrained, in_chans=in_chans, drop_path_rate=drop_path_rate
        )
        c = self.backbone.num_features
        self.pool = GeM(p=gem_p, learnable=gem_learnable)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.proj = nn.Linear(c, embedding_dim, bias=False)
        self.bnneck = nn.BatchNorm1d(embedding_dim)
        # A BNNeck's shift is usually frozen at 0 so the embedding stays centred for cosine
        # retrieval (Luo et al.); the scale stays learnable.
        self.bnneck.bias.requires_grad_(False)
        self.embedding_dim = int(embedding_dim)
        self.num_features = int(c)

    @classmethod
    def from_config(cls, cfg: ReIDConfig) -> ReIDModel:
        """Build from a `ReIDConfig` (the config → kwargs adapter)."""
        return cls(
            backbone=cfg.backbone,
            pretrained=cfg.pretrained,
            embedding_dim=cfg.embedding_dim,
            gem_p=cfg.gem_p,
            gem_learnable=cfg.gem_learnable,
            dropout=cfg.dropout,
            drop_path_rate=cfg.drop_path_rate,
            in_chans=cfg.in_chans,
        )

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Embed a batch.

        Args:
            x: Tensor[B, 3, H, W] normalised images.

        Returns:
            Always the same keys, in training and in eval mode:

            * ``embedding``: Tensor[B, E], L2-normalised ``neck`` (use for retrieval);
            * ``neck``: Tensor[B, E] after the BNNeck (input of the classifier head);
            * ``features``: Tensor[B, E] before the BNNeck (input of the triplet loss);
            * ``pooled``: Tensor[B, C] GeM-pooled backbone features.
        """
        fmap = self.backbone.forward_features(x)  # (B, C, h, w)
        # GeM raises activations to the power p: do it in fp32 so fp16 AMP cannot overflow.
        pooled = self.pool(fmap.float())  # (B, C)
        features = self.proj(self.dropout(pooled))  # (B, E)
        neck = self.bnneck(features)  # (B, E)
        embedding = F.normalize(neck.float(), dim=1)  # (B, E), float32 even under AMP
        return {"embedding": embedding, "neck": neck, "features": features, "pooled": pooled}
