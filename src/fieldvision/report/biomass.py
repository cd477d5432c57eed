"""The biomass run report: OOF table, scatter plots, error by month/state, tile heatmaps."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fieldvision.report.markdown import markdown_table, new_figure, save_figure, write_report
from fieldvision.schemas.biomass import TARGETS, WEIGHTS

__all__ = ["error_by_group", "write_biomass_report"]


def error_by_group(wide: pd.DataFrame, oof: np.ndarray, column: str) -> pd.DataFrame:
    """Per-group weighted RMSE (metric weights) and mean total error, sorted by group.

    Args:
        wide: One row per image with `column` and the TARGETS.
        oof: (N, 5) out-of-fold predictions in TARGETS order.
        column: Grouping column, e.g. "month" or "state".
    """
    y = wide[list(TARGETS)].to_numpy(np.float64)
    w = np.array(WEIGHTS)
    sq = ((y - oof) ** 2 * w).sum(axis=1) / w.sum()  # (N,) weighted squared error per image
    total_err = oof[:, TARGETS.index("Dry_Total_g")] - y[:, TARGETS.index("Dry_Total_g")]
    frame = pd.DataFrame({column: wide[column].to_numpy(), "sq": sq, "total_err": total_err})
    grouped = frame.groupby(column, sort=True)
    return pd.DataFrame(
        {
            "n_images": grouped.size(),
            "weighted_rmse_g": np.sqrt(grouped["sq"].mean()),
            "mean_total_error_g": grouped["total_err"].mean(),
        }
    ).reset_index()


def _scatter(wide: pd.DataFrame, oof: np.ndarray, path: Path) -> None:
    fig = new_figure(3.2 * len(TARGETS), 3.2)
    axes = fig.subplots(1, len(TARGETS))
    for j, (ax, name) in enumerate(zip(axes, TARGETS, strict=True)):
        truth, pred = wide[name].to_numpy(), oof[:, j]
        hi = float(max(truth.max(), pred.max(), 1.0))
        ax.scatter(truth, pred, s=8, alpha=0.6)
        ax.plot([0, hi], [0, hi], color="grey", lw=1)
        ax.set_title(name)
        ax.set_xlabel("truth (g)")
        ax.set_ylabel("OOF prediction (g)")
    save_figure(fig, path)


def _bars(table: pd.DataFrame, column: str, path: Path) -> None:
    fig = new_figure(6, 3)
    ax = fig.add_subplot()
    ax.bar(table[column].astype(str), table["weighted_rmse_g"])
    ax.set_xlabel(column)
    ax.set_ylabel("weighted RMSE (g)")
    save_figure(fig, path)


def _heatmaps(
    images: Sequence[np.ndarray], weights: np.ndarray, grid: tuple[int, int], ids, path: Path
) -> None:
    rows, cols = grid
    fig = new_figure(4.0 * len(images), 2.4)
    axes = np.atleast_1d(fig.subplots(1, len(images)))
    for ax, img, w, image_id in zip(axes, images, weights, ids, strict=True):
        h, wd = img.shape[:2]
        ax.imshow(img)
        heat = w.reshape(rows, cols)
        ax.imshow(heat, cmap="inferno", alpha=0.45, extent=(0, wd, h, 0), interpolation="nearest")
        for r in range(rows):
            for c in range(cols):
                ax.text(
                    (c + 0.5) * wd / cols,
                    (r + 0.5) * h / rows,
                    f"{heat[r, c]:.2f}",
                    color="white",
                    ha="center",
                    va="center",
                    fontsize=8,
                )
        ax.set_title(str(image_id), fontsize=8)
        ax.axis("off")
    save_figure(fig, path)


def write_biomass_report(
    out: Path,
    wide: pd.DataFrame,
    folds: np.ndarray,
    oof: np.ndarray,
    metrics: dict[str, Any],
    cache: Any,
    paths: Sequence[Path],
    tile_weights: np.ndarray | None,
    tile_grid: tuple[int, int],
    n_heatmaps: int = 4,
    extra_sections: Sequence[tuple[str, str]] = (),
) -> Path:
    """Write ``report.md`` and its PNGs into the run directory `out`.

    `extra_sections` (``(heading, markdown body)``) are appended after the built-in ones.
    """
    sections = []
    overview = [
        {"metric": "OOF weighted R² (flip TTA)", "value": metrics["oof_weighted_r2"]},
        {"metric": "OOF weighted R² (no TTA)", "value": metrics["oof_weighted_r2_no_tta"]},
    ]
    if "oof_weighted_r2_fold_best" in metrics:
        mode = metrics.get("selection", {}).get("mode", "best")
        overview[0]["metric"] += f", selection {mode}"
        overview.insert(
            1,
            {
                "metric": "OOF weighted R² with each fold's own best epoch (biased)",
                "value": metrics["oof_weighted_r2_fold_best"],
            },
        )
    overview += [{"metric": f"R² {k}", "value": v} for k, v in metrics["per_target_r2"].items()]
    if metrics.get("n_excluded"):
        excluded = "images excluded (data.exclude; not trained on, not scored)"
        overview.append({"metric": excluded, "value": int(metrics["n_excluded"])})
    fold_rows = [
        {"fold": k, "images": int((folds == k).sum()), "weighted R²": r2}
        for k, r2 in enumerate(metrics["fold_weighted_r2"])
    ]
    sections.append(
        ("Out-of-fold scores", markdown_table(overview) + "\n" + markdown_table(fold_rows))
    )
    _scatter(wide, oof, out / "scatter.png")
    sections.append(("Predictions vs truth", "![scatter](scatter.png)"))
    for column in ("month", "state"):
        table = error_by_group(wide, oof, column)
        _bars(table, column, out / f"error_by_{column}.png")
        sections.append(
            (
                f"Error by {column}",
                markdown_table(table.to_dict("records")) + f"\n![{column}](error_by_{column}.png)",
            )
        )
    if tile_weights is not None and len(paths):
        picks = np.linspace(0, len(paths) - 1, num=min(n_heatmaps, len(paths))).astype(int)
        images = [cache.get(paths[i]) for i in picks]
        _heatmaps(
            images,
            tile_weights[picks],
            tile_grid,
            wide["image_id"].to_numpy()[picks],
            out / "tile_attention.png",
        )
        sections.append(
            (
                "Tile attention",
                "Attention weight of each tile in the fused feature (out-of-fold model, "
                "identity view); uniform weights mean the model treats all tiles alike.\n\n"
                "![tiles](tile_attention.png)",
            )
        )
    sections.extend(extra_sections)
    return write_report(out / "report.md", "Biomass run report", sections)
