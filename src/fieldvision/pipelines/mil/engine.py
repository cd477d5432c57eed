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

    @torch.inference_mode()
    def _score(self, experts: Sequence[nn.Module], sel: torch.Tensor) -> tuple:
        """Fold-mean class probabilities from the selected tiles, and each fold's raw scores.

        Pooling runs over the selected tiles alone: the same bag as pooling the whole grid
        with those tiles masked in (every pooling skips masked tiles and clips top-k to the
        tiles there are), without building grid-sized tensors inside the timed path.

        Args:
            experts: The fold experts to run.
            sel: Tensor[K, 3, s, s], the selected tiles only (the others are never cut).

        Returns:
            ``(prob: float[C], [(logits Tensor[K, C], features Tensor[K, D]) per fold])``.
        """
        probs, scored = [], []
        for expert in experts:
            lg, ft = expert.score_tiles(sel)  # (K, C), (K, D)
            bag, _ = expert.pool(lg[None], ft[None])  # (1, C)
            probs.append(bag.float().softmax(-1)[0])
            scored.append((lg, ft))
        return torch.stack(probs).mean(0).cpu().numpy(), scored

    @staticmethod
    def _on_grid(scored: list, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """float32[F, T, C] logits and [F, T, D] features, zeros where a tile did not run."""
        t = len(keep)
        logits = np.zeros((len(scored), t, scored[0][0].shape[-1]), np.float32)
        feats = np.zeros((len(scored), t, scored[0][1].shape[-1]), np.float32)
        for f, (lg, ft) in enumerate(scored):
            logits[f, keep] = lg.float().cpu().numpy()
            feats[f, keep] = ft.float().cpu().numpy()
        return logits, feats

    @torch.inference_mode()
    def scout(self, view: torch.Tensor) -> torch.Tensor:
        """Mean scouter importance over folds: ``Tensor[3, h, w] -> Tensor[T]``."""
        maps = [s(view[None].to(self.device))["importance"].flatten(1)[0] for s in self.scouters]
        return torch.stack(maps).mean(0).float().cpu()

    @torch.inference_mode()
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
                keep = mask[0].numpy()
            else:
                keep = np.ones(t, dtype=bool)
            sel = cut_tiles(image, boxes[keep], tile_size)  # (K, 3, s, s)
            prob, scored = self._score(experts, sel.to(self.device))
            ms = (time.perf_counter() - start) * 1000.0
            # Bookkeeping for the tables, outside the timed path.
            logits, feats = self._on_grid(scored, keep)
            evidence = np.full(t, np.nan, np.float32)
            ev = tile_evidence(torch.from_numpy(logits[:, keep]), self.negative).mean(0)
            evidence[keep] = ev.numpy()
            results.append(
                ImageResult(prob, evidence, scores.numpy(), keep, ms, boxes, logits, feats)
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
