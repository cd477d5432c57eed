"""MIL evaluation: full tiling vs glance and focus, side by side, on labelled images.

Per mode: accuracy, macro-F1, confusion matrix, one-vs-rest AUC, tiles the expert ran per
image (and as a fraction of all tiles), expert + scouter GFLOPs per image, wall ms per image,
and localisation where masks or boxes exist (pointing game: the top tile holds lesion;
lesion recall: the share of lesion pixels / components inside the tiles looked at). The
budget curve re-pools the full-mode tile logits over the scouter's top-K tiles, K from one
tile to all (exact: tiles are scored independently).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from fieldvision.data.images import read_rgb
from fieldvision.data.mil import BagStore
from fieldvision.metrics.classification import (
    boxes_to_mask,
    classification_metrics,
    localisation_record,
    localisation_summary,
    read_box_file,
)
from fieldvision.ops.glance import select_tiles
from fieldvision.pipelines.mil.config import MILConfig
from fieldvision.pipelines.mil.engine import ImageResult, Predictor

__all__ = ["BUDGETS", "evaluate_store", "gflops", "lesion_mask"]

#: Budgets of the accuracy-against-budget curve (fractions of the tiles).
BUDGETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)


def gflops(experts: Sequence[torch.nn.Module], scouters: Sequence[torch.nn.Module],
           tile_size: int, scout_size: tuple[int, int]) -> tuple[float, float]:  # fmt: skip
    """(GFLOPs per expert tile, GFLOPs per scouter image), summed over folds."""
    from torch.utils.flop_counter import FlopCounterMode

    def count(fn) -> float:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            fn()
        return counter.get_total_flops() / 1e9

    tile = torch.rand(1, 3, tile_size, tile_size)
    view = torch.rand(1, 3, *scout_size)
    per_tile = sum(count(lambda m=m: m.cpu().score_tiles(tile)) for m in experts)
    per_view = sum(count(lambda m=m: m.cpu()(view)) for m in scouters)
    return per_tile, per_view


def lesion_mask(store: BagStore, i: int, size: tuple[int, int]) -> np.ndarray | None:
    """bool[H, W] lesion mask of image `i` at the tiled size, from its mask or box file."""
    samples = store.samples
    h, w = size
    if samples.masks is not None and samples.masks[i] is not None:
        import cv2

        m = read_rgb(samples.masks[i])[..., 0]
        if m.shape != (h, w):
            m = cv2.resize(m, (w, h), interpolation=cv2.INTER_NEAREST)
        return m > 127
    if samples.boxes is not None and samples.boxes[i] is not None:
        boxes = read_box_file(samples.boxes[i]).astype(np.float64)
        if store.spec.input_size is not None:  # boxes are in source pixels: rescale them
            from PIL import Image

            with Image.open(samples.paths[i]) as im:  # the header only, no decode
                src_w, src_h = im.size
            boxes[:, [0, 2]] *= w / src_w
            boxes[:, [1, 3]] *= h / src_h
        return boxes_to_mask(boxes, h, w)
    return None


def _mode_metrics(
    results: list[ImageResult], labels: np.ndarray, classes: Sequence[str],
    tile_gflops: float, view_gflops: float, glance: bool, masks: list[np.ndarray | None],
) -> dict[str, Any]:  # fmt: skip
    prob = np.stack([r.prob for r in results])
    m = classification_metrics(labels, prob, classes)
    tiles = np.array([r.selected.sum() for r in results], np.float64)
    total = np.array([len(r.selected) for r in results], np.float64)
    m["tiles_per_image"] = float(tiles.mean())
    m["tile_fraction"] = float((tiles / total).mean())
    m["ms_per_image"] = float(np.mean([r.ms for r in results]))
    m["gflops_per_image"] = float(tiles.mean() * tile_gflops + (view_gflops if glance else 0.0))
    records = []
    for r, mask in zip(results, masks, strict=True):
        if mask is None:
            continue
        scores = np.where(r.selected, np.nan_to_num(r.expert, nan=-1.0), -1.0)
        records.append(localisation_record(scores, r.selected, mask, r.boxes))
    if records:
        m["localisation"] = localisation_summary(records)
    return m


def evaluate_store(
    experts: Sequence[torch.nn.Module],
    scouters: Sequence[torch.nn.Module],
    store: BagStore,
    classes: Sequence[str],
    negative: int | None,
    cfg: MILConfig,
    curve: bool = True,
    progress: bool = False,
    students: Sequence[torch.nn.Module] | None = None,
) -> dict[str, Any]:
    """Full vs glance metrics (and the budget curve) of models on labelled images.

    Returns:
        ``{"full": metrics, "glance": metrics, "curve": [rows], "_pred": {mode: labels},
        "_results": {mode: [ImageResult]}, "_masks": [lesion mask or None]}`` (underscored
        keys are not JSON-safe). The curve's ``ms_per_image`` is an estimate: the measured
        scouter cost plus that fraction of the measured full-tiling cost.
    """
    labels = store.samples.label_ids(classes)
    predictor = Predictor(experts, scouters, negative, cfg.train.device, students)
    g = cfg.glance
    full = predictor.run(store, "full", progress=progress)
    glance = predictor.run(store, "glance", g.budget, g.min_tiles, g.stop_entropy, progress)
    tile_gf, view_gf = gflops(experts, scouters, store.spec.tile_size, store.spec.scout_size)
    # Read each image's mask (or boxes) once, at the size its tiles were cut from.
    masks = [lesion_mask(store, i, (int(r.boxes[:, 3].max()), int(r.boxes[:, 2].max())))
             for i, r in enumerate(full)]  # fmt: skip
    out: dict[str, Any] = {
        "full": _mode_metrics(full, labels, classes, tile_gf, view_gf, False, masks),
        "glance": _mode_metrics(glance, labels, classes, tile_gf, view_gf, True, masks),
    }
    out["_masks"] = masks
    out["glance"]["budget"] = g.budget
    rows = []
    if curve:
        full_ms = out["full"]["ms_per_image"]
        scouter_ms = max(
            0.0, out["glance"]["ms_per_image"] - full_ms * out["glance"]["tile_fraction"]
        )
        for budget in BUDGETS:
            probs, fractions = [], []
            for f, gl in zip(full, glance, strict=True):
                t = len(gl.scouter)
                k = max(1, math.ceil(budget * t))
                mask, _ = select_tiles(torch.from_numpy(gl.scouter)[None], k / t, k, 0.0)
                probs.append(predictor.repool(f, mask[0].numpy()))
                fractions.append(k / t)
            cm = classification_metrics(labels, np.stack(probs), classes)
            frac = float(np.mean(fractions))
            # ms is estimated: the measured scouter cost + this fraction of full tiling.
            est_ms = scouter_ms + frac * full_ms
            rows.append({"budget": budget, "tile_fraction": frac, "macro_f1": cm["macro_f1"],
                         "auc": cm["auc"], "ms_per_image": est_ms})  # fmt: skip
    out["curve"] = rows
    out["_pred"] = {
        "full": [classes[int(np.argmax(r.prob))] for r in full],
        "glance": [classes[int(np.argmax(r.prob))] for r in glance],
    }
    out["_results"] = {"full": full, "glance": glance}
    return out
