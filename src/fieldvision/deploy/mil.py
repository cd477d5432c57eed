"""MIL glance-and-focus (or full tiling) prediction with ONNX Runtime, same CSV files.

As `fieldvision.pipelines.mil.predict` with its `Predictor`, per image:

1. decode (RGB, the run's pixel bound), scale to [0, 1], resize to ``data.input_size``
   when set (antialiased bilinear, `fieldvision.deploy.images.resize`), check the grid
   cells are at least ``data.min_tile_px``; tile boxes of the ``data.grid`` (`tile_boxes`);
2. glance: each fold's scouter scores the tiles on the downscaled view; the fold mean goes
   to `select_tiles` (budget, ``min_tiles``, entropy stop rule); full: every tile;
3. only the selected tiles are cut and resized to the expert's tile size (`cut_tiles`);
   each fold's expert (its distilled student in glance mode when the run has students)
   scores them in one ONNX call: tile logits, features and, with attention pooling, the
   per-tile attention scores;
4. pooling over the selected tiles in NumPy (`pool`): log-odds against the negative class
   when the expert has one, then max / top-k mean / masked softmax attention; bag
   probabilities are the fold mean of each fold's softmax.

``preds.csv`` (``image, label, prob_<class>..., tiles, ms``) and ``tiles.csv`` beside it have
the torch runtime's columns; ``ms`` is the time from decoded pixels to probabilities.
`tile_boxes` and `select_tiles` are NumPy twins of `fieldvision.ops.glance` (that module
imports torch); the tests hold them equal. No torch import.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fieldvision.console import progress_iter
from fieldvision.data.images import read_rgb
from fieldvision.data.mil.readers import read_mil_data
from fieldvision.data.mil.samples import MILSamples
from fieldvision.deploy.images import resize, to_chw
from fieldvision.deploy.session import Deployment, open_deployment
from fieldvision.errors import ConfigError, DataError, RunError
from fieldvision.schemas.mil import prediction_tables, write_predictions

__all__ = [
    "binary_entropy",
    "cut_tiles",
    "pool",
    "predict",
    "select_tiles",
    "tile_boxes",
    "unseen_evidence",
]


# --------------------------------------------------------------------------- glance helpers


def tile_boxes(height: int, width: int, rows: int, cols: int, overlap: float = 0.0) -> np.ndarray:
    """int64[T, 4] half-open ``(x1, y1, x2, y2)`` boxes of a row-major ``rows × cols`` grid.

    Boundaries ``round(i · n / parts)`` (half up); with `overlap` each tile grows by
    ``round(overlap · its size)`` on every side, clipped to the image (as
    `fieldvision.ops.glance.tile_boxes`).

    Raises:
        ValueError: Empty image, a grid finer than the pixels, or a negative overlap.
    """
    height, width, rows, cols = int(height), int(width), int(rows), int(cols)
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    if not (1 <= rows <= height and 1 <= cols <= width):
        raise ValueError(f"a {rows}x{cols} tile grid does not fit a {height}x{width} image")
    if not (math.isfinite(overlap) and overlap >= 0):
        raise ValueError(f"overlap must be a finite number >= 0, got {overlap}")

    def edges(n: int, parts: int) -> tuple[np.ndarray, np.ndarray]:
        e = (2 * np.arange(parts + 1, dtype=np.int64) * n + parts) // (2 * parts)
        lo, hi = e[:-1], e[1:]
        if overlap > 0:
            pad = np.floor(overlap * (hi - lo) + 0.5).astype(np.int64)
            lo, hi = np.maximum(lo - pad, 0), np.minimum(hi + pad, n)
        return lo, hi

    x1, x2 = edges(width, cols)
    y1, y2 = edges(height, rows)
    boxes = np.empty((rows, cols, 4), np.int64)
    boxes[..., 0], boxes[..., 2] = x1[None, :], x2[None, :]
    boxes[..., 1], boxes[..., 3] = y1[:, None], y2[:, None]
    return boxes.reshape(rows * cols, 4)


def binary_entropy(p: np.ndarray) -> np.ndarray:
    """Bits of a Bernoulli(p), ``0 log 0 = 0``: 0 at p ∈ {0, 1}, 1 at p = 0.5.

    Computed in float64 for float64 input (the stop rule's), else in float32.
    """
    dtype = np.float64 if np.asarray(p).dtype == np.float64 else np.float32
    p = np.clip(np.asarray(p, dtype), 0.0, 1.0)
    q = dtype(1.0) - p
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log(p), dtype(0.0))
        qlogq = np.where(q > 0, q * np.log(q), dtype(0.0))
    return (-(plogp + qlogq) / dtype(math.log(2.0))).astype(dtype)


def unseen_evidence(ranked: np.ndarray) -> np.ndarray:
    """float64[T]: ``1 − Π (1 − p)`` over ranks ``k+1 … T`` after looking at ``k = 1 … T``
    tiles, from one image's probabilities sorted in decreasing order
    (`fieldvision.ops.glance.unseen_evidence`)."""
    p = np.clip(np.asarray(ranked, np.float64), 0.0, 1.0 - 1e-12)
    suffix = np.cumsum(np.log1p(-p)[::-1])[::-1]  # log P(ranks j..T all clean)
    return -np.expm1(np.append(suffix[1:], 0.0))


def select_tiles(
    scores: np.ndarray, budget: float, min_tiles: int = 1, stop_entropy: float = 0.5
) -> np.ndarray:
    """bool[T]: the tiles the expert looks at, from one image's scouter probabilities.

    The rule of `fieldvision.ops.glance.select_tiles`: at most ``K_max = min(T,
    max(min_tiles, ceil(budget · T)))`` tiles, ranked by score (ties by index), the first
    ``min_tiles`` always, then on while the probability that some unseen tile holds
    evidence, ``1 − Π (1 − p)`` over the ranks not yet looked at, is ≥ 0.5 or has a binary
    entropy ≥ `stop_entropy` bits (computed in float64, as there).

    Raises:
        ConfigError: `budget` not in (0, 1], ``min_tiles < 1`` or a negative `stop_entropy`.
    """
    if not 0.0 < budget <= 1.0:
        raise ConfigError(f"glance budget must be in (0, 1], got {budget}")
    if int(min_tiles) < 1:
        raise ConfigError(f"min_tiles must be >= 1, got {min_tiles}")
    if not stop_entropy >= 0.0:
        raise ConfigError(f"stop_entropy must be >= 0 (bits), got {stop_entropy}")
    s = np.asarray(scores, np.float32).reshape(-1)
    t = s.shape[0]
    k_min = min(int(min_tiles), t)
    k_max = min(t, max(k_min, math.ceil(round(budget * t, 9))))
    order = np.argsort(-s, kind="stable")  # descending, equal scores by tile index
    left = unseen_evidence(s[order])  # after looking at k = 1..T tiles
    go_on = (left >= 0.5) | (binary_entropy(left) >= stop_entropy)
    keep = np.append(True, go_on[:-1])  # rank j is looked at when the glance went on after j
    keep[:k_min] = True
    keep = np.cumprod(keep).astype(bool)  # False from the first stop on
    keep[k_max:] = False
    mask = np.zeros(t, bool)
    mask[order] = keep
    return mask


def cut_tiles(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """float32[K, 3, size, size]: each box of ``float32[3, H, W]`` resized (antialiased)."""
    if len(boxes) == 0:
        return np.zeros((0, image.shape[0], size, size), np.float32)
    return np.stack(
        [resize(image[:, y1:y2, x1:x2], (size, size)) for x1, y1, x2, y2 in boxes.tolist()]
    )


def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = np.asarray(x, np.float32)
    z = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return z / z.sum(axis=axis, keepdims=True)


def pool(
    tile_logits: np.ndarray,
    mask: np.ndarray,
    pooling: str,
    negative: int | None,
    topk: int = 2,
    attention: np.ndarray | None = None,
) -> np.ndarray:
    """float32[C] bag logits of one bag, as `MILExpert.pool` (with a tile mask).

    Args:
        tile_logits: float32[T, C] (any value where the mask is False).
        mask: bool[T] selected tiles (at least one).
        pooling: ``max``, ``topk``, ``attention`` or ``gated_attention``.
        negative: The expert's negative class (pooling runs on log-odds against it).
        topk: Tiles averaged per class for ``topk``.
        attention: float32[T, C] per-tile attention scores (attention poolings).
    """
    z = np.asarray(tile_logits, np.float32)
    if negative is not None:
        z = z - z[:, negative : negative + 1]  # (T, C) log-odds; the negative column is 0
    sel = np.asarray(mask, bool)
    if pooling in ("attention", "gated_attention"):
        if attention is None:
            raise RunError("attention pooling needs the expert's tile_attention output")
        scores = np.where(sel[:, None], np.asarray(attention, np.float32), -np.inf)
        return (_softmax(scores, axis=0) * np.where(sel[:, None], z, 0)).sum(0)
    masked = np.where(sel[:, None], z, -np.inf)  # (T, C)
    if pooling == "topk":
        k = min(int(topk), int(sel.sum()))
        order = np.argsort(-masked, axis=0, kind="stable")[:k]  # (k, C)
        return np.take_along_axis(z, order, axis=0).mean(0).astype(np.float32)
    return masked.max(axis=0).astype(np.float32)  # max pooling


# --------------------------------------------------------------------------- the run


@dataclass
class _Expert:
    session: Any
    pooling: str
    topk: int
    negative: int | None
    outputs: list[str]


@dataclass
class _Result:
    prob: np.ndarray  # (C,)
    scouter: np.ndarray  # (T,) NaN in full mode
    selected: np.ndarray  # (T,) bool
    ms: float
    boxes: np.ndarray  # (T, 4)
    tile_logits: np.ndarray  # (F, T, C), zeros where not run
    evidence: np.ndarray  # (T,) NaN where not run


def _expert(dep: Deployment, source: str) -> _Expert:
    entry = dep.entry(source)
    cfg, dims = entry.get("config", {}), entry.get("dims", {})
    pooling = str(cfg.get("pooling", "max"))
    if pooling in ("attention", "gated_attention") and "tile_attention" not in entry["outputs"]:
        raise RunError(
            f"{dep.folder}: {entry['file']} has no tile_attention output (an export older "
            "than the --runtime switch)",
            hint=f"re-export the run: fieldvision export --run {dep.run} --out {dep.folder}",
        )
    negative = dims.get("negative_class")
    return _Expert(
        dep.session(source),
        pooling,
        int(cfg.get("topk", 2)),
        None if negative is None else int(negative),
        list(entry["outputs"]),
    )


def _splits(run: Path) -> list[str]:
    try:
        metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        metrics = {}
    splits = (metrics.get("fit") or {}).get("splits") or []
    if not splits:
        raise RunError(f"{run}: metrics.json lists no trained splits", hint="retrain")
    return [str(s) for s in splits]


def _classes(run: Path) -> tuple[tuple[str, ...], int | None]:
    try:
        info = json.loads((run / "classes.json").read_text(encoding="utf-8"))
        classes = tuple(info["classes"])
    except (OSError, ValueError, KeyError, TypeError):
        raise RunError(f"{run}: missing or unreadable classes.json") from None
    negative = classes.index(info["negative"]) if info.get("negative") in classes else None
    return classes, negative


class _Images:
    """`BagStore.load_image` / `scout_view` / `boxes_for` in NumPy."""

    def __init__(self, samples: MILSamples, dep: Deployment) -> None:
        s = dep.setting
        self.samples = samples
        self.grid = tuple(int(v) for v in s("data.grid"))
        self.overlap = float(s("data.overlap"))
        size = s("data.input_size")
        self.input_size = None if size is None else tuple(int(v) for v in size)
        self.min_tile_px = int(s("data.min_tile_px"))
        self.tile_size = int(s("expert.tile_size"))
        self.scout_size = tuple(int(v) for v in s("scouter.input_size"))
        self.read = functools.partial(read_rgb, max_pixels=int(s("data.max_image_pixels")))

    def load(self, i: int) -> np.ndarray:
        try:
            rgb = self.read(self.samples.paths[i])
        except DataError as exc:
            raise DataError(f"{self.samples.origins[i]}: {exc.message}", exc.hint) from None
        x = to_chw(rgb)
        if self.input_size is not None:
            x = resize(x, self.input_size)
        h, w = x.shape[-2:]
        rows, cols = self.grid
        if h / rows < self.min_tile_px or w / cols < self.min_tile_px:
            raise DataError(
                f"{self.samples.origins[i]}: image {w}×{h} is too small for a {rows}×{cols} "
                f"grid (cells under {self.min_tile_px} px)",
                hint="use a coarser data.grid, or larger images",
            )
        return x

    def boxes(self, h: int, w: int) -> np.ndarray:
        return tile_boxes(h, w, *self.grid, self.overlap)


def _score(experts: Sequence[_Expert], tiles: np.ndarray, mask: np.ndarray) -> tuple:
    """Fold-mean probabilities float32[C] and the fold tile logits float32[F, T, C]."""
    probs, logits = [], []
    for ex in experts:
        out = dict(zip(ex.outputs, ex.session.run(ex.outputs, {"tiles": tiles}), strict=True))
        lg = out["tile_logits"]  # (K, C)
        full = np.zeros((mask.shape[0], lg.shape[1]), np.float32)
        full[mask] = lg
        att = None
        if "tile_attention" in out:
            att = np.zeros_like(full)
            att[mask] = out["tile_attention"]
        bag = pool(full, mask, ex.pooling, ex.negative, ex.topk, att)
        probs.append(_softmax(bag))
        logits.append(full)
    return np.mean(probs, axis=0).astype(np.float32), np.stack(logits)


def _evidence(logits: np.ndarray, negative: int | None) -> np.ndarray:
    """`tile_evidence` of float32[F, K, C] logits, fold-averaged: float32[K]."""
    prob = _softmax(logits)
    ev = prob.max(-1) if negative is None else 1.0 - prob[..., negative]
    return ev.mean(0).astype(np.float32)


def _run(
    images: _Images,
    experts: Sequence[_Expert],
    scouters: Sequence[Any],
    negative: int | None,
    mode: str,
    glance: dict[str, Any],
    progress: bool,
) -> list[_Result]:
    results = []
    n = len(images.samples)
    for i in progress_iter(range(n), f"{mode} inference", n, enabled=progress):
        image = images.load(i)  # decoded pixels: not timed (same for both modes)
        h, w = image.shape[-2:]
        boxes = images.boxes(h, w)
        t = len(boxes)
        start = time.perf_counter()
        scores = np.full(t, np.nan, np.float32)
        if mode == "glance":
            view = resize(image, images.scout_size)[None]  # (1, 3, h, w)
            maps = [s.run(["importance"], {"image": view})[0].reshape(-1) for s in scouters]
            scores = np.mean(maps, axis=0).astype(np.float32)
            mask = select_tiles(
                scores, float(glance["budget"]), int(glance["min_tiles"]),
                float(glance["stop_entropy"]),
            )  # fmt: skip
        else:
            mask = np.ones(t, bool)
        tiles = cut_tiles(image, boxes[mask], images.tile_size)  # only the selected tiles
        prob, logits = _score(experts, tiles, mask)
        ms = (time.perf_counter() - start) * 1000.0
        evidence = np.full(t, np.nan, np.float32)
        evidence[mask] = _evidence(logits[:, mask], negative)
        results.append(_Result(prob, scores, mask, ms, boxes, logits, evidence))
    return results


def predict(
    run: str | os.PathLike[str],
    images: str | os.PathLike[str],
    out: str | os.PathLike[str],
    mode: str = "glance",
    budget: float | None = None,
    heatmaps: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
    progress: bool = True,
    runtime: str = "onnx",
    onnx: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """``fieldvision mil predict --runtime onnx|onnx-int8``: ``out`` and ``tiles.csv``.

    Args:
        run: A finished MIL run.
        images: Image folder (flat, per class, with ``labels.csv``) or CSV.
        out: ``preds.csv`` to write (``tiles.csv`` goes beside it).
        mode: ``glance`` or ``full``.
        budget: Glance budget (default: the run's ``glance.budget``).
        heatmaps: Folder for one PNG per image, or None.
        overrides: ``--set`` values of runtime fields.
        progress: Progress bar on stderr.
        runtime: ``onnx`` (FP32) or ``onnx-int8``.
        onnx: The export folder (default ``RUN/export``).

    Returns:
        The predictions table (one row per image).

    Raises:
        RunError / DataError / ConfigError: Bad run, export or images; nothing is written.
    """
    if mode not in ("full", "glance"):
        raise ConfigError(f"--mode {mode!r}: choose glance or full")
    sets = list(overrides) + ([f"glance.budget={budget}"] if budget is not None else [])
    dep = open_deployment(run, "mil", runtime, onnx, sets)
    classes, negative = _classes(dep.run)
    splits = _splits(dep.run)
    students = all((dep.run / "student" / s / "model.safetensors").is_file() for s in splits)
    role = "student" if mode == "glance" and students else "expert"
    experts = [_expert(dep, f"{role}/{s}") for s in splits]
    scouters = [dep.session(f"scouter/{s}") for s in splits] if mode == "glance" else []
    s = dep.setting
    samples = read_mil_data(
        images,
        image_column=s("data.image_column"),
        label_column=s("data.label_column"),
        group_column=s("data.group_column"),
        mask_column=s("data.mask_column"),
        boxes_column=s("data.boxes_column"),
    )
    reader = _Images(samples, dep)
    results = _run(reader, experts, scouters, negative, mode, s("glance"), progress)
    cols_n = reader.grid[1]
    rows, tile_rows = prediction_tables(samples.names, results, classes, cols_n)
    table = write_predictions(out, rows, tile_rows)
    if heatmaps is not None:
        from fieldvision.report.mil import HeatmapExample, write_heatmap_png

        for i, r in enumerate(results):
            scores = np.nan_to_num(r.evidence if mode == "full" else r.scouter, nan=0.0)
            pixels = (reader.load(i).transpose(1, 2, 0) * 255).round().astype(np.uint8)
            ex = HeatmapExample(pixels, r.boxes, scores, r.selected,
                                f"{samples.names[i]}: {rows[i]['label']}")  # fmt: skip
            stem = Path(samples.names[i]).with_suffix("").as_posix().replace("/", "__")
            write_heatmap_png(Path(heatmaps) / f"{stem}.png", ex)
    return table
