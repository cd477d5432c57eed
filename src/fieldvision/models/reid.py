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

import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from fieldvision.models.backbone import BackboneChoice, backbone_for
from fieldvision.models.normalize import Normalize
from fieldvision.models.pooling import GeM
from fieldvision.models.registry import register_model

__all__ = ["ReIDModel", "ReIDModelConfig"]


class ReIDModelConfig(BackboneChoice):
    """Architecture of a re-ID embedding network (the loss head is in `MarginLossConfig`)."""

    backbone: str = "fv_small_resnet"  # ours (fv_tiny_cnn, fv_small_resnet) or any timm name
    embedding_dim: int = Field(128, ge=2)  # E, the size of the retrieval embedding
    gem_p: float = Field(3.0, gt=0)  # initial GeM exponent (1 = average, large = max pooling)
    gem_learnable: bool = True  # learn the GeM exponent
    dropout: float = Field(0.0, ge=0, lt=1)  # dropout on pooled features before the projection
    drop_path_rate: float = Field(0.0, ge=0, lt=1)  # stochastic depth (timm backbones)
    in_chans: int = Field(3, ge=1)


@register_model("reid_embedder", ReIDModelConfig)
class ReIDModel(nn.Module):
    """Embedding network: backbone → GeM → projection → BNNeck → L2 norm.

    Args:
        cfg: `ReIDModelConfig` (or a section that extends it).
    """

    def __init__(self, cfg: ReIDModelConfig | None = None) -> None:
        super().__init__()
        self.cfg = ReIDModelConfig.narrow(cfg) if cfg is not None else ReIDModelConfig()
        self.dims: dict[str, int] = {}
        cfg = self.cfg
        self.normalize = Normalize.for_channels(cfg.in_chans)
        self.backbone = backbone_for(cfg, in_chans=cfg.in_chans, drop_path_rate=cfg.drop_path_rate)
        c = self.backbone.num_features
        self.pool = GeM(p=cfg.gem_p, learnable=cfg.gem_learnable)
        self.dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.proj = nn.Linear(c, cfg.embedding_dim, bias=False)
        self.bnneck = nn.BatchNorm1d(cfg.embedding_dim)
        # A BNNeck's shift is usually frozen at 0 so the embedding stays centred for cosine
        # retrieval (Luo et al.); the scale stays learnable.
        self.bnneck.bias.requires_grad_(False)
        self.embedding_dim = int(cfg.embedding_dim)
        self.num_features = int(c)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Embed a batch.

        Args:
            x: Tensor[B, 3, H, W] images in [0, 1] (normalised inside the model).

        Returns:
            Always the same keys, in training and in eval mode:

            * ``embedding``: Tensor[B, E], L2-normalised ``neck`` (use for retrieval);
            * ``neck``: Tensor[B, E] after the BNNeck (input of the classifier head);
            * ``features``: Tensor[B, E] before the BNNeck (input of the triplet loss);
            * ``pooled``: Tensor[B, C] GeM-pooled backbone features.
        """
        fmap = self.backbone.forward_features(self.normalize(x))  # (B, C, h, w)
        # GeM raises activations to the power p: do it in fp32 so fp16 AMP cannot overflow.
        pooled = self.pool(fmap.float())  # (B, C)
        features = self.proj(self.dropout(pooled))  # (B, E)
        neck = self.bnneck(features)  # (B, E)
        embedding = F.normalize(neck.float(), dim=1)  # (B, E), float32 even under AMP
        return {"embedding": embedding, "neck": neck, "features": features, "pooled": pooled}
