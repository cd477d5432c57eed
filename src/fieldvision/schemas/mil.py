"""The MIL prediction files, written the same way by the torch and the ONNX runtimes.

``preds.csv``: one row per image, ``image, label, prob_<class>..., tiles, ms``.
``tiles.csv`` (beside it): one row per tile, ``image, row, col, x1, y1, x2, y2, scouter,
selected, expert_<class>...`` where ``expert_<class>`` is the expert's tile probability
(mean over the fold ensemble), empty where the expert did not run the tile (glance mode).
NumPy only, so the torch-free deploy path shares it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fieldvision.io import write_csv

__all__ = ["prediction_tables", "write_predictions"]


def _softmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    z = np.exp(x - x.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def prediction_tables(
    names: Sequence[str], results: Sequence[Any], classes: Sequence[str], grid_cols: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(image rows, tile rows)`` of predictions.

    Args:
        names: Image names, one per result.
        results: Per image: ``prob`` (C,), ``selected`` bool (T,), ``ms``, ``boxes`` (T, 4)
            xyxy, ``scouter`` (T,) (NaN where not scored), ``tile_logits`` (E, T, C) of the
            E ensemble members.
        classes: Class names (C).
        grid_cols: Tiles per grid row (row/col of tile t are ``divmod(t, grid_cols)``).
    """
    rows, tile_rows = [], []
    for name, r in zip(names, results, strict=True):
        row: dict[str, Any] = {"image": name, "label": classes[int(np.argmax(r.prob))]}
        row.update({f"prob_{c}": float(p) for c, p in zip(classes, r.prob, strict=True)})
        row.update(tiles=int(r.selected.sum()), ms=round(r.ms, 3))
        rows.append(row)
        tile_prob = _softmax(r.tile_logits).mean(0)  # (T, C)
        for t, (x1, y1, x2, y2) in enumerate(r.boxes):
            scout = None if np.isnan(r.scouter[t]) else float(r.scouter[t])
            tr: dict[str, Any] = {"image": name, "row": t // grid_cols, "col": t % grid_cols,
                                  "x1": int(x1), "y1": int(y1), "x2": int(x2), "y2": int(y2),
                                  "scouter": scout, "selected": bool(r.selected[t])}  # fmt: skip
            for c, cls in enumerate(classes):
                tr[f"expert_{cls}"] = float(tile_prob[t, c]) if r.selected[t] else None
            tile_rows.append(tr)
    return rows, tile_rows


def write_predictions(
    out: str | Path, rows: list[dict[str, Any]], tile_rows: list[dict[str, Any]]
) -> pd.DataFrame:
    """Write ``out`` (image rows) and ``tiles.csv`` beside it, atomically; return the table."""
    out = Path(out)
    table = pd.DataFrame(rows)
    write_csv(out.with_name("tiles.csv"), pd.DataFrame(tile_rows))
    write_csv(out, table)
    return table
