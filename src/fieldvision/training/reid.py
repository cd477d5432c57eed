"""Lightning system for re-identification: margin-softmax (+ triplet) training and
retrieval validation.

`ReIDSystem` owns the loss head (ArcFace / CosFace / softmax, optionally plus batch-hard
triplet) and optional mixup; the optimiser, epoch hook and validation bookkeeping come from
`TaskSystem`. The embedding network (`ReIDModel`) stays a plain module and is exported
separately.

Validation embeds every item of the validation loader and ranks, for each *query* item
(``val_query_mask``), all other items (the item itself is removed through a per-item
"camera" id: a gallery item is skipped when it has the query's identity and camera, which
is only the query itself). It logs ``val_map`` (the best-checkpoint monitor), ``val_rank1``
and ``val_minp``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel
from torch import Tensor, nn

from fieldvision.data.transforms import mixup
from fieldvision.models.losses import MarginLossConfig, batch_hard_triplet_loss, create_head
from fieldvision.seeding import torch_generator
from fieldvision.training.optim import OptimConfig
from fieldvision.training.system import StepOutput, TaskSystem

__all__ = ["ReIDSystem", "retrieval_scores"]


def retrieval_scores(
    embeddings: np.ndarray, labels: np.ndarray, query_mask: np.ndarray
) -> dict[str, float]:
    """mAP / rank-1 / mINP of `query_mask` items against all other items.

    Args:
        embeddings: float32[N, E], L2-normalised.
        labels: int[N] identities.
        query_mask: bool[N] which items are queries.

    Returns:
        ``{"map", "rank1", "minp", "n_queries"}`` (NaN metrics when nothing is valid).
    """
    from fieldvision.metrics.retrieval import evaluate_ranking

    q_idx = np.flatnonzero(query_mask)
    if len(q_idx) == 0 or len(embeddings) < 2:
        return {"map": float("nan"), "rank1": float("nan"), "minp": float("nan"), "n_queries": 0}
    sims = embeddings[q_idx] @ embeddings.T  # (Q, N)
    cams = np.arange(len(embeddings))
    result = evaluate_ranking(
        1.0 - sims, labels[q_idx], labels, query_cams=cams[q_idx], gallery_cams=cams
    )
    return {
        "map": float(result.mAP),
        "rank1": float(result.rank1),
        "minp": float(result.mINP),
        "n_queries": int(np.asarray(result.valid_query_mask).sum()),
    }


class ReIDSystem(TaskSystem):
    """Training system for a `ReIDModel`.

    Args:
        model: The embedding network; its forward returns ``embedding``, ``neck``,
            ``features``.
        num_classes: Training identities.
        loss: The identity loss (a `MarginLossConfig` or a section extending it).
        mixup_alpha: Beta(α, α) mixup on the images (0: off). Triplet loss is skipped on
            mixed batches (a mixed image has no single identity).
        mixup_prob: Probability that a batch is mixed.
        optim: Learning-rate recipe.
        val_query_mask: bool[N_val]: which validation items are queries (default: all).
        seed: Seed of the mixup generator.
    """

    monitor = "val_map"
    mode = "max"
    progress_metrics = ("map", "rank1")

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        loss: MarginLossConfig | BaseModel | Mapping[str, Any] | None = None,
        mixup_alpha: float = 0.0,
        mixup_prob: float = 0.5,
        optim: OptimConfig | BaseModel | Mapping[str, Any] | None = None,
        val_query_mask: np.ndarray | None = None,
        seed: int = 0,
    ) -> None:
        loss_cfg = MarginLossConfig() if loss is None else MarginLossConfig.narrow(loss)
        super().__init__(
            model,
            optim,
            num_classes=int(num_classes),
            loss=loss_cfg,
            mixup_alpha=float(mixup_alpha),
            mixup_prob=float(mixup_prob),
            seed=int(seed),
        )
        self.loss_cfg = loss_cfg
        emb_dim = int(model.embedding_dim)  # the documented ReIDModel interface
        self.head = create_head(
            loss_cfg.loss,
            emb_dim,
            num_classes,
            loss_cfg.margin,
            loss_cfg.scale,
            loss_cfg.label_smoothing,
        )
        self.mixup_alpha = float(mixup_alpha)
        self.mixup_prob = float(mixup_prob)
        self.val_query_mask = None if val_query_mask is None else np.asarray(val_query_mask, bool)
        self._mix_gen = torch_generator(seed)
        self.last_val_metrics: dict[str, float] = {}

    def _shared_step(self, batch: Mapping[str, Tensor], stage: str) -> StepOutput:
        if stage != "train":
            emb = self.model(batch["image"])["embedding"]
            return StepOutput(
                None,
                {},
                {"embedding": emb.float(), "label": batch["label"], "index": batch["index"]},
            )
        x, y = batch["image"], batch["label"]
        mixed = self.mixup_alpha > 0 and float(torch.rand((), generator=self._mix_gen)) < (
            self.mixup_prob
        )
        perm, lam = None, 1.0
        if mixed:
            x, perm, lam = mixup(x, self.mixup_alpha, self._mix_gen)
        out = self.model(x)
        loss = self.head(out["neck"], y)
        if perm is not None:
            loss = lam * loss + (1.0 - lam) * self.head(out["neck"], y[perm])
        logs = {"cls": loss.detach()}
        if self.loss_cfg.triplet_weight > 0 and not mixed:
            trip = batch_hard_triplet_loss(out["features"], y, self.loss_cfg.triplet_margin)
            loss = loss + self.loss_cfg.triplet_weight * trip
            logs["triplet"] = trip.detach()
        with torch.no_grad():
            logs["acc"] = (self.head.logits(out["neck"]).argmax(dim=1) == y).float().mean()
        return StepOutput(loss, logs)

    def epoch_metrics(self, collected: Mapping[str, Tensor]) -> dict[str, float]:
        index = collected["index"].numpy()
        order = np.argsort(index)
        emb = collected["embedding"].numpy()[order]
        labels = collected["label"].numpy()[order]
        index = index[order]
        qmask = (
            np.ones(len(emb), bool) if self.val_query_mask is None else self.val_query_mask[index]
        )
        scores = retrieval_scores(emb, labels, qmask)
        self.last_val_metrics = scores
        return {k: 0.0 if np.isnan(scores[k]) else scores[k] for k in ("map", "rank1", "minp")}
