"""Typed configuration of the MIL pipeline (YAML + ``--set`` overrides).

Sections are declared once by composition: ``expert`` *is* the tile expert's config plus
the optimiser recipe, the schedule and the MIL loss settings; ``scouter`` likewise.
``glance`` settings (budget, entropy rule) only change inference, so they are runtime
fields: `predict` / `evaluate` take ``--budget`` or ``--set glance.budget=...`` on a finished
run.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from fieldvision.config import StrictModel, runtime_field
from fieldvision.data.images import DEFAULT_MAX_PIXELS
from fieldvision.models.mil import MILExpertConfig, ScouterConfig
from fieldvision.training.fit import ScheduleConfig, TrainerConfig
from fieldvision.training.optim import OptimConfig

__all__ = [
    "DistillSection",
    "ExpertSection",
    "GlanceSection",
    "MILConfig",
    "MILDataSection",
    "ScouterSection",
]


class MILDataSection(StrictModel):
    """Input columns, the class without evidence, and how images become bags."""

    image_column: str = "image"
    label_column: str = "label"
    group_column: str = "group"  # optional: images of a group never straddle folds
    mask_column: str = "mask"  # optional lesion masks (localisation metrics only)
    boxes_column: str = "boxes"  # optional box files (localisation metrics only)
    # The class whose images have no evidence anywhere (every tile healthy); null: none.
    negative_class: str | None = "healthy"
    grid: tuple[int, int] = (8, 8)  # (rows, cols) of tiles per image
    overlap: float = Field(0.0, ge=0, lt=0.5)  # fraction of a tile added on each side
    # Resize every image to (H, W) before tiling (divisible by the grid); null: full size.
    input_size: tuple[int, int] | None = None
    min_tile_px: int = Field(16, ge=1)  # smallest grid cell, in source pixels
    batch_size: int = Field(8, ge=1)  # bags per batch
    augment: bool = True  # random whole-bag flips
    # With augment: every tile also gets its own random 90° turn / mirror (D4) when training
    # the expert; for images without a preferred orientation (boards, micrographs).
    tile_augment: bool = False
    num_workers: int = runtime_field(0, ge=0)
    max_image_pixels: int = runtime_field(DEFAULT_MAX_PIXELS, ge=1)

    @model_validator(mode="after")
    def _grid_fits(self) -> MILDataSection:
        rows, cols = self.grid
        if rows < 1 or cols < 1:
            raise ValueError(f"data.grid must be positive (rows, cols), got {self.grid}")
        if self.input_size is not None:
            h, w = self.input_size
            if h % rows or w % cols:
                raise ValueError(
                    f"data.grid {rows}x{cols} does not divide data.input_size {h}x{w}: "
                    "choose an input size that is a multiple of the grid"
                )
            if h // rows < self.min_tile_px or w // cols < self.min_tile_px:
                raise ValueError(
                    f"data.input_size {h}x{w} gives tiles under data.min_tile_px="
                    f"{self.min_tile_px} px for a {rows}x{cols} grid"
                )
        return self


class ExpertSection(MILExpertConfig, OptimConfig, ScheduleConfig):
    """The tile expert, its loss and its schedule."""

    epochs: int = Field(15, ge=1)
    patience: int | None = Field(6, ge=1)
    sparsity_weight: float = Field(0.05, ge=0)  # λ of the L1 on tile disease probabilities
    sparsity_warmup_epochs: float = Field(2.0, ge=0)  # epochs before λ ramps up
    healthy_tile_weight: float = Field(0.5, ge=0)  # negative bags: every tile is healthy
    class_weighting: bool = True  # inverse-frequency class weights in the bag loss


class ScouterSection(ScouterConfig, OptimConfig, ScheduleConfig):
    """The scouter (trained after the expert, expert frozen) and its schedule."""

    epochs: int = Field(12, ge=1)
    patience: int | None = Field(6, ge=1)
    # Platt-scale the trained scouter's logits on the validation images against the
    # expert's evidence, so the glance stop rule reads probabilities (see
    # `fieldvision.pipelines.mil.calibration`); false: raw MSE-regressed scores.
    calibrate: bool = True


class DistillSection(OptimConfig, ScheduleConfig):
    """Optional teacher–student stage (seed 002): the full-tiling expert is the teacher (it
    sees every tile); a student copy of it is fine-tuned on the scouter's glance selections
    only, to give the teacher's answer from a fraction of the tiles (KL on softened bag
    probabilities + the bag cross-entropy). Glance inference then uses the student."""

    enabled: bool = False
    budget: float = Field(0.3, gt=0, le=1)  # tile budget of the training selections
    temperature: float = Field(2.0, gt=0)  # softening of teacher and student probabilities
    weight: float = Field(1.0, ge=0)  # weight of the distillation term (bag CE weighs 1)
    epochs: int = Field(6, ge=1)
    patience: int | None = Field(4, ge=1)
    lr: float = Field(1e-3, gt=0)


class TrainSection(TrainerConfig):
    """Splits and runtime."""

    folds: int = Field(0, ge=0)  # 0: one grouped train/validation split; k ≥ 2: k folds
    val_fraction: float = Field(0.25, gt=0, lt=1)  # single split
    seed: int = 0


class GlanceSection(StrictModel):
    """Glance-and-focus inference (runtime: changes no weights)."""

    budget: float = runtime_field(0.3, gt=0, le=1)  # at most this fraction of tiles
    min_tiles: int = runtime_field(1, ge=1)  # always run the expert on this many
    # Keep adding tiles while the chance that some unseen tile holds evidence (from the
    # calibrated scouter) is ≥ 0.5 or uncertain (binary entropy in bits ≥ this); stop
    # once the scouter is confident that nothing unseen matters.
    stop_entropy: float = runtime_field(0.5, ge=0, le=1)
    batch_size: int = runtime_field(16, ge=1)  # images per scouter batch


class MILConfig(StrictModel):
    """The whole MIL pipeline configuration; recorded in ``<run>/config.yaml``."""

    data: MILDataSection = MILDataSection()
    expert: ExpertSection = ExpertSection()
    scouter: ScouterSection = ScouterSection()
    distill: DistillSection = DistillSection()
    train: TrainSection = TrainSection()
    glance: GlanceSection = GlanceSection()
