"""Typed configuration of the re-identification pipeline (YAML + ``--set`` overrides).

Every field has a commented default. A run directory records the resolved config in
``config.yaml``; ``embed`` / ``pairs`` / ``evaluate`` rebuild the model from it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from fieldvision.config import StrictModel
from fieldvision.models.reid import ReIDConfig

if TYPE_CHECKING:  # lightning is heavy: import the optimiser recipe only when training
    from fieldvision.training.biomass import OptimConfig

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
    row_id_column: str = "row_id"
    query_column: str = "query_image"
    gallery_column: str = "gallery_image"
    similarity_column: str = "similarity"  # submission column
    image_size: tuple[int, int] = (128, 128)  # (H, W) the model sees
    # Alpha masks (RGBA cut-outs): random-background augmentation and the background
    # diagnostic. auto: used when the images carry alpha.
    use_mask: Literal["auto", "yes", "no"] = "auto"
    verify_images: bool = True  # decode every image once before training (clear errors)


class ModelSection(StrictModel):
    """Mirror of `ReIDConfig` (see fieldvision.models.reid)."""

    backbone: str = "fv_small_resnet"  # ours (fv_tiny_cnn, fv_small_resnet) or any timm name
    pretrained: bool | str = False  # false or a local weights file; never downloads
    embedding_dim: int = Field(128, ge=2)
    gem_p: float = Field(3.0, gt=0)
    gem_learnable: bool = True
    dropout: float = Field(0.0, ge=0, lt=1)
    drop_path_rate: float = Field(0.0, ge=0, lt=1)
    loss: Literal["arcface", "cosface", "softmax"] = "arcface"
    margin: float | None = None  # None: head default (arcface 0.5 rad, cosface 0.35)
    scale: float = Field(30.0, gt=0)
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    triplet_weight: float = Field(0.0, ge=0)  # > 0 adds batch-hard triplet loss
    triplet_margin: float = Field(0.3, ge=0)

    def to_model_config(self) -> ReIDConfig:
        """The config → dataclass adapter (library classes never see pydantic)."""
        return ReIDConfig(**self.model_dump())


class ReIDTrainSection(StrictModel):
    """Training schedule, sampling, augmentation and runtime."""

    epochs: int = Field(30, ge=1)
    p: int = Field(8, ge=1)  # identities per batch (P×K sampler)
    k: int = Field(4, ge=1)  # images per identity per batch
    # AdamW + warmup + cosine. Small pretrained-backbone fine-tuning: lr ~2e-5 (the seed).
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    warmup_epochs: float = Field(1.0, ge=0)
    min_lr_ratio: float = Field(0.05, ge=0, le=1)
    mixup_alpha: float = Field(0.0, ge=0)  # > 0 enables mixup
    mixup_prob: float = Field(0.5, ge=0, le=1)
    protocol: Literal["closed", "open"] = "closed"  # validation: held-out images or identities
    holdout_fraction: float = Field(0.25, gt=0, lt=1)
    val_every: int = Field(1, ge=1)  # validate every N epochs
    patience: int | None = Field(10, ge=1)  # early stopping, in validations (None: off)
    accumulate_grad_batches: int = Field(1, ge=1)
    gradient_clip_val: float | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: str = "auto"  # auto: bf16/16-mixed on GPU, 32 on CPU
    num_workers: int = Field(0, ge=0)  # DataLoader workers (0: in-process)
    # Augmentation
    crop_scale: tuple[float, float] = (0.7, 1.0)
    flip_p: float = Field(0.5, ge=0, le=1)
    brightness: float = Field(0.2, ge=0, le=1)  # also contrast
    saturation: float = Field(0.2, ge=0, le=1)
    erase_p: float = Field(0.25, ge=0, le=1)
    background_p: float = Field(0.5, ge=0, le=1)  # random background (needs alpha masks)

    def optim(self) -> OptimConfig:
        """The optimiser recipe for `build_optimizer`."""
        from fieldvision.training.biomass import OptimConfig

        return OptimConfig(
            lr=self.lr,
            weight_decay=self.weight_decay,
            warmup_epochs=self.warmup_epochs,
            min_lr_ratio=self.min_lr_ratio,
        )


class InferenceSection(StrictModel):
    """Embedding and retrieval post-processing."""

    batch_size: int = Field(64, ge=1)
    tta: bool = True  # mean of the image's and its mirror's embedding, re-normalised
    qe_k: int = Field(3, ge=0)  # query expansion neighbours (0: off)
    qe_alpha: float | None = None  # None: average QE; a number: αQE exponent
    qe_dba: bool = True  # expand the gallery over its own neighbours too (DBA)
    rerank_k1: int = Field(20, ge=1)
    rerank_k2: int = Field(6, ge=1)
    rerank_lambda: float = Field(0.3, ge=0, le=1)
    # Similarity written to the pairs submission.
    pair_score: Literal["cosine", "qe", "rerank", "qe_rerank"] = "qe_rerank"


class ReIDPipelineConfig(StrictModel):
    """Everything a re-ID run needs; recorded in ``<run>/config.yaml``."""

    seed: int = 0
    data: ReIDDataSection = ReIDDataSection()
    model: ModelSection = ModelSection()
    train: ReIDTrainSection = ReIDTrainSection()
    inference: InferenceSection = InferenceSection()
