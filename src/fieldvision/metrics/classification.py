"""Image-level classification metrics and weak-supervision localisation for the MIL pipeline.

Classification (`classification_metrics`): the predicted class is the arg-max of the score
matrix ``prob[N, C]`` (rows need not sum to 1). Macro-F1 follows scikit-learn: the mean F1
over the classes that occur in ``y_true`` or in the predictions (a class absent from both
has no defined F1 and is left out). ROC-AUC is one-vs-rest, macro-averaged: the mean over
classes ``k`` of the binary AUC of ``y == k`` against column ``k``; for two classes it is
the binary AUC of column 1. It is NaN, with an ``auc_note``, when a class is absent from
``y_true`` (its one-vs-rest AUC is undefined).

Localisation: the MIL model is trained with image labels only; lesion masks or boxes
(DeepPCB-style box files) are used here to *measure* where it looks, never to train.
Tiles are integer pixel boxes ``x1 y1 x2 y2`` with exclusive ends, i.e. the tile covers
``mask[y1:y2, x1:x2]``; parts outside the image are ignored.

* `pointing_game`: the top-scoring tile holds more than ``min_fraction`` lesion pixels.
* `lesion_recall`: fraction of lesion pixels inside the union of the selected tiles.
* `component_recall`: fraction of lesion components (8-connected) that touch at least one
  selected tile — a small lesion counts as much as a large one.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fieldvision.errors import DataError

__all__ = [
    "boxes_to_mask",
    "classification_metrics",
    "component_recall",
    "lesion_recall",
    "localisation_record",
    "localisation_summary",
    "pointing_game",
    "read_box_file",
    "tile_lesion_fraction",
]


def _labels(y_true: Sequence[int] | np.ndarray, n: int, n_classes: int) -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim != 1 or y.shape[0] != n:
        raise DataError(f"y_true must be 1-D with {n} entries (rows of prob), got shape {y.shape}")
    if y.dtype != bool and not np.issubdtype(y.dtype, np.integer):
        if not np.issubdtype(y.dtype, np.number) or not np.all(np.isfinite(y)):
            raise DataError(f"y_true must hold integer class indices, got dtype {y.dtype}")
        if np.any(y != np.round(y)):
            raise DataError("y_true must hold integer class indices, got fractional values")
    y = y.astype(np.int64)
    bad = np.flatnonzero((y < 0) | (y >= n_classes))
    if bad.size:
        raise DataError(f"y_true[{bad[0]}] = {y[bad[0]]} is not a class index in [0, {n_classes})")
    return y


def _ovr_auc(y: np.ndarray, scores: np.ndarray, class_names: Sequence[str]) -> tuple[float, str]:
    """One-vs-rest macro AUC (binary AUC of column 1 for two classes), or NaN and why."""
    from sklearn.metrics import roc_auc_score

    n_classes = scores.shape[1]
    absent = [str(class_names[k]) for k in range(n_classes) if not np.any(y == k)]
    if absent:
        return float("nan"), f"AUC undefined: class(es) {absent} absent from y_true"
    if n_classes == 2:
        return float(roc_auc_score(y == 1, scores[:, 1])), ""
    per_class = [roc_auc_score(y == k, scores[:, k]) for k in range(n_classes)]
    return float(np.mean(per_class)), ""


def classification_metrics(
    y_true: Sequence[int] | np.ndarray,
    prob: np.ndarray,
    class_names: Sequence[str],
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class scores, confusion matrix and ROC-AUC (see module).

    Args:
        y_true: ``int[N]`` true class indices in ``[0, C)``.
        prob: ``float[N, C]`` class scores (probabilities or logits; rows need not sum
            to 1); the prediction is the arg-max of each row.
        class_names: ``C`` class names, in column order.

    Returns:
        ``{"accuracy", "macro_f1", "per_class": {name: {"precision", "recall", "f1",
        "support"}}, "confusion": C×C list (rows = true, columns = predicted), "auc", "n"}``
        plus ``"auc_note"`` when the AUC is NaN. Per-class precision (recall) is NaN for a
        class never predicted (absent from ``y_true``).

    Raises:
        DataError: Empty input, fewer than two classes, shape mismatches, non-finite
            scores or labels that are not class indices.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    scores = np.asarray(prob, dtype=np.float64)
    if scores.ndim != 2:
        raise DataError(f"prob must be a 2-D (N, C) array, got shape {scores.shape}")
    n, n_classes = scores.shape
    if len(class_names) != n_classes:
        raise DataError(f"{len(class_names)} class names given for {n_classes} prob columns")
    if n_classes < 2:
        raise DataError(f"classification needs at least 2 classes, got {n_classes}")
    if n == 0:
        raise DataError("no images to score (prob has 0 rows)")
    if not np.all(np.isfinite(scores)):
        row = int(np.argwhere(~np.isfinite(scores))[0, 0])
        raise DataError(f"prob row {row} is not finite")
    y = _labels(y_true, n, n_classes)
    pred = scores.argmax(axis=1)
    labels = np.arange(n_classes)
    precision, recall, f1, support = precision_recall_fscore_support(
        y, pred, labels=labels, zero_division=np.nan
    )
    per_class = {
        str(name): {
            "precision": float(precision[k]),
            "recall": float(recall[k]),
            "f1": float(f1[k]),
            "support": int(support[k]),
        }
        for k, name in enumerate(class_names)
    }
    auc, note = _ovr_auc(y, scores, class_names)
    out: dict[str, Any] = {
        "accuracy": float(np.mean(pred == y)),
        "macro_f1": float(np.nanmean(f1)),  # sklearn's macro-F1 over present classes
        "per_class": per_class,
        "confusion": confusion_matrix(y, pred, labels=labels).tolist(),
        "auc": auc,
        "n": int(n),
    }
    if note:
        out["auc_note"] = note
    return out


# --- localisation -------------------------------------------------------------------------


def _boxes(name: str, boxes: object) -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return arr.reshape(0, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise DataError(f"{name} must be a (K, 4) array of x1 y1 x2 y2, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{name} row {int(np.argwhere(~np.isfinite(arr))[0, 0])} is not finite")
    bad = np.flatnonzero((arr[:, 2] < arr[:, 0]) | (arr[:, 3] < arr[:, 1]))
    if bad.size:
        raise DataError(f"{name} row {bad[0]} {arr[bad[0]].tolist()} has x2 < x1 or y2 < y1")
    return arr


def _mask(mask: np.ndarray) -> np.ndarray:
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise DataError(f"mask must be a 2-D (H, W) array, got shape {arr.shape}")
    return arr.astype(bool, copy=False)


def _tiles(boxes: object, height: int, width: int) -> np.ndarray:
    """Integer tile boxes clipped to the image, ``int64[T, 4]``."""
    arr = _boxes("tile boxes", boxes)
    if np.any(arr != np.round(arr)):
        raise DataError("tile boxes must hold integer pixel coordinates")
    arr = arr.astype(np.int64)
    clipped = np.empty_like(arr)
    clipped[:, [0, 2]] = np.clip(arr[:, [0, 2]], 0, width)
    clipped[:, [1, 3]] = np.clip(arr[:, [1, 3]], 0, height)
    return clipped


def _selection(selected: object, n_tiles: int) -> np.ndarray:
    sel = np.asarray(selected)
    if sel.shape != (n_tiles,):
        raise DataError(f"selected must have shape ({n_tiles},) (one per tile), got {sel.shape}")
    if sel.dtype != bool and not np.isin(sel, (0, 1)).all():
        raise DataError("selected must be a boolean (or 0/1) array")
    return sel.astype(bool)


def _coverage(tiles: np.ndarray, height: int, width: int) -> np.ndarray:
    """``bool[H, W]`` union of clipped tiles, via a 2-D difference array (O(H·W + T))."""
    diff = np.zeros((height + 1, width + 1), np.int32)
    x1, y1, x2, y2 = tiles.T
    np.add.at(diff, (y1, x1), 1)
    np.add.at(diff, (y1, x2), -1)
    np.add.at(diff, (y2, x1), -1)
    np.add.at(diff, (y2, x2), 1)
    return diff.cumsum(axis=0).cumsum(axis=1)[:height, :width] > 0


def boxes_to_mask(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Rasterise xyxy boxes into a lesion mask.

    A box covers every pixel it overlaps: rows ``floor(y1) .. ceil(y2) - 1`` and columns
    ``floor(x1) .. ceil(x2) - 1`` (so integer boxes cover ``mask[y1:y2, x1:x2]``), clipped
    to the image. Zero-area boxes cover nothing.

    Args:
        boxes: ``float[K, 4]`` boxes ``x1 y1 x2 y2`` in pixels (K may be 0).
        height: Image height H.
        width: Image width W.

    Returns:
        ``bool[H, W]`` mask.

    Raises:
        DataError: Wrong shape, non-finite values, reversed boxes or a negative size.
    """
    if height < 0 or width < 0:
        raise DataError(f"image size must be non-negative, got {height}x{width}")
    arr = _boxes("boxes", boxes)
    mask = np.zeros((height, width), bool)
    for x1, y1, x2, y2 in arr:
        if x2 > x1 and y2 > y1:
            r0, r1 = max(0, math.floor(y1)), min(height, math.ceil(y2))
            c0, c1 = max(0, math.floor(x1)), min(width, math.ceil(x2))
            mask[r0:r1, c0:c1] = True
    return mask


def read_box_file(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a DeepPCB-style box file: one ``x1 y1 x2 y2 [type]`` box per line.

    Fields may be separated by spaces, tabs or commas; blank lines are skipped and the
    optional integer defect type is ignored.

    Args:
        path: The text file.

    Returns:
        ``float64[K, 4]`` boxes (K = 0 for a file without boxes).

    Raises:
        DataError: Missing file, or a line that is not 4 or 5 numbers with x2 >= x1 and
            y2 >= y1 (the message names the file and the 1-based line number).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: box file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read box file ({exc})") from None
    rows: list[list[float]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.replace(",", " ").split()
        if not fields:
            continue
        where = f"{path}, line {number}: {line.strip()!r}"
        if len(fields) not in (4, 5):
            raise DataError(f"{where}: expected 'x1 y1 x2 y2 [type]', got {len(fields)} fields")
        try:
            values = [float(f) for f in fields[:4]]
            if len(fields) == 5:
                int(fields[4])
        except ValueError:
            raise DataError(f"{where}: fields must be numbers (type an integer)") from None
        x1, y1, x2, y2 = values
        if not all(math.isfinite(v) for v in values):
            raise DataError(f"{where}: coordinates must be finite")
        if x2 < x1 or y2 < y1:
            raise DataError(f"{where}: x2 < x1 or y2 < y1")
        rows.append(values)
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


def tile_lesion_fraction(mask: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Fraction of each tile's pixels that are lesion, from an integral image (O(H·W + T)).

    Args:
        mask: ``bool[H, W]`` lesion mask.
        boxes: ``int[T, 4]`` tile boxes ``x1 y1 x2 y2`` (exclusive ends); parts outside the
            image are ignored.

    Returns:
        ``float64[T]`` lesion fraction in [0, 1] of the in-image part of each tile.

    Raises:
        DataError: Bad shapes, non-integer boxes, or a tile with no pixel inside the image.
    """
    m = _mask(mask)
    height, width = m.shape
    tiles = _tiles(boxes, height, width)
    integral = np.zeros((height + 1, width + 1), np.int64)
    integral[1:, 1:] = m.cumsum(axis=0, dtype=np.int64).cumsum(axis=1)
    x1, y1, x2, y2 = tiles.T
    area = (x2 - x1) * (y2 - y1)
    empty = np.flatnonzero(area <= 0)
    if empty.size:
        raise DataError(
            f"tile {empty[0]} {np.asarray(boxes)[empty[0]].tolist()} has no pixel inside "
            f"the {height}x{width} image"
        )
    lesion = integral[y2, x2] - integral[y1, x2] - integral[y2, x1] + integral[y1, x1]
    return lesion / area


def pointing_game(
    tile_scores: Sequence[float] | np.ndarray,
    lesion_fraction: Sequence[float] | np.ndarray,
    min_fraction: float = 0.0,
) -> bool:
    """Pointing game: does the top-scoring tile hold more than `min_fraction` lesion?

    Args:
        tile_scores: ``float[T]`` tile scores (disease probability or importance); ties go
            to the first tile.
        lesion_fraction: ``float[T]`` lesion fraction of each tile (`tile_lesion_fraction`).
        min_fraction: The top tile must have a lesion fraction strictly above this.

    Raises:
        DataError: No tiles, length mismatch or non-finite scores.
    """
    scores = np.asarray(tile_scores, dtype=np.float64)
    frac = np.asarray(lesion_fraction, dtype=np.float64)
    if scores.ndim != 1 or scores.shape != frac.shape:
        raise DataError(
            f"tile_scores {scores.shape} and lesion_fraction {frac.shape} must be 1-D "
            "of equal length"
        )
    if scores.size == 0:
        raise DataError("pointing game needs at least one tile")
    if not np.all(np.isfinite(scores)):
        raise DataError(f"tile score {int(np.flatnonzero(~np.isfinite(scores))[0])} is not finite")
    return bool(frac[int(np.argmax(scores))] > min_fraction)


def _covered(selected: object, mask: np.ndarray, boxes: object) -> tuple[np.ndarray, np.ndarray]:
    m = _mask(mask)
    tiles = _tiles(boxes, *m.shape)
    sel = _selection(selected, tiles.shape[0])
    return m, _coverage(tiles[sel], *m.shape)


def lesion_recall(selected: np.ndarray, mask: np.ndarray, boxes: np.ndarray) -> float:
    """Fraction of lesion pixels inside the union of the selected tiles.

    Args:
        selected: ``bool[T]`` tiles the model looked at.
        mask: ``bool[H, W]`` lesion mask.
        boxes: ``int[T, 4]`` tile boxes ``x1 y1 x2 y2`` (exclusive ends).

    Returns:
        Recall in [0, 1]; NaN when the mask has no lesion pixel.
    """
    m, covered = _covered(selected, mask, boxes)
    total = int(m.sum())
    if total == 0:
        return float("nan")
    return float(np.count_nonzero(m & covered) / total)


def component_recall(selected: np.ndarray, mask: np.ndarray, boxes: np.ndarray) -> float:
    """Fraction of 8-connected lesion components touching at least one selected tile.

    Args:
        selected: ``bool[T]`` tiles the model looked at.
        mask: ``bool[H, W]`` lesion mask.
        boxes: ``int[T, 4]`` tile boxes ``x1 y1 x2 y2`` (exclusive ends).

    Returns:
        Recall in [0, 1]; NaN when the mask has no lesion component.
    """
    import cv2

    m, covered = _covered(selected, mask, boxes)
    if not m.any():
        return float("nan")
    n_labels, labels = cv2.connectedComponents(m.astype(np.uint8), connectivity=8)
    hit = np.unique(labels[m & covered])
    return float(np.count_nonzero(hit) / (n_labels - 1))


def localisation_record(
    tile_scores: np.ndarray,
    selected: np.ndarray,
    mask: np.ndarray,
    boxes: np.ndarray,
    min_fraction: float = 0.0,
) -> dict[str, Any]:
    """Per-image localisation result, the input row of `localisation_summary`.

    Args:
        tile_scores: ``float[T]`` tile scores.
        selected: ``bool[T]`` selected tiles.
        mask: ``bool[H, W]`` lesion mask (all False for a healthy image).
        boxes: ``int[T, 4]`` tile boxes.
        min_fraction: Pointing-game threshold (see `pointing_game`).

    Returns:
        ``{"has_lesion", "pointing_game", "lesion_recall", "component_recall"}``; for an
        image without lesion pixels the pointing game is None and the recalls NaN.
    """
    m = _mask(mask)
    has_lesion = bool(m.any())
    hit = (
        pointing_game(tile_scores, tile_lesion_fraction(m, boxes), min_fraction)
        if has_lesion
        else None
    )
    return {
        "has_lesion": has_lesion,
        "pointing_game": hit,
        "lesion_recall": lesion_recall(selected, m, boxes),
        "component_recall": component_recall(selected, m, boxes),
    }


_RECORD_KEYS = ("pointing_game", "lesion_recall", "component_recall")


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def localisation_summary(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Aggregate per-image localisation results over the images that have lesions.

    Args:
        records: One mapping per image with ``pointing_game`` (bool, None without
            lesions), ``lesion_recall`` and ``component_recall`` (NaN without lesions) and
            optionally ``has_lesion`` (default: whether ``lesion_recall`` is finite), e.g.
            from `localisation_record`.

    Returns:
        ``{"pointing_game", "lesion_recall", "component_recall"}`` means over the diseased
        images, ``"n"`` (all images) and ``"n_diseased"``; the means are NaN with a
        ``"note"`` when no image has a lesion.

    Raises:
        DataError: A record misses a key, or a diseased one has no pointing-game result.
    """
    hits: list[float] = []
    pixel: list[float] = []
    comp: list[float] = []
    for i, rec in enumerate(records):
        missing = [
            k for k in ("pointing_game", "lesion_recall", "component_recall") if k not in rec
        ]
        if missing:
            raise DataError(f"localisation record {i} misses key(s) {missing}")
        recall = float(rec["lesion_recall"])
        if not rec.get("has_lesion", math.isfinite(recall)):
            continue
        if rec["pointing_game"] is None:
            raise DataError(f"localisation record {i} has lesions but no pointing-game result")
        hits.append(float(bool(rec["pointing_game"])))
        pixel.append(recall)
        comp.append(float(rec["component_recall"]))
    out: dict[str, Any] = {
        "pointing_game": _mean(hits),
        "lesion_recall": _mean(pixel),
        "component_recall": _mean(comp),
        "n": len(records),
        "n_diseased": len(hits),
    }
    if not hits:
        out["note"] = "no image with lesion pixels: localisation is undefined"
    return out
