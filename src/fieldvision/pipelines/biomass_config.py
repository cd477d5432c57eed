"""Typed configuration of the biomass pipeline (YAML + ``--set`` overrides).

Every field has a commented default; `BiomassConfig` is what a run directory records in
``config.yaml`` and what ``predict`` checks a run against.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import Field

from fieldvision.config import StrictModel, config_to_dict
from fieldvision.ops.cleaning import CleanConfig

__all__ = ["BiomassConfig", "DataSection", "Phase1Section", "Phase2Section", "TrainSection"]


class DataSection(StrictModel):
    """Where images come from and how they are cleaned."""

    # Cache of decoded + cleaned images; default: <data dir>/.fieldvision_cache.
    cache_dir: str | None = None
    clean: CleanConfig = CleanConfig()
    batch_size: int = Field(16, ge=1)
    # DataLoader workers; 0 keeps everything in-process (fastest for small CPU runs).
    num_workers: int = Field(0, ge=0)
    # Random flips + mild colour jitter during training.
    augment: bool = True


class Phase1Section(StrictModel):
    """Phase 1: metadata (month, NDVI, height, species, state) from the image halves."""

    enabled: bool = True  # only needed when phase2.use_film is on
    backbone: str = "fv_tiny_cnn"
    pretrained: str | bool = False  # false or a local weights file
    input_size: tuple[int, int] = (128, 256)  # (H, W) before splitting into halves
    hidden: int = 128
    dropout: float = 0.1
    use_species: bool = True  # the seed warns of negative transfer: measured in ablations
    use_state: bool = True
    epochs: int = Field(8, ge=1)
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = 1e-4
    patience: int | None = 4


class Phase2Section(StrictModel):
    """Phase 2: biomass from 1 global view + tiles, fused, FiLM-conditioned on metadata."""

    backbone: str = "fv_tiny_cnn"
    pretrained: str | bool = False
    global_size: tuple[int, int] = (128, 256)  # (H, W) of the resized whole image
    tile_grid: tuple[int, int] = (2, 4)  # rows, cols: 8 tiles of a 2:1 image are square
    use_tiles: bool = True
    aggregation: Literal["mean", "attention"] = "attention"
    num_heads: int = 4
    use_film: bool = True
    fusion_dim: int = 128
    hidden: int = 128
    dropout: float = 0.1
    loss: Literal["mse", "huber"] = "mse"
    epochs: int = Field(12, ge=1)
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = 1e-4
    patience: int | None = 5


class TrainSection(StrictModel):
    """Cross-validation and runtime."""

    folds: int = Field(5, ge=2)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: str = "auto"  # auto: bf16 on capable GPUs, fp16 on older, fp32 on CPU
    accumulate_grad_batches: int = Field(1, ge=1)
    warmup_epochs: int = Field(1, ge=0)
    # Exponential moving average of the weights, used for validation, checkpoints and
    # prediction. null = off (default: at 0.95 it hurt the short CPU demo, 0.28 vs 0.52 OOF).
    ema_decay: float | None = Field(None, gt=0, lt=1)
    tta: bool = True  # horizontal + vertical flips at prediction time
    progress: bool = True


class BiomassConfig(StrictModel):
    """The whole biomass pipeline configuration."""

    data: DataSection = DataSection()
    phase1: Phase1Section = Phase1Section()
    phase2: Phase2Section = Phase2Section()
    train: TrainSection = TrainSection()

    @property
    def needs_phase1(self) -> bool:
        """Phase 1 runs only when FiLM consumes its predicted metadata."""
        return self.phase2.use_film and self.phase1.enabled

    def fingerprint(self) -> str:
        """Stable hash of the settings that determine the trained weights."""
        data = config_to_dict(self)
        # Runtime-only knobs do not change what a checkpoint means.
        for key in ("device", "precision", "progress", "tta"):
            data["train"].pop(key, None)
        data["data"].pop("cache_dir", None)
        data["data"].pop("num_workers", None)
        blob = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
