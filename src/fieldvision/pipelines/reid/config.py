"""Typed configuration of the re-identification pipeline (YAML + ``--set`` overrides).

Each section is declared once, by composition: ``model`` *is* the embedding network's
config plus the identity loss's, ``train`` the optimiser recipe + schedule + trainer
settings + sampling/augmentation. A run directory records the resolved config in
``config.yaml``. Inference settings and runtime knobs do not change the trained weights, so
they are left out of the run fingerprint and may be overridden on a finished run with
``--set`` (e.g. ``--set inference.pair_score=cosine``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fieldvision.config import StrictModel, runtime_field
from fieldvision.data.images import DEFAULT_MAX_PIXELS
from fieldvision.models.losses import MarginLossConfig
from fieldvision.models.reid import ReIDModelConfig
from fieldvision.training.fit import ScheduleConfig, TrainerConfig
from fieldvision.training.optim import OptimConfig

__all__ = [
    "InferenceSection",
    "ModelSection",
    "ReIDDataSection",
    "ReIDPipelineConfig",
    "ReIDTrainSection",
]


class ReIDDataSection(StrictModel):
    """Input layout and column names (defaults: the Kaggle Jaguar Re-ID files)."""

    layout: Literal["auto", "kaggle", "folders", "csv"] = "auto"  # auto: detect from --data
    train_csv: str = "train.csv"  # kaggle: training table (image, identity)
    train_dir: str = "train"  # kaggle: training images (Kaggle's nested train/train is found)
    test_csv: str = "test.csv"  # kaggle: pairs table (row_id, query_image, gallery_image)
    test_dir: str = "test"  # kaggle: test images
    truth_csv: str = "test_truth.csv"  # optional identities of the test images (evaluation)
    image_column: str = "filename"
    identity_column: str = "ground_truth"
    # Camera / site id column, used when present: evaluation skips gallery images of the
    # query's identity taken by the query's camera (the Market-1501 rule).
    camera_column: str = "camera"
    row_id_column: str = "row_id"
    query_column: str = "query_image"
    gallery_column: str = "gallery_image"
    similarity_column: str = "similarity"  # submission column
    image_size: tuple[int, int] = (128, 128)  # (H, W) the model sees
    # Alpha masks (RGBA cut-outs): random-background augmentation and the background
    # diagnostic. auto: used when the images carry alpha.
    use_mask: Literal["auto", "yes", "no"] = "auto"
    verify_images: bool = runtime_field(True)  # decode every image before training
    # Images with more pixels are refused before decoding (decompression bombs).
    max_image_pixels: int = runtime_field(DEFAULT_MAX_PIXELS, ge=1)


class ModelSection(ReIDModelConfig, MarginLossConfig):
    """The embedding network (`ReIDModelConfig`) and its identity loss (`MarginLossConfig`)."""


class ReIDTrainSection(OptimConfig, ScheduleConfig, TrainerConfig):
    """Training schedule, sampling, augmentation and runtime."""

    epochs: int = Field(30, ge=1)
    patience: int | None = Field(10, ge=1)
    p: int = Field(8, ge=1)  # identities per batch (P×K sampler)
    k: int = Field(4, ge=1)  # images per identity per batch
    # AdamW + warmup + cosine (inherited). Fine-tuning a pretrained backbone: lr ~2e-5
    # (the seed), or a small backbone_lr_ratio.
    mixup_alpha: float = Field(0.0, ge=0)  # > 0 enables mixup
    mixup_prob: float = Field(0.5, ge=0, le=1)
    protocol: Literal["closed", "open"] = "closed"  # validation: held-out images or identities
    holdout_fraction: float = Field(0.25, gt=0, lt=1)
    num_workers: int = runtime_field(0, ge=0)  # DataLoader workers (0: in-process)
    # Augmentation
    crop_scale: tuple[float, float] = (0.7, 1.0)
    flip_p: float = Field(0.5, ge=0, le=1)
    brightness: float = Field(0.2, ge=0, le=1)  # also contrast
    saturation: float = Field(0.2, ge=0, le=1)
    erase_p: float = Field(0.25, ge=0, le=1)
    background_p: float = Field(0.5, ge=0, le=1)  # random background (needs alpha masks)


class InferenceSection(StrictModel):
    """Embedding and retrieval post-processing (none of it changes the trained weights)."""

    batch_size: int = runtime_field(64, ge=1)
    tta: bool = runtime_field(True)  # mean of the image's and its mirror's embedding
    qe_k: int = runtime_field(3, ge=0)  # query expansion neighbours (0: off)
    qe_alpha: float | None = runtime_field(None)  # None: average QE; a number: αQE exponent
    qe_dba: bool = runtime_field(True)  # expand the gallery over its own neighbours (DBA)
    rerank_k1: int = runtime_field(20, ge=1)
    rerank_k2: int = runtime_field(6, ge=1)
    rerank_lambda: float = runtime_field(0.3, ge=0, le=1)
    # Similarity written to the pairs submission.
    pair_score: Literal["cosine", "qe", "rerank", "qe_rerank"] = runtime_field("qe_rerank")


class ReIDPipelineConfig(StrictModel):
    """Everything a re-ID run needs; recorded in ``<run>/config.yaml``."""

    seed: int = 0
    data: ReIDDataSection = ReIDDataSection()
    model: ModelSection = ModelSection()
    train: ReIDTrainSection = ReIDTrainSection()
    inference: InferenceSection = InferenceSection()
