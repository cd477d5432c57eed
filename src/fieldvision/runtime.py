"""Device and precision selection, detected at run time with a clean CPU fallback."""

from __future__ import annotations

import torch

from fieldvision.errors import ConfigError

__all__ = ["resolve_device", "resolve_precision"]


def resolve_device(device: str = "auto") -> str:
    """Map ``auto|cpu|cuda`` to a concrete device string.

    Raises:
        ConfigError: ``cuda`` was asked for but no CUDA device is visible.
    """
    device = device.lower()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is visible", hint="use --device cpu")
    if device not in {"cpu", "cuda"}:
        raise ConfigError(f"unknown device {device!r}; choose auto, cpu or cuda")
    return device


def resolve_precision(device: str, precision: str = "auto") -> str:
    """Lightning precision string: bf16 mixed on GPUs that support it, fp16 mixed on older
    GPUs, full fp32 on CPU (CPU autocast is slower than fp32 for small convnets)."""
    if precision != "auto":
        return precision
    if device == "cuda":
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"
