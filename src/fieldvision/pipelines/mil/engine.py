"""Glance-and-focus inference, and full tiling, for one or more (expert, scouter) pairs.

``full``: cut every tile of the image, the expert scores all of them, pooling gives the bag
probabilities. ``glance``: the scouter looks at the downscaled whole image and predicts
the tile map; `select_tiles` keeps the top tiles within the budget (fewer when the scouter
is confident the rest is healthy); only those tiles are cut and scored; pooling runs over
the selected tiles. With several folds, the scouters' maps and the experts' probabilities
are averaged.

Every image is timed from decoded pixels to probabilities (the decode is the same for
both modes and is excluded), so ``ms`` compares the two modes' compute honestly.

The predictor runs its own eval-mode copies of the networks with BatchNorm folded into
the convolutions (`fold_batchnorm`): the same function to float rounding, one operator
less per convolution, which matters at glance's batches of a few tiles. The caller's
modules are left untouched (they may still be training).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from fieldvision.console import progress_iter
from fieldvision.data.mil import BagStore
from fieldvision.models.batchnorm_folding import fold_batchnorm
from fieldvision.ops.glance import cut_tiles, select_tiles
from fieldvision.runtime import resolve_device

__all__ = ["ImageResult", "Predictor", "tile_evidence"]


def tile_evidence(tile_logits: torch.Tensor, negative: int | None) -> torch.Tensor:
    """Evidence score in [0, 1] per tile: the probability that it is not healthy.

    Args:
        tile_logits: Tensor[..., C].
        negative: The negative class, or None (then: the top class probability).

    Returns:
        Tensor[...].
    """
    prob = tile_logits.float().softmax(-1)
    if negative is None:
        return prob.max(-1).values
    return 1.0 - prob[..., negative]


@dataclass
class ImageResult:
    """What inference found in one image.

    Attributes:
        prob: float[C] class probabilities.
        expert: float[T] expert evidence per tile (NaN where the expert did not run).
        scouter: float[T] scouter importance (NaN in full mode).
        selected: bool[T] tiles the expert ran.
        ms: Milliseconds from decoded pixels to probabilities.
        boxes: int[T, 4] tile boxes in source pixels.
        tile_logits: float[F, T, C] per fold expert (zeros where not run), kept so budget
            curves can re-pool any subset of tiles without running the experts again.
        tile_features: float[F, T, D] (zeros where not run).
    """

    prob: np.ndarray
    expert: np.ndarray
    scouter: np.ndarray
    selected: np.ndarray
    ms: float
    boxes: np.ndarray
    tile_logits: np.ndarray = field(repr=False)
    tile_features: np.ndarray = field(repr=False)


class Predictor:
    """Run the folds' experts (and scouters) of a run on images.

    Args:
        experts: One `MILExpert` per fold.
        scouters: One `Scouter` per fold (same order), or empty for full mode only.
        negative: Index of the negative class, or None.
        device: ``auto`` | ``cpu`` | ``cuda``.
        students: Optional distilled experts per fold, used instead of `experts` in glance
            mode (see ``distill`` in the config).
    """

    def __init__(
        self,
        experts: Sequence[nn.Module],
        scouters: Sequence[nn.Module],
        negative: int | None,
        device: str = "auto",
        students: Sequence[nn.Module] | None = None,
    ) -> None:
        self.device = resolve_device(device)
        self.full_experts = [self._inference_copy(m) for m in experts]
        self.students = [self._inference_copy(m) for m in students] if students else []
        self.scouters = [self._inference_copy(m) for m in scouters]
        self.negative = negative

    def _inference_copy(self, module: nn.Module) -> nn.Module:
        inference = copy.deepcopy(module).eval().to(self.device)
        fold_batchnorm(inference)
        return inference

    @torch.no_grad()
    def _score(self, experts: Sequence[nn.Module], sel: torch.Tensor, mask: torch.Tensor) -> tuple:
        """Fold-mean class probabilities, and each fold's tile logits and features.

        Args:
            experts: The fold experts to run.
            sel: Tensor[K, 3, s, s], the selected tiles only (the others are never cut).
            mask: Tensor[1, T] bool, which tiles `sel` are.
        """
        probs, logits, feats = [], [], []
        for expert in experts:
            lg, ft = expert.score_tiles(sel)  # (K, C), (K, D)
            t = mask.shape[1]
            full_lg = lg.new_zeros((1, t, lg.shape[-1]))
            full_ft = ft.new_zeros((1, t, ft.shape[-1]))
            full_lg[0, mask[0]] = lg
            full_ft[0, mask[0]] = ft
            bag, _ = expert.pool(full_lg, full_ft, mask)
            probs.append(bag.float().softmax(-1)[0])
            logits.append(full_lg[0])
            feats.append(full_ft[0])
        stack = lambda xs: torch.stack(xs).float().cpu().numpy()  # noqa: E731
        return stack(probs).mean(0), stack(logits), stack(feats)  # (C,), (F, T, C), (F, T, D)

    @torch.no_grad()
    def scout(self, view: torch.Tensor) -> torch.Tensor:
        """Mean scouter importance over folds: ``Tensor[3, h, w] -> Tensor[T]``."""
        maps = [s(view[None].to(self.device))["importance"].flatten(1)[0] for s in self.scouters]
        return torch.stack(maps).mean(0).float().cpu()

    @torch.no_grad()
    def run(
        self,
        store: BagStore,
        mode: str,
        budget: float = 0.3,
        min_tiles: int = 1,
        stop_entropy: float = 0.5,
        progress: bool = False,
    ) -> list[ImageResult]:
        """Predict every image of `store` in ``full`` or ``glance`` mode.

        Raises:
            ValueError: Glance mode without scouters, or an unknown mode.
        """
        if mode not in ("full", "glance"):
            raise ValueError(f"mode must be full or glance, got {mode!r}")
        if mode == "glance" and not self.scouters:
            raise ValueError("glance mode needs the run's scouters")
        tile_size = store.spec.tile_size
        # Glance uses the distilled students when the run has them; full tiling the experts.
        experts = self.students if mode == "glance" and self.students else self.full_experts
        results = []
        indices = range(len(store))
        for i in progress_iter(indices, f"{mode} inference", len(store), enabled=progress):
            image = store.load_image(i)  # decoded pixels: not timed (same for both modes)
            h, w = image.shape[-2:]
            boxes = store.boxes_for(h, w)
            t = len(boxes)
            start = time.perf_counter()
            scores = torch.full((t,), float("nan"))
            if mode == "glance":
                scores = self.scout(store.scout_view(image))
                mask, _ = select_tiles(scores[None], budget, min_tiles, stop_entropy)
            else:
                mask = torch.ones((1, t), dtype=torch.bool)
            sel = cut_tiles(image, boxes[mask[0].numpy()], tile_size)  # (K, 3, s, s)
            prob, logits, feats = self._score(experts, sel.to(self.device), mask.to(self.device))
            ms = (time.perf_counter() - start) * 1000.0
            sel = mask[0].numpy()
            evidence = np.full(t, np.nan, np.float32)
            ev = tile_evidence(torch.from_numpy(logits[:, sel]), self.negative).mean(0)
            evidence[sel] = ev.numpy()
            results.append(
                ImageResult(prob, evidence, scores.numpy(), sel, ms, boxes, logits, feats)
            )
        return results

    @torch.no_grad()
    def repool(self, result: ImageResult, selected: np.ndarray) -> np.ndarray:
        """Class probabilities of `result` pooled over another tile subset (no expert run).

        Exact for tiles the experts scored (tiles are scored independently; BatchNorm is in
        eval mode), so a budget sweep over a full-mode result costs only pooling.
        """
        mask = torch.from_numpy(np.asarray(selected, bool))[None].to(self.device)
        probs = []
        for f, expert in enumerate(self.full_experts):
            lg = torch.from_numpy(result.tile_logits[f])[None].to(self.device)
            ft = torch.from_numpy(result.tile_features[f])[None].to(self.device)
            bag, _ = expert.pool(lg, ft, mask)
            probs.append(bag.float().softmax(-1)[0].cpu())
        return torch.stack(probs).mean(0).numpy()
