"""Re-identification report: CMC curves, post-processing table, per-identity AP, a ranked
retrieval grid and the background-reliance diagnostic, as Markdown + PNG.

Figures are pyplot-free (`new_figure`), so this runs in workers and CI without a display.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from fieldvision.report.markdown import markdown_table, new_figure, save_figure, write_report

__all__ = [
    "RetrievalExample",
    "plot_cmc",
    "plot_per_identity_ap",
    "plot_retrieval_grid",
    "plot_training_curve",
    "write_reid_report",
]

_GREEN = np.array([40, 170, 60], np.uint8)
_RED = np.array([210, 40, 40], np.uint8)


@dataclass(frozen=True)
class RetrievalExample:
    """One query and its top-ranked gallery images for the retrieval grid.

    Attributes:
        query: uint8[H, W, 3] query image.
        gallery: uint8[H, W, 3] images, best first.
        correct: Whether each gallery image has the query's identity.
        title: Caption of the query (e.g. its identity).
    """

    query: np.ndarray
    gallery: Sequence[np.ndarray]
    correct: Sequence[bool]
    title: str = ""


def plot_cmc(curves: Mapping[str, Sequence[float]], title: str = "CMC") -> Figure:
    """CMC curves (rank 1..R) of several variants (e.g. raw, +QE, +re-rank)."""
    fig = new_figure(5.5, 3.8)
    ax = fig.add_subplot()
    for name, cmc in curves.items():
        cmc = np.asarray(cmc, dtype=float)
        ax.plot(np.arange(1, len(cmc) + 1), cmc, marker="o", ms=3, label=name)
    ax.set_xlabel("rank")
    ax.set_ylabel("matching rate")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(loc="lower right")
    return fig


def plot_per_identity_ap(ap: Mapping[str, float], title: str = "AP per identity") -> Figure:
    """Bar plot of the mean AP of each identity's queries, sorted ascending."""
    items = sorted(ap.items(), key=lambda kv: kv[1])
    fig = new_figure(max(5.0, 0.22 * len(items) + 1.5), 3.8)
    ax = fig.add_subplot()
    if items:
        names, values = zip(*items, strict=True)
        ax.bar(range(len(values)), values, color="#4477aa")
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
        ax.axhline(float(np.mean(values)), color="k", lw=1, ls="--", label="mean")
        ax.legend(loc="upper left")
    ax.set_ylim(0, 1.0)
    ax.set_ylabel("AP")
    ax.set_title(title)
    return fig


def _bordered(img: np.ndarray, colour: np.ndarray | None, width: int) -> np.ndarray:
    if colour is None:
        return img
    out = np.empty((img.shape[0] + 2 * width, img.shape[1] + 2 * width, 3), np.uint8)
    out[:] = colour
    out[width:-width, width:-width] = img[..., :3]
    return out


def plot_retrieval_grid(examples: Sequence[RetrievalExample], border: int = 4) -> Figure:
    """One row per query: the query, then its top gallery images framed green (same
    identity) or red (different identity)."""
    n_rows = max(1, len(examples))
    n_cols = 1 + max((len(e.gallery) for e in examples), default=0)
    fig = new_figure(1.3 * n_cols, 1.4 * n_rows)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for r, ex in enumerate(examples):
        axes[r, 0].imshow(_bordered(ex.query, np.array([90, 90, 90], np.uint8), border))
        axes[r, 0].set_title(ex.title or "query", fontsize=7)
        for c, (img, ok) in enumerate(zip(ex.gallery, ex.correct, strict=True)):
            axes[r, c + 1].imshow(_bordered(img, _GREEN if ok else _RED, border))
            axes[r, c + 1].set_title(f"#{c + 1}", fontsize=7)
    return fig


def plot_training_curve(metrics_csv: str | os.PathLike[str]) -> Figure | None:
    """Validation mAP / rank-1 and training loss per epoch from Lightning's metrics.csv."""
    import pandas as pd

    path = Path(metrics_csv)
    if not path.is_file():
        return None
    frame = pd.read_csv(path)
    if "epoch" not in frame.columns:
        return None
    fig = new_figure(6.0, 3.6)
    ax = fig.add_subplot()
    plotted = False
    for col, label in (("val_map", "val mAP"), ("val_rank1", "val rank-1")):
        if col in frame.columns:
            s = frame[["epoch", col]].dropna()
            if len(s):
                ax.plot(s["epoch"] + 1, s[col], marker="o", ms=3, label=label)
                plotted = True
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation score")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    if "train_loss_epoch" in frame.columns:
        s = frame[["epoch", "train_loss_epoch"]].dropna()
        if len(s):
            ax2 = ax.twinx()
            ax2.plot(
                s["epoch"] + 1, s["train_loss_epoch"], color="0.5", ls="--", label="train loss"
            )
            ax2.set_ylabel("train loss")
            plotted = True
    if not plotted:
        return None
    ax.legend(loc="upper left")
    return fig


def _variant_rows(variants: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for name, m in variants.items():
        rows.append(
            {
                "variant": name,
                "mAP": m.get("mAP", float("nan")),
                "rank-1": m.get("rank1", float("nan")),
                "rank-5": m.get("rank5", float("nan")),
                "rank-10": m.get("rank10", float("nan")),
                "mINP": m.get("mINP", float("nan")),
                "id-balanced mAP": m.get("identity_balanced_mAP", float("nan")),
                "pair ROC-AUC": m.get("pair_roc_auc", float("nan")),
            }
        )
    return rows


def write_reid_report(
    out_dir: str | os.PathLike[str],
    results: Mapping[str, Any],
    cmc_curves: Mapping[str, Mapping[str, Sequence[float]]],
    per_identity: Mapping[str, float],
    examples: Sequence[RetrievalExample],
    metrics_csv: str | os.PathLike[str] | None = None,
) -> Path:
    """Write ``report.md`` and its PNGs into `out_dir`.

    Args:
        out_dir: Run directory.
        results: The evaluation results: ``{"protocol", "sets": {set: {"variants": {...},
            "n_queries", "n_gallery", "warning"}}, "background": {...} or None}``.
        cmc_curves: ``{set: {variant: cmc}}``.
        per_identity: Mean AP per identity (raw embeddings, first set).
        examples: Retrieval-grid rows.
        metrics_csv: Lightning log for the training curve.

    Returns:
        Path of ``report.md``.
    """
    out = Path(out_dir)
    sections: list[tuple[str, str]] = []
    intro = (
        f"Protocol: **{results.get('protocol', '?')}** "
        "(closed: held-out images of training identities are the queries, every other image "
        "is the gallery; open: identities never seen in training, each image queries the "
        "rest). The image itself is never counted as a match. Variants: raw cosine "
        "similarity, +QE (query expansion), +re-rank (k-reciprocal), both."
    )
    sections.append(("Setup", intro))
    for set_name, block in results.get("sets", {}).items():
        body = [
            f"{block.get('n_queries', '?')} queries, {block.get('n_gallery', '?')} gallery images.",
            "",
            markdown_table(_variant_rows(block.get("variants", {}))),
        ]
        if block.get("pair_auc_submission") is not None:
            body.append(
                f"Pair ROC-AUC of the submission scores on the pairs file: "
                f"{block['pair_auc_submission']:.4f}\n"
            )
        if block.get("warning"):
            body.append(f"> {block['warning']}\n")
        curves = cmc_curves.get(set_name)
        if curves:
            png = f"cmc_{set_name}.png"
            save_figure(plot_cmc(curves, f"CMC ({set_name})"), out / png)
            body.append(f"![CMC {set_name}]({png})\n")
        sections.append((f"Retrieval: {set_name}", "\n".join(body)))
    bg = results.get("background")
    if bg:
        rows = [
            {"query view": "full image", "mAP": bg["full_mAP"], "rank-1": bg["full_rank1"]},
            {
                "query view": "foreground only",
                "mAP": bg["foreground_mAP"],
                "rank-1": bg["foreground_rank1"],
            },
            {
                "query view": "background only",
                "mAP": bg["background_mAP"],
                "rank-1": bg["background_rank1"],
            },
            {
                "query view": "chance (random ranking)",
                "mAP": bg["chance_mAP"],
                "rank-1": bg["chance_rank1"],
            },
        ]
        text = (
            "Queries are embedded with the animal only (background painted grey) and with the "
            "background only (animal painted grey); the gallery is unchanged. A background-only "
            "mAP well above chance means the model uses the scene, not the coat, to identify.\n\n"
            + markdown_table(rows)
            + f"\n{bg['verdict']}\n"
        )
        sections.append(("Background reliance", text))
    if per_identity:
        save_figure(plot_per_identity_ap(per_identity), out / "per_identity_ap.png")
        worst = sorted(per_identity.items(), key=lambda kv: kv[1])[:5]
        text = "Hardest identities: " + ", ".join(f"{k} ({v:.3f})" for k, v in worst)
        sections.append(("AP per identity", f"{text}\n\n![AP per identity](per_identity_ap.png)\n"))
    if examples:
        save_figure(plot_retrieval_grid(examples), out / "retrieval_grid.png")
        sections.append(
            (
                "Ranked retrieval examples",
                "Query (grey frame) and its top-5 gallery images: green = same identity, "
                "red = different.\n\n![retrieval grid](retrieval_grid.png)\n",
            )
        )
    if metrics_csv is not None:
        fig = plot_training_curve(metrics_csv)
        if fig is not None:
            save_figure(fig, out / "training_curve.png")
            sections.append(("Training", "![training curve](training_curve.png)\n"))
    return write_report(out / "report.md", "Re-identification report", sections)
