"""MIL run report: full tiling vs glance table, budget curve, confusion matrices and tile
heatmaps, as Markdown + PNG.

Figures are pyplot-free (`new_figure`). Heatmaps are rendered as arrays (`render_heatmap`),
vectorised over pixels and tiles, so they can also be written one by one as PNGs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from fieldvision.errors import DataError
from fieldvision.report.markdown import markdown_table, new_figure, save_figure, write_report

__all__ = [
    "HeatmapExample",
    "plot_budget_curve",
    "plot_confusion",
    "plot_heatmap_grid",
    "render_heatmap",
    "write_heatmap_png",
    "write_mil_report",
]

OUTLINE_COLOUR = np.array([0, 255, 255], np.uint8)  # selected tiles (cyan)
LESION_COLOUR = np.array([255, 255, 255], np.uint8)  # lesion contours (white)
_VARIANT_ORDER = ("full", "glance")


@dataclass(frozen=True, eq=False)
class HeatmapExample:
    """One image, its tiles and their scores, for a heatmap.

    Attributes:
        image: ``uint8[H, W, 3]`` RGB image.
        boxes: ``int[T, 4]`` tile boxes ``x1 y1 x2 y2`` (exclusive ends).
        scores: ``float[T]`` tile scores: expert disease probability or scouter importance.
        selected: ``bool[T]`` tiles the glance model looked at (outlined).
        title: Caption.
        mask: Optional ``bool[H, W]`` lesion mask (its contours are drawn).
        label: Optional true class index, to group the report grid by class.
        value_range: Score range mapped onto the colour scale (scores are clipped to it);
            None scales to this example's min..max (for unbounded importances).
    """

    image: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    selected: np.ndarray
    title: str = ""
    mask: np.ndarray | None = None
    label: int | None = None
    value_range: tuple[float, float] | None = (0.0, 1.0)


def _check_example(ex: HeatmapExample) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    img = np.asarray(ex.image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise DataError(f"heatmap image must be uint8[H, W, 3], got {img.dtype} {img.shape}")
    boxes = np.asarray(ex.boxes)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise DataError(f"heatmap tile boxes must be (T, 4) x1 y1 x2 y2, got {boxes.shape}")
    if not np.issubdtype(boxes.dtype, np.integer) and np.any(boxes != np.round(boxes)):
        raise DataError("heatmap tile boxes must hold integer pixel coordinates")
    boxes = boxes.astype(np.int64)
    scores = np.asarray(ex.scores, dtype=np.float64)
    selected = np.asarray(ex.selected, dtype=bool)
    n = boxes.shape[0]
    if scores.shape != (n,) or selected.shape != (n,):
        raise DataError(
            f"{n} tile boxes need {n} scores and selection flags, got {scores.shape} "
            f"and {selected.shape}"
        )
    if not np.all(np.isfinite(scores)):
        raise DataError(f"heatmap '{ex.title}': tile scores are not all finite")
    if ex.mask is not None and np.asarray(ex.mask).shape != img.shape[:2]:
        raise DataError(f"lesion mask {np.asarray(ex.mask).shape} does not match {img.shape[:2]}")
    reversed_ = np.flatnonzero((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1]))
    if reversed_.size:
        raise DataError(f"tile box {reversed_[0]} {boxes[reversed_[0]].tolist()} is reversed")
    h, w = img.shape[:2]
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, w)  # parts outside the image are dropped
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, h)
    return img, boxes, scores


def _cell_sum(boxes: np.ndarray, weights: np.ndarray, xs: np.ndarray, ys: np.ndarray):
    """``Σ_t weights[t] · [cell in box t]`` on the cell grid cut at `xs` × `ys`.

    `xs` / `ys` are the sorted unique cut coordinates (every box edge among them); cell
    ``(i, j)`` is the pixel block ``[ys[i], ys[i + 1]) × [xs[j], xs[j + 1])``. A 2-D
    difference array on this grid costs O(cells + T) instead of O(H·W).
    """
    diff = np.zeros((ys.size, xs.size), np.float64)
    x1, x2 = np.searchsorted(xs, boxes[:, 0]), np.searchsorted(xs, boxes[:, 2])
    y1, y2 = np.searchsorted(ys, boxes[:, 1]), np.searchsorted(ys, boxes[:, 3])
    np.add.at(diff, (y1, x1), weights)
    np.add.at(diff, (y1, x2), -weights)
    np.add.at(diff, (y2, x1), -weights)
    np.add.at(diff, (y2, x2), weights)
    np.cumsum(diff, axis=0, out=diff)
    np.cumsum(diff, axis=1, out=diff)
    return diff[:-1, :-1]


def _cuts(size: int, *coords: np.ndarray) -> np.ndarray:
    return np.unique(np.concatenate([np.array([0, size], np.int64), *coords]))


def _normalise(scores: np.ndarray, value_range: tuple[float, float] | None) -> np.ndarray:
    if scores.size == 0:
        return scores
    if value_range is None:
        lo, hi = float(scores.min()), float(scores.max())
        if hi <= lo:  # constant importances: no contrast to show
            return np.zeros_like(scores)
    else:
        lo, hi = (float(v) for v in value_range)
        if not hi > lo:
            raise DataError(f"heatmap value_range must have low < high, got {value_range}")
    return np.clip((scores - lo) / (hi - lo), 0.0, 1.0)


def render_heatmap(
    example: HeatmapExample,
    alpha: float = 0.6,
    cmap: str = "inferno",
    outline: int | None = None,
) -> np.ndarray:
    """Tile scores as a translucent colour overlay, selected tiles outlined, lesions contoured.

    Each pixel takes the mean normalised score ``s`` of the tiles covering it and is blended
    with the colour map's colour of ``s`` at opacity ``alpha · s`` (pixels outside every
    tile are left as they are), so higher scores are both brighter and more opaque. The
    borders of selected tiles (cyan, inside the tile) and then lesion contours (white) are
    drawn on top. All work is on the grid cut at the tile edges, expanded to pixels once.

    Args:
        example: The image, tiles and scores.
        alpha: Opacity of the overlay at the top of the score range.
        cmap: Matplotlib colour map name (one with monotone lightness reads best).
        outline: Border width in pixels of selected tiles and lesion contours; default
            ``max(1, min(H, W) // 256)``.

    Returns:
        ``uint8[H, W, 3]`` rendered image.

    Raises:
        DataError: Malformed image, boxes, scores, mask, `alpha` or value range.
    """
    import cv2
    from matplotlib import colormaps

    if not 0.0 <= alpha <= 1.0:
        raise DataError(f"heatmap alpha must lie in [0, 1], got {alpha}")
    img, boxes, scores = _check_example(example)
    h, w = img.shape[:2]
    if h == 0 or w == 0:
        return img.copy()
    width = max(1, min(h, w) // 256) if outline is None else max(1, int(outline))
    s = _normalise(scores, example.value_range)
    sel = boxes[np.asarray(example.selected, dtype=bool)]
    inner = sel + np.array([width, width, -width, -width])  # interiors of selected tiles
    inner[:, [0, 2]] = np.clip(inner[:, [0, 2]], 0, w)
    inner[:, [1, 3]] = np.clip(inner[:, [1, 3]], 0, h)
    inner[:, 2] = np.maximum(inner[:, 2], inner[:, 0])
    inner[:, 3] = np.maximum(inner[:, 3], inner[:, 1])
    xs = _cuts(w, boxes[:, 0], boxes[:, 2], inner[:, 0], inner[:, 2])
    ys = _cuts(h, boxes[:, 1], boxes[:, 3], inner[:, 1], inner[:, 3])
    count = _cell_sum(boxes, np.ones(len(s)), xs, ys)
    level = _cell_sum(boxes, s, xs, ys) / np.maximum(count, 1.0)  # mean score per cell
    opacity = np.where(count > 0.5, alpha * level, 0.0)
    lut = (colormaps[cmap](np.linspace(0.0, 1.0, 256))[:, :3] * 255.0).round().astype(np.uint8)
    colour = lut[np.rint(level * 255.0).astype(np.intp)]  # (cells_y, cells_x, 3)
    # A cell lies on some selected tile's border ring iff it is in more tiles than interiors.
    signs = np.concatenate([np.ones(len(sel)), -np.ones(len(inner))])
    ring = _cell_sum(np.concatenate([sel, inner]), signs, xs, ys) > 0.5
    opacity[ring] = 1.0
    colour[ring] = OUTLINE_COLOUR
    dy, dx = np.diff(ys), np.diff(xs)
    opacity_px = np.repeat(np.repeat(opacity.astype(np.float32), dy, 0), dx, 1)  # (H, W)
    colour_px = np.repeat(np.repeat(colour, dy, 0), dx, 1)  # (H, W, 3)
    out = cv2.blendLinear(np.ascontiguousarray(img), colour_px, 1.0 - opacity_px, opacity_px)
    if example.mask is not None:
        mask = np.ascontiguousarray(np.asarray(example.mask, dtype=np.uint8))
        contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, LESION_COLOUR.tolist(), width)
    return out


def write_heatmap_png(path: str | os.PathLike[str], example: HeatmapExample) -> Path:
    """Render `example` (`render_heatmap`) and write it atomically as a PNG."""
    from fieldvision.data.images import write_image

    return write_image(path, render_heatmap(example))


def _variants(results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    known = [v for v in _VARIANT_ORDER if v in results]
    return known + [v for v in results if v not in known]


def _get(metrics: Mapping[str, Any], key: str) -> Any:
    value = metrics.get(key, float("nan"))
    return float("nan") if value is None else value


_TABLE_ROWS = (
    ("accuracy", lambda m: _get(m, "accuracy")),
    ("macro-F1", lambda m: _get(m, "macro_f1")),
    ("ROC-AUC", lambda m: _get(m, "auc")),
    ("tiles / image", lambda m: _get(m, "tiles_per_image")),
    ("tile fraction", lambda m: _get(m, "tile_fraction")),
    ("ms / image", lambda m: _get(m, "ms_per_image")),
    ("GFLOPs / image", lambda m: _get(m, "gflops_per_image")),
    ("pointing game", lambda m: _get(m.get("localisation") or {}, "pointing_game")),
    ("lesion pixel recall", lambda m: _get(m.get("localisation") or {}, "lesion_recall")),
    ("lesion component recall", lambda m: _get(m.get("localisation") or {}, "component_recall")),
)


def _comparison_rows(results: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    names = _variants(results)
    rows = []
    for label, getter in _TABLE_ROWS:
        row: dict[str, Any] = {"metric": label}
        for name in names:
            value = getter(results[name])
            row[name] = float(value) if isinstance(value, int | float | np.number) else value
        rows.append(row)
    return rows


def _per_class_rows(
    results: Mapping[str, Mapping[str, Any]], class_names: Sequence[str]
) -> list[dict[str, Any]]:
    names = _variants(results)
    rows = []
    for cls in class_names:
        row: dict[str, Any] = {"class": cls}
        support = None
        for name in names:
            per = (results[name].get("per_class") or {}).get(str(cls), {})
            row[f"F1 {name}"] = float(per.get("f1", float("nan")))
            support = per.get("support", support)
        row["support"] = "?" if support is None else int(support)
        rows.append(row)
    return rows


def plot_budget_curve(
    curve: Sequence[Mapping[str, Any]], full: Mapping[str, Any] | None = None
) -> Figure:
    """Macro-F1 and ROC-AUC against the fraction of tiles the glance model looks at.

    Args:
        curve: Rows ``{"budget", "tile_fraction", "macro_f1", "auc", ...}``.
        full: Full-tiling metrics; their macro-F1 and AUC are drawn as dashed lines.
    """
    rows = sorted(curve, key=lambda r: float(r["tile_fraction"]))
    x = np.array([float(r["tile_fraction"]) for r in rows])
    fig = new_figure(6.0, 3.8)
    ax = fig.add_subplot()
    for key, label, colour in (("macro_f1", "macro-F1", "#4477aa"), ("auc", "ROC-AUC", "#cc6677")):
        y = np.array([_get(r, key) for r in rows], dtype=float)
        ax.plot(x, y, marker="o", ms=4, color=colour, label=f"glance {label}")
        if full is not None and np.isfinite(float(_get(full, key))):
            ax.axhline(float(full[key]), color=colour, ls="--", lw=1, label=f"full tiling {label}")
    for r, xi in zip(rows, x, strict=True):
        y = float(_get(r, "macro_f1"))
        if np.isfinite(y):
            ax.annotate(str(r.get("budget", "")), (xi, y), textcoords="offset points",
                        xytext=(0, 6), ha="center", fontsize=7)  # fmt: skip
    ax.set_xlabel("fraction of tiles processed")
    ax.set_ylabel("score")
    ax.set_xlim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def plot_confusion(confusion: Sequence[Sequence[int]], class_names: Sequence[str], title: str):
    """Confusion matrix (rows = true, columns = predicted), coloured by row fraction."""
    counts = np.asarray(confusion, dtype=np.int64)
    n = len(class_names)
    if counts.shape != (n, n):
        raise DataError(f"confusion matrix {counts.shape} does not match {n} class names")
    rows = counts.sum(axis=1, keepdims=True)
    frac = counts / np.maximum(rows, 1)
    side = max(3.5, 0.6 * n + 2.0)
    fig = new_figure(side + 0.8, side)
    ax = fig.add_subplot()
    im = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if frac[i, j] > 0.5 else "black")  # fmt: skip
    ax.set_xticks(range(n), [str(c) for c in class_names], rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), [str(c) for c in class_names], fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="fraction of true class")
    return fig


def _grid_rows(
    examples: Sequence[HeatmapExample], class_names: Sequence[str], per_class: int
) -> list[tuple[str, list[HeatmapExample]]]:
    if all(e.label is None for e in examples):
        return [("", list(examples[i : i + per_class])) for i in range(0, len(examples), per_class)]
    rows = []
    for k, name in enumerate(class_names):
        picked = [e for e in examples if e.label == k][:per_class]
        if picked:
            rows.append((str(name), picked))
    unlabelled = [e for e in examples if e.label is None or not 0 <= e.label < len(class_names)]
    if unlabelled:
        rows.append(("other", unlabelled[:per_class]))
    return rows


def plot_heatmap_grid(
    examples: Sequence[HeatmapExample], class_names: Sequence[str], per_class: int = 3
) -> Figure:
    """A grid of rendered heatmaps: one row per true class, up to `per_class` columns
    (in the given order when no example has a label)."""
    rows = _grid_rows(examples, class_names, per_class)
    n_rows = max(1, len(rows))
    n_cols = max([len(r[1]) for r in rows] + [1])
    fig = new_figure(3.0 * n_cols, 3.0 * n_rows)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for r, (name, picked) in enumerate(rows):
        for c, ex in enumerate(picked):
            axes[r, c].imshow(render_heatmap(ex))
            caption = f"{name}: {ex.title}" if name and ex.title else (ex.title or name)
            axes[r, c].set_title(caption, fontsize=8)
    return fig


def write_mil_report(
    out: str | os.PathLike[str],
    results: Mapping[str, Mapping[str, Any]],
    curve: Sequence[Mapping[str, Any]],
    examples: Sequence[HeatmapExample],
    class_names: Sequence[str],
    examples_per_class: int = 3,
) -> Path:
    """Write ``report.md`` and its PNGs into the run directory `out`.

    Args:
        out: Run directory.
        results: ``{"full": metrics, "glance": metrics}`` (either may be missing; other
            variants get a column too). Each is a `classification_metrics` dict plus
            ``tiles_per_image``, ``tile_fraction``, ``ms_per_image``, ``gflops_per_image``
            and optionally ``localisation`` (`localisation_summary`).
        curve: Budget sweep rows ``{"budget", "tile_fraction", "macro_f1", "auc",
            "ms_per_image"}``.
        examples: Heatmap examples (grouped by ``label`` when given).
        class_names: Class names in index order.
        examples_per_class: Heatmap columns per class row.

    Returns:
        Path of ``report.md``.
    """
    out = Path(out)
    names = _variants(results)
    sections: list[tuple[str, str]] = []
    intro = (
        "**full** classifies every tile; **glance** lets a cheap scouter pick tiles and runs "
        "the expert on those only. Costs are per image at inference. Localisation is weak "
        "supervision, *measured* (never trained) from lesion masks or boxes: the pointing "
        "game asks whether the top-scoring tile contains lesion, lesion recall is the "
        "fraction of lesion pixels (components) inside the tiles looked at.\n\n"
    )
    notes = [f"> {n}: {results[n]['auc_note']}" for n in names if results[n].get("auc_note")]
    counts = ", ".join(f"{n}: {results[n].get('n', '?')} images" for n in names)
    body = intro + markdown_table(_comparison_rows(results)) + f"\n{counts}\n"
    if notes:
        body += "\n" + "\n".join(notes) + "\n"
    sections.append(("Full tiling vs glance", body))
    if class_names and names:
        sections.append(("Per-class F1", markdown_table(_per_class_rows(results, class_names))))
    if curve:
        save_figure(plot_budget_curve(curve, results.get("full")), out / "budget_curve.png")
        columns = ["budget", "tile_fraction", "macro_f1", "auc", "ms_per_image"]
        table = markdown_table([{c: r.get(c, float("nan")) for c in columns} for r in curve])
        sections.append(
            ("Budget curve", table + "\n![budget curve](budget_curve.png)\n"),
        )
    figures = []
    for name in names:
        confusion = results[name].get("confusion")
        if confusion is not None:
            png = f"confusion_{name}.png"
            save_figure(plot_confusion(confusion, class_names, f"confusion ({name})"), out / png)
            figures.append(f"![confusion {name}]({png})")
    if figures:
        text = "Rows = true class, columns = predicted; colour = fraction of the true class.\n\n"
        sections.append(("Confusion matrices", text + "\n".join(figures) + "\n"))
    if examples:
        fig = plot_heatmap_grid(examples, class_names, examples_per_class)
        save_figure(fig, out / "heatmaps.png")
        sections.append(
            (
                "Tile heatmaps",
                "Tile scores (brighter, more opaque = higher), tiles the glance model "
                "selected outlined in cyan, lesion contours in white.\n\n"
                "![heatmaps](heatmaps.png)\n",
            )
        )
    return write_report(out / "report.md", "MIL report", sections)
