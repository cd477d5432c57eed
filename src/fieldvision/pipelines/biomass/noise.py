"""Label-noise report from out-of-fold residuals, and the exclude list that acts on it.

The CSIRO 10th place dropped 8 noisy labels for +0.01 private R². An image whose label is
wrong is mispredicted by *every* model that did not train on it, whatever the folds and
seeds, while an image that is merely hard, or unlucky in one fold split, is extreme in one
repeat and ordinary in the next. So the evidence is the out-of-fold residual across
repeated CV runs (``train --repeats R``: other folds, other model seeds).

Score. For image i in repeat r, ``score = Σ_j w_j (ŷ_ij - y_ij)² / (SS_tot / N)``, the
metric-weighted squared residual (competition weights, grams) divided by the mean
weighted total sum of squares per image, ``SS_tot = Σ_ij w_j (y_ij - ȳ_w)²``. Then
``1 - R²_w = mean_i score``: an image's score is its cost to the competition metric, in
units of an average image's variance (1 = as bad as predicting the mean for a typical
image). The per-target residuals ``ŷ - y`` (grams, mean over repeats) say which target.

Rule (flag). Per repeat, the robust z of ``sqrt(score)`` (the image's weighted RMS
residual): ``z = (e - median(e)) / (1.4826 · MAD(e))``. Median and MAD because the noisy
labels themselves must not inflate the yardstick they are measured with (a standard
deviation would); the square root because squared errors are so heavy-tailed that even
the MAD of the scores flags a large share of clean images. An image is **flagged** when
``min_r z > 3`` (``z_threshold``), i.e. it is a > 3 robust-sd outlier in *every* repeat:
one bad repeat (a fold that put the image with unlike dates) cannot flag it. With a single
run there is nothing to be consistent across, so ``label_noise.csv`` is a ranking only and
``flagged`` is False everywhere (passing it as ``data.exclude`` excludes nothing).

Exclude list (``data.exclude``): a text file with one image id or image path per line
(blank lines and ``#`` comments ignored), or a CSV with an ``image_id`` (or
``image_path``) column, such as ``label_noise.csv``; when the CSV has a ``flagged``
column, only its flagged rows are excluded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path, PurePath

import numpy as np
import pandas as pd

from fieldvision.errors import DataError
from fieldvision.io import write_csv
from fieldvision.schemas.biomass import TARGETS, WEIGHTS

__all__ = [
    "NOISE_FILE",
    "label_noise_section",
    "label_noise_table",
    "oof_arrays",
    "read_exclude_list",
    "residual_scores",
    "robust_z",
    "write_label_noise",
]

NOISE_FILE = "label_noise.csv"

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no", ""}


def residual_scores(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Metric-weighted squared residual of each image, per average image variance.

    Args:
        y: Array[N, 5] true grams in `TARGETS` order.
        pred: Array[N, 5] out-of-fold predictions.

    Returns:
        Array[N] float64 scores; their mean is ``1 - weighted R²`` (0 for constant labels
        predicted exactly, inf when the labels are constant and a prediction is not).
    """
    y = np.asarray(y, np.float64)
    pred = np.asarray(pred, np.float64)
    if y.shape != pred.shape or y.ndim != 2 or y.shape[1] != len(WEIGHTS):
        raise ValueError(f"y {y.shape} and pred {pred.shape} must both be [N, {len(WEIGHTS)}]")
    w = np.asarray(WEIGHTS, np.float64)
    sq = ((pred - y) ** 2 * w).sum(axis=1)  # (N,)
    mean = float((y * w).sum() / (w.sum() * len(y)))
    ss_tot_per_image = float(((y - mean) ** 2 * w).sum()) / len(y)
    if ss_tot_per_image == 0.0:
        return np.where(sq == 0.0, 0.0, np.inf)
    return sq / ss_tot_per_image


def robust_z(values: np.ndarray) -> np.ndarray:
    """``(x - median) / (1.4826 · MAD)`` of Array[N]; the MAD is the normal-consistent scale.

    When more than half the values are equal the MAD is 0; the mean absolute deviation from
    the median (x 1.2533, also normal-consistent) is used instead, and all zeros when every
    value is the same.
    """
    x = np.asarray(values, np.float64)
    med = float(np.median(x))
    dev = np.abs(x - med)
    scale = 1.4826 * float(np.median(dev))
    if scale == 0.0:
        scale = 1.2533 * float(dev.mean())
    if scale == 0.0:
        return np.zeros_like(x)
    return (x - med) / scale


def label_noise_table(
    image_ids: Sequence[str],
    y: np.ndarray,
    preds: Sequence[np.ndarray],
    z_threshold: float = 3.0,
) -> pd.DataFrame:
    """Per-image residuals and scores over R repeats, worst first (see the module docstring).

    Args:
        image_ids: N image ids.
        y: Array[N, 5] true grams.
        preds: R arrays [N, 5] of out-of-fold predictions, one per repeat, rows aligned.
        z_threshold: Flag when the robust z of ``sqrt(score)`` exceeds this in every repeat.

    Returns:
        Columns image_id, rank (1 = worst), ``resid_<target>`` (mean ŷ - y over repeats,
        grams), score_mean, score_min, ``score_r<k>`` per repeat, z_min, flagged (always
        False with one repeat); sorted by score_mean, descending.
    """
    if not preds:
        raise ValueError("need the OOF predictions of at least one run")
    scores = np.stack([residual_scores(y, p) for p in preds], axis=1)  # (N, R)
    z = np.stack([robust_z(np.sqrt(scores[:, r])) for r in range(len(preds))], axis=1)
    resid = np.mean([np.asarray(p, np.float64) - y for p in preds], axis=0)  # (N, 5)
    frame = pd.DataFrame({"image_id": list(image_ids)})
    for j, name in enumerate(TARGETS):
        frame[f"resid_{name}"] = resid[:, j]
    frame["score_mean"] = scores.mean(axis=1)
    frame["score_min"] = scores.min(axis=1)
    for r in range(len(preds)):
        frame[f"score_r{r}"] = scores[:, r]
    frame["z_min"] = z.min(axis=1)
    frame["flagged"] = (frame["z_min"] > z_threshold) & (len(preds) > 1)
    frame = frame.sort_values("score_mean", ascending=False, kind="stable")
    frame.insert(1, "rank", np.arange(1, len(frame) + 1))
    return frame.reset_index(drop=True)


def oof_arrays(run_dirs: Sequence[Path]) -> tuple[list[str], np.ndarray, list[np.ndarray]]:
    """``(image_ids, y [N, 5], preds [R x (N, 5)])`` from the runs' ``oof_wide.csv`` files.

    Rows are aligned by image id on the first run (every repeat trains the same images).

    Raises:
        DataError: A run has no ``oof_wide.csv`` or other images than the first.
    """
    frames = []
    for run in run_dirs:
        path = Path(run) / "oof_wide.csv"
        if not path.is_file():
            raise DataError(f"{path}: missing (is the run finished?)")
        frames.append(pd.read_csv(path, dtype={"image_id": str}).set_index("image_id"))
    ids = frames[0].index
    for run, frame in zip(run_dirs, frames, strict=True):
        if set(frame.index) != set(ids):
            raise DataError(f"{run}: oof_wide.csv has other images than {run_dirs[0]}")
    y = frames[0].loc[ids, list(TARGETS)].to_numpy(np.float64)
    preds = [f.loc[ids, [f"pred_{t}" for t in TARGETS]].to_numpy(np.float64) for f in frames]
    return [str(i) for i in ids], y, preds


def write_label_noise(out: Path, table: pd.DataFrame) -> Path:
    """Write `table` (from `label_noise_table`) as ``out/label_noise.csv``."""
    return write_csv(Path(out) / NOISE_FILE, table)


def label_noise_section(table: pd.DataFrame, repeats: int, top: int = 10) -> str:
    """Markdown body of the report's label-noise section: the rule, counts, worst images."""
    n_flag = int(table["flagged"].sum())
    if repeats > 1:
        head = (
            f"{n_flag} of {len(table)} images flagged as likely label noise: robust z of "
            f"the weighted RMS residual > 3 in every one of the {repeats} repeats "
            "(`fieldvision.pipelines.biomass.noise`). `score` is the image's cost to "
            "1 - weighted R² in units of an average image's variance; `resid_*` is "
            "prediction - label in grams, mean over repeats. Pass `label_noise.csv` as "
            "`--set data.exclude=...` to train without the flagged images.\n\n"
        )
    else:
        head = (
            "Images ranked by their out-of-fold cost to 1 - weighted R² (`score`, in units "
            "of an average image's variance); `resid_*` is prediction - label in grams. "
            "Nothing is flagged from a single run: train with `--repeats` (≥ 2) to flag "
            "images that are extreme in every repeat.\n\n"
        )
    short = {f"resid_{t}": f"resid_{t.removesuffix('_g')}" for t in TARGETS}
    cols = ["rank", "image_id", "score_mean", "score_min", "z_min", *short, "flagged"]
    rows = table.head(top)[cols].rename(columns=short).to_dict("records")
    # Imported here: the report helpers pull in matplotlib, which data loading never needs.
    from fieldvision.report.markdown import markdown_table

    return head + markdown_table(rows, digits=3)


# --------------------------------------------------------------------------- exclude list


def _exclude_entries(path: Path) -> list[tuple[int, str]]:
    """``(line, entry)`` of an exclude file, text or CSV (see the module docstring)."""
    if not path.is_file():
        raise DataError(f"{path}: exclude file not found (data.exclude)")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise DataError(f"{path}: exclude file is not UTF-8 text") from None
    first = next((s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#")), "")
    header = [c.strip() for c in first.split(",")]
    if "," not in first and first not in ("image_id", "image_path"):
        return [
            (n, s.strip())
            for n, s in enumerate(lines, 1)
            if s.strip() and not s.lstrip().startswith("#")
        ]
    key = next((c for c in ("image_id", "image_path") if c in header), None)
    if key is None:
        raise DataError(
            f"{path}: CSV exclude file needs an image_id or image_path column, got {header}"
        )
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, comment="#")
    # Physical line of each row: header on line 1 (comments and blanks are skipped by pandas,
    # so the numbers are exact only for files without them, like label_noise.csv).
    rows = [(i + 2, str(v).strip()) for i, v in enumerate(frame[key])]
    if "flagged" in frame.columns:
        flags = frame["flagged"].str.strip().str.lower()
        bad = ~flags.isin(_TRUE | _FALSE)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{path}: line {i + 2}: column flagged must be true/false, "
                f"got {frame['flagged'].iloc[i]!r}"
            )
        rows = [r for r, f in zip(rows, flags.isin(_TRUE), strict=True) if f]
    return [(n, v) for n, v in rows if v]


def read_exclude_list(path: str | os.PathLike[str], wide: pd.DataFrame) -> np.ndarray:
    """Which rows of `wide` the exclude file names.

    Entries match an image id, an ``image_path`` as in ``train.csv``, or any path whose
    file name is an image's file name (e.g. an absolute path to it).

    Args:
        path: The exclude file.
        wide: One row per image, with ``image_id`` and ``image_path``.

    Returns:
        Array[N] bool, True for excluded rows.

    Raises:
        DataError: Missing or unreadable file, a CSV without an id column, a bad flagged
            value, or an entry that is no image of the table (names the file, the line
            and the first unknown entry).
    """
    path = Path(path)
    ids = wide["image_id"].astype(str).tolist()
    lookup: dict[str, int] = {}
    for i, p in enumerate(wide["image_path"].astype(str)):
        lookup.setdefault(PurePath(p).name, i)
        lookup.setdefault(p, i)
    lookup.update({image_id: i for i, image_id in enumerate(ids)})
    mask = np.zeros(len(wide), dtype=bool)
    for line, entry in _exclude_entries(path):
        row = lookup.get(entry, lookup.get(PurePath(entry.replace("\\", "/")).name))
        if row is None:
            raise DataError(
                f"{path}: line {line}: {entry!r} is not an image of the training table",
                hint="list image ids (e.g. from label_noise.csv) or image paths, one per line",
            )
        mask[row] = True
    return mask
