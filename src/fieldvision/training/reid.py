"""Lightning system for re-identification: margin-softmax (+ triplet) training and
retrieval validation.

`ReIDSystem` owns the loss head (ArcFace / CosFace / softmax, optionally plus batch-hard
triplet), optional mixup, the AdamW + warmup-cosine schedule (shared recipe from
`fieldvision.training.biomass`) and the validation metric. The embedding network
(`ReIDModel`) stays a plain module and is exported separately.

Validation embeds every item of the validation loader and ranks, for each *query* item
(``val_query_mask``), all other items (the item itself is removed through a per-item
"camera" id: a gallery item is skipped when it has the query's identity and camera, which
is only the query itself). It logs ``val_map`` (the early-stopping monitor), ``val_rank1``
and ``val_minp``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn

from fieldvision.data.transforms import mixup
from fieldvision.errors import RunError
from fieldvision.models.losses import batch_hard_triplet_loss, create_head
from fieldvision.seeding import torch_generator
from fieldvision.training.biomass import OptimConfig, build_optimizer

__all__ = ["ReIDSystem", "load_model_weights", "retrieval_scores"]


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


class ReIDSystem(L.LightningModule):
    """Training system for a `ReIDModel`.

    Args:
        model: The embedding network; its forward returns ``embedding``, ``neck``,
            ``features``.
        num_classes: Training identities.
        loss: Margin head name: ``arcface``, ``cosface`` or ``softmax``.
        margin: Head margin (None: head default).
        scale: Head logit scale.
        label_smoothing: Cross-entropy label smoothing.
        triplet_weight: Weight of batch-hard triplet loss on ``features`` (0: off).
        triplet_margin: Triplet margin (on L2-normalised features).
        mixup_alpha: Beta(α, α) mixup on the images (0: off). Triplet loss is skipped on
            mixed batches (a mixed image has no single identity).
        mixup_prob: Probability that a batch is mixed.
        optim: Learning-rate recipe.
        val_query_mask: bool[N_val]: which validation items are queries (default: all).
        seed: Seed of the mixup generator.
    """

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        loss: str = "arcface",
        margin: float | None = None,
        scale: float = 30.0,
        label_smoothing: float = 0.1,
        triplet_weight: float = 0.0,
        triplet_margin: float = 0.3,
        mixup_alpha: float = 0.0,
        mixup_prob: float = 0.5,
        optim: OptimConfig | None = None,
        val_query_mask: np.ndarray | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model", "val_query_mask", "optim"])
        self.model = model
        emb_dim = int(model.embedding_dim)  # the documented ReIDModel interface
        self.head = create_head(loss, emb_dim, num_classes, margin, scale, label_smoothing)
        self.triplet_weight = float(triplet_weight)
        self.triplet_margin = float(triplet_margin)
        self.mixup_alpha = float(mixup_alpha)
        self.mixup_prob = float(mixup_prob)
        self.optim = optim or OptimConfig()
        self.val_query_mask = None if val_query_mask is None else np.asarray(val_query_mask, bool)
        self._mix_gen = torch_generator(seed)
        self._val: list[tuple[Tensor, Tensor, Tensor]] = []
        self.last_val_metrics: dict[str, float] = {}

    # ------------------------------------------------------------------ training
    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """The model's outputs for ``x: Tensor[B, 3, H, W]``."""
        return self.model(x)

    def on_train_epoch_start(self) -> None:
        # Re-seed the P×K sampler and the dataset's augmentation stream for this epoch.
        loader = self.trainer.train_dataloader
        for obj in (getattr(loader, "batch_sampler", None), getattr(loader, "dataset", None)):
            set_epoch = getattr(obj, "set_epoch", None)
            if callable(set_epoch):
                set_epoch(self.current_epoch)

    def _shared_step(self, batch: dict[str, Tensor], train: bool) -> dict[str, Tensor]:
        x, y = batch["image"], batch["label"]
        mixed = (
            train
            and self.mixup_alpha > 0
            and float(torch.rand((), generator=self._mix_gen)) < self.mixup_prob
        )
        perm, lam = None, 1.0
        if mixed:
            x, perm, lam = mixup(x, self.mixup_alpha, self._mix_gen)
        out = self.model(x)
        loss = self.head(out["neck"], y)
        if perm is not None:
            loss = lam * loss + (1.0 - lam) * self.head(out["neck"], y[perm])
        result = {"loss_cls": loss.detach()}
        if self.triplet_weight > 0 and not mixed:
            trip = batch_hard_triplet_loss(out["features"], y, self.triplet_margin)
            loss = loss + self.triplet_weight * trip
            result["loss_triplet"] = trip.detach()
        with torch.no_grad():
            acc = (self.head.logits(out["neck"]).argmax(dim=1) == y).float().mean()
        result.update(loss=loss, acc=acc)
        return result

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        res = self._shared_step(batch, train=True)
        bs = batch["image"].shape[0]
        self.log(
            "train_loss", res["loss"], prog_bar=True, on_step=True, on_epoch=True, batch_size=bs
        )
        self.log("train_acc", res["acc"], on_step=False, on_epoch=True, batch_size=bs)
        if "loss_triplet" in res:
            self.log("train_triplet", res["loss_triplet"], on_epoch=True, batch_size=bs)
        return res["loss"]

    # ------------------------------------------------------------------ validation
    def on_validation_epoch_start(self) -> None:
        self._val = []

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        emb = self.model(batch["image"])["embedding"]
        self._val.append(
            (emb.detach().float().cpu(), batch["label"].detach().cpu(), batch["index"].cpu())
        )

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        emb = torch.cat([v[0] for v in self._val]).numpy()
        labels = torch.cat([v[1] for v in self._val]).numpy()
        index = torch.cat([v[2] for v in self._val]).numpy()
        order = np.argsort(index)
        emb, labels, index = emb[order], labels[order], index[order]
        qmask = (
            np.ones(len(emb), bool) if self.val_query_mask is None else self.val_query_mask[index]
        )
        scores = retrieval_scores(emb, labels, qmask)
        self.last_val_metrics = scores
        mapv = 0.0 if np.isnan(scores["map"]) else scores["map"]
        self.log("val_map", mapv, prog_bar=True)
        self.log("val_rank1", 0.0 if np.isnan(scores["rank1"]) else scores["rank1"], prog_bar=True)
        self.log("val_minp", 0.0 if np.isnan(scores["minp"]) else scores["minp"])
        self._val = []

    # ------------------------------------------------------------------ optimiser
    def configure_optimizers(self) -> dict[str, Any]:
        total = max(1, int(self.trainer.estimated_stepping_batches))
        epochs = max(1, int(self.trainer.max_epochs or 1))
        warmup = int(round(self.optim.warmup_epochs * total / epochs))
        optimizer, scheduler = build_optimizer(self.parameters(), self.optim, total, warmup)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
        }


def load_model_weights(model: nn.Module, checkpoint: str | os.PathLike[str]) -> nn.Module:
    """Load the ``model.*`` weights of a `ReIDSystem` Lightning checkpoint into `model`.

    Raises:
        RunError: The checkpoint is missing, unreadable or does not fit the model.
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise RunError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for bad files
        raise RunError(f"{path}: unreadable checkpoint ({exc.__class__.__name__}: {exc})") from None
    weights = state.get("state_dict", state) if isinstance(state, dict) else None
    if not isinstance(weights, dict):
        raise RunError(f"{path}: no state dict in checkpoint")
    sub = {k.removeprefix("model."): v for k, v in weights.items() if k.startswith("model.")}
    try:
        model.load_state_dict(sub)
    except RuntimeError as exc:
        raise RunError(
            f"{path}: checkpoint does not match the model in the run config ({exc})".splitlines()[0]
        ) from None
    return model
