"""Neural-network building blocks: backbones, pooling, FiLM, heads, losses and full models."""

from fieldvision.models.backbone import BACKBONES, Backbone, create_backbone

__all__ = ["BACKBONES", "Backbone", "create_backbone"]
