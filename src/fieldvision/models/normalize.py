"""Input normalisation inside the model: the one image contract of every fieldvision model.

Every model takes images as ``Tensor[B, 3, H, W]`` float in ``[0, 1]`` and normalises them
itself with `Normalize`. Callers (data loaders, TTA, export, ONNX runtimes) therefore never
need to know a backbone's statistics.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Normalize"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, with non-persistent buffers (not in weight files).

    Args:
        mean: Per-channel mean.
        std: Per-channel standard deviation.
    """

    def __init__(
        self,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(f"mean and std need one value per channel, got {mean} and {std}")
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), False)

    @classmethod
    def for_channels(cls, n: int) -> Normalize:
        """ImageNet statistics for 3 channels; their grey mean/std repeated otherwise."""
        if n == 3:
            return cls()
        return cls((0.449,) * n, (0.226,) * n)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) in [0, 1]
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
