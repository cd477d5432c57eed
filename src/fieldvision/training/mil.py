"""Lightning systems of the MIL pipeline: the tile expert (bag loss + sparsity) and the
scouter (distillation of the expert's tile map)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel
from torch import Tensor

from fieldvision.models.mil_loss import mil_loss, scouter_loss, sparsity_ramp
from fieldvision.training.optim import OptimConfig
from fieldvision.training.system import StepOutput, TaskSystem

__all__ = ["DistillSystem", "MILSystem", "ScouterSystem"]


def _bag_metrics(collected: Mapping[str, Tensor], class_names: Sequence[str]) -> dict[str, float]:
    """Validation macro-F1 and accuracy of collected bag probabilities."""
    from fieldvision.metrics.classification import classification_metrics

    m = classification_metrics(collected["label"].numpy(), collected["prob"].numpy(), class_names)
    return {"macro_f1": float(m["macro_f1"]), "accuracy": float(m["accuracy"])}


class MILSystem(TaskSystem):
    """Train a `MILExpert` from image-level labels.

    Loss: class-weighted cross-entropy on the bag logits + λ(epoch) · L1 on the tiles'
    disease probability (λ is 0 during the warm-up, then ramps up) + a tile cross-entropy
    toward the negative class for negative (healthy) bags, whose every tile is known to be
    healthy. Diseased bags never give their label to every tile (the seed's design rule).
    Validation logs ``val_macro_f1`` (the best-checkpoint monitor), ``val_accuracy``.

    Batches: ``tiles`` Tensor[B, T, 3, s, s] in [0, 1], ``label`` Tensor[B] int64.

    Args:
        model: The expert.
        class_names: Class names (metric reporting).
        negative_class: Index of the class with no evidence anywhere, or None.
        class_weights: Cross-entropy weight per class (None: uniform).
        sparsity_weight: λ after the ramp.
        sparsity_warmup_epochs: Epochs without the sparsity term (then a linear ramp).
        healthy_tile_weight: Weight of the negative bags' tile cross-entropy.
        optim: Optimiser recipe.
    """

    monitor = "val_macro_f1"
    mode = "max"
    progress_metrics = ("macro_f1",)

    def __init__(
        self,
        model: torch.nn.Module,
        class_names: Sequence[str],
        negative_class: int | None = None,
        class_weights: Sequence[float] | None = None,
        sparsity_weight: float = 0.0,
        sparsity_warmup_epochs: float = 0.0,
        healthy_tile_weight: float = 1.0,
        optim: OptimConfig | BaseModel | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(
            model,
            optim,
            class_names=list(class_names),
            negative_class=negative_class,
            class_weights=None if class_weights is None else [float(w) for w in class_weights],
            sparsity_weight=float(sparsity_weight),
            sparsity_warmup_epochs=float(sparsity_warmup_epochs),
            healthy_tile_weight=float(healthy_tile_weight),
        )
        self.class_names = list(class_names)
        self.negative_class = negative_class
        weights = (
            None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
        )
        self.register_buffer("class_weights", weights, persistent=False)
        self.sparsity_weight = float(sparsity_weight)
        self.sparsity_warmup_epochs = float(sparsity_warmup_epochs)
        self.healthy_tile_weight = float(healthy_tile_weight)

    def _shared_step(self, batch: Mapping[str, Tensor], stage: str) -> StepOutput:
        out = self.model(batch["tiles"])
        lam = sparsity_ramp(float(self.current_epoch), self.sparsity_warmup_epochs,
                            self.sparsity_weight)  # fmt: skip
        loss, parts = mil_loss(
            out["bag_logits"].float(),
            out["tile_logits"].float(),
            batch["label"],
            self.negative_class,
            sparsity_weight=lam,
            healthy_tile_weight=self.healthy_tile_weight,
            class_weights=self.class_weights,
        )
        collect = {}
        if stage == "val":
            collect = {"prob": out["bag_logits"].float().softmax(-1), "label": batch["label"]}
        return StepOutput(loss, {k: v.detach() for k, v in parts.items()}, collect)

    def epoch_metrics(self, collected: Mapping[str, Tensor]) -> dict[str, float]:
        return _bag_metrics(collected, self.class_names)


class DistillSystem(TaskSystem):
    """Fine-tune a student `MILExpert` on glance selections toward a full-view teacher.

    Loss: bag cross-entropy + ``weight · T² · KL(teacher_T || student_T)`` where ``·_T`` are
    probabilities softened by the temperature ``T`` (Hinton et al.'s scaling keeps the
    gradient size independent of ``T``). The teacher's probabilities come precomputed in
    the batch (the frozen expert on every tile).

    Batches: ``tiles`` Tensor[B, T, 3, s, s], ``mask`` Tensor[B, T] bool (the scouter's
    selection), ``teacher`` Tensor[B, C] probabilities, ``label`` Tensor[B] int64.
    Validation logs ``val_macro_f1`` (the monitor) and ``val_agreement`` (student and
    teacher predict the same class).
    """

    monitor = "val_macro_f1"
    mode = "max"
    progress_metrics = ("macro_f1",)

    def __init__(
        self,
        model: torch.nn.Module,
        class_names: Sequence[str],
        temperature: float = 2.0,
        weight: float = 1.0,
        optim: OptimConfig | BaseModel | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(model, optim, class_names=list(class_names),
                         temperature=float(temperature), weight=float(weight))  # fmt: skip
        self.class_names = list(class_names)
        self.temperature = float(temperature)
        self.weight = float(weight)

    def _shared_step(self, batch: Mapping[str, Tensor], stage: str) -> StepOutput:
        out = self.model(batch["tiles"], batch["mask"].bool())
        logits = out["bag_logits"].float()  # (B, C)
        ce = torch.nn.functional.cross_entropy(logits, batch["label"])
        t = self.temperature
        teacher = (batch["teacher"].float().clamp_min(1e-8).log() / t).log_softmax(-1)
        student = (logits / t).log_softmax(-1)
        kl = torch.nn.functional.kl_div(student, teacher, log_target=True, reduction="batchmean")
        loss = ce + self.weight * t * t * kl
        collect = {}
        if stage == "val":
            collect = {"prob": logits.softmax(-1), "label": batch["label"],
                       "teacher": batch["teacher"].float()}  # fmt: skip
        return StepOutput(loss, {"bag_ce": ce.detach(), "kl": kl.detach()}, collect)

    def epoch_metrics(self, collected: Mapping[str, Tensor]) -> dict[str, float]:
        agree = collected["prob"].argmax(1) == collected["teacher"].argmax(1)
        return {
            **_bag_metrics(collected, self.class_names),
            "agreement": float(agree.float().mean()),
        }


class ScouterSystem(TaskSystem):
    """Train a `Scouter` to regress the frozen expert's tile map (MSE distillation).

    Batches: ``image`` Tensor[B, 3, h, w] in [0, 1], ``target`` Tensor[B, R, C] in [0, 1]
    (the expert's tile disease probabilities). Best checkpoint: lowest ``val_loss``;
    ``val_top1_hit`` is the fraction of images whose top scouter tile is the expert's top.
    """

    monitor = "val_loss"
    mode = "min"

    def __init__(
        self,
        model: torch.nn.Module,
        optim: OptimConfig | BaseModel | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(model, optim)

    def _shared_step(self, batch: Mapping[str, Tensor], stage: str) -> StepOutput:
        out = self.model(batch["image"])
        target = batch["target"].float()
        loss = scouter_loss(out["logits"].float(), target)
        collect = {}
        if stage == "val":
            collect = {"pred": out["importance"].float().flatten(1), "target": target.flatten(1)}
        return StepOutput(loss, {}, collect)

    def epoch_metrics(self, collected: Mapping[str, Tensor]) -> dict[str, float]:
        pred, target = collected["pred"].numpy(), collected["target"].numpy()
        hit = np.argmax(pred, axis=1) == np.argmax(target, axis=1)
        return {"top1_hit": float(hit.mean())}
