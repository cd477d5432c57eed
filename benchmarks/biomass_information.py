"""Where is the biomass signal in the synthetic pasture photos? (issue 10 §1, diagnosis)

The full biomass pipeline (global view + tiles + FiLM on Phase-1 metadata) should beat the
global-only baseline. This benchmark asks, with cheap hand-crafted features instead of CNNs,
whether the data can reward that design at all:

1. **Tiles vs global view.** Colour / excess-green / cover-class / edge-texture features on
   (a) the global view exactly as Phase 2 sees it (the pipeline's cleaning cache, then
   `global_view` to ``phase2.global_size``), (b) the ``phase2.tile_grid`` tiles at the
   resolution Phase 2 sees them, aggregated over tiles (mean, max, min), (a)+(b), plus
   (c) the same features on the whole cleaned image at full resolution (resolution alone,
   no layout) and the generator's own visible-cover fractions from ``manifest.csv`` (what a
   perfect pixel classifier would read off the picture).
2. **Metadata.** True metadata (month, NDVI, height, species, state) alone and with the
   image features, versus the Phase-1 *predicted* metadata of a finished run
   (``phase1/oof_meta.csv``), and how well Phase 1 / the image features predict them.
3. **Noise floor.** Fold-to-fold and repeat-to-repeat spread of finished pipeline runs and of
   these deterministic feature models (whose only randomness is the fold draw).

Every model predicts the three components; GDM and total are derived and scored with the
competition's weighted R². Folds are the pipeline's date-grouped folds (`grouped_folds`,
seed = repeat). Ridge is fitted on ``log1p`` grams (masses are log-normal), boosting on
grams (like `tabular_baseline`). Prints Markdown tables. Not run in CI; a few minutes on
2 CPU cores::

    .venv/bin/python benchmarks/biomass_information.py --data DATA_DIR [--folds 5]
        [--repeats 3] [--oof-meta RUN/phase1/oof_meta.csv] [--runs LABEL=RUN_DIR ...]

``DATA_DIR`` is a ``fieldvision biomass synth`` output (``train.csv``, ``manifest.csv``).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits
from torch import Tensor

from fieldvision.config import load_config
from fieldvision.data.biomass import read_train_table
from fieldvision.metrics.regression import weighted_r2
from fieldvision.ops.tiling import global_view, grid_tiles
from fieldvision.pipelines.biomass.config import BiomassConfig
from fieldvision.pipelines.biomass.inputs import image_cache
from fieldvision.pipelines.biomass.meta import FILM_KEYS, MetaEncoder
from fieldvision.pipelines.biomass.tabular import tabular_features
from fieldvision.schemas.biomass import COMPONENTS, TARGETS, derive_targets
from fieldvision.training.kfold import grouped_folds

FEATURE_NAMES = (
    "r_mean", "g_mean", "b_mean", "r_std", "g_std", "b_std", "exg_mean", "exg_std",
    "gcc_mean", "frac_green", "frac_straw", "frac_bluegreen", "frac_soil",
    "edge", "hf3", "hf9",
)  # fmt: skip


def image_features(x: Tensor) -> Tensor:
    """Hand-crafted colour / cover / texture features of each image.

    Args:
        x: Tensor[B, 3, H, W] RGB in [0, 1].

    Returns:
        Tensor[B, F] with F = ``len(FEATURE_NAMES)``.
    """
    r, g, b = x[:, 0], x[:, 1], x[:, 2]  # (B, H, W)
    grey = x.mean(1)
    exg = 2 * g - r - b  # excess green: living tissue vs straw and soil
    gcc = g / x.sum(1).clamp_min(1e-3)
    # Thresholds from the generator's base colours (green blade ExG ~0.35-0.6, straw ~0.05-0.13,
    # soil <= 0; straw is lighter than any soil; clover is bluer than grass).
    green = exg > 0.2
    bluegreen = (exg > 0.1) & (b > r)
    straw = (exg <= 0.2) & (grey > 0.47)
    soil = ~(green | straw)
    dx = (grey[:, :, 1:] - grey[:, :, :-1]).abs().mean((1, 2))
    dy = (grey[:, 1:] - grey[:, :-1]).abs().mean((1, 2))
    g4 = grey.unsqueeze(1)  # (B, 1, H, W)

    def highpass(k: int) -> Tensor:  # energy above the scale of a k x k box (blade texture)
        blur = F.avg_pool2d(g4, k, stride=1, padding=k // 2, count_include_pad=False)
        return ((g4 - blur) ** 2).mean((1, 2, 3))

    cols = [
        r.mean((1, 2)), g.mean((1, 2)), b.mean((1, 2)),
        r.std((1, 2)), g.std((1, 2)), b.std((1, 2)),
        exg.mean((1, 2)), exg.std((1, 2)), gcc.mean((1, 2)),
        green.float().mean((1, 2)), straw.float().mean((1, 2)),
        bluegreen.float().mean((1, 2)), soil.float().mean((1, 2)),
        dx + dy, highpass(3), highpass(9),
    ]  # fmt: skip
    return torch.stack(cols, 1)  # (B, F)


def view_features(
    data_dir: Path, cfg: BiomassConfig, paths: list[str], batch: int = 16
) -> dict[str, np.ndarray]:
    """Features of the global view, the aggregated tiles and the full-resolution image.

    Images come from the pipeline's own cleaning cache, so they are exactly what Phase 2 is
    fed; the views are cut with the same `global_view` / `grid_tiles` calls as
    `Phase2Model`.

    Returns:
        ``global``, ``tiles`` (mean ⊕ max ⊕ min over tiles) and ``fullres``, each
        np.ndarray[N, F'].
    """
    cache = image_cache(cfg, data_dir)
    rows, cols = cfg.phase2.tile_grid
    tile_input = cfg.phase2.tile_input
    out: dict[str, list[np.ndarray]] = {"global": [], "tiles": [], "fullres": []}
    for start in range(0, len(paths), batch):
        imgs = [cache.get(data_dir / p) for p in paths[start : start + batch]]
        x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() / 255.0  # (B, 3, H, W)
        g = global_view(x, tuple(cfg.phase2.global_size))
        t = grid_tiles(x, rows, cols)  # (B, T, 3, th, tw)
        n_t = t.shape[1]
        t = t.flatten(0, 1)
        if tile_input is not None and tuple(t.shape[-2:]) != tuple(tile_input):
            t = global_view(t, tuple(tile_input))
        ft = image_features(t).view(x.shape[0], n_t, -1)  # (B, T, F)
        agg = torch.cat([ft.mean(1), ft.amax(1), ft.amin(1)], 1)  # (B, 3F)
        out["global"].append(image_features(g).numpy())
        out["tiles"].append(agg.numpy())
        out["fullres"].append(image_features(x).numpy())
    return {k: np.concatenate(v).astype(np.float64) for k, v in out.items()}


Model = Callable[[int], object]


def _ridge(seed: int) -> object:
    return make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 3, 12)))


def _hgb(seed: int) -> object:
    return HistGradientBoostingRegressor(
        max_iter=200, learning_rate=0.05, categorical_features="from_dtype", random_state=seed
    )


MODELS: dict[str, tuple[Model, bool]] = {"ridge": (_ridge, True), "hgb": (_hgb, False)}


def cv_scores(
    x: pd.DataFrame, y: np.ndarray, dates: np.ndarray, model: str, folds: int, repeats: int
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold weighted R² of `model` on features `x` for each repeat.

    Args:
        x: N rows of features.
        y: np.ndarray[N, 5] grams in `TARGETS` order.
        dates: N sampling dates (the fold groups).
        model: A key of `MODELS`.

    Returns:
        ``(oof_r2[R], fold_r2[R, folds])``.
    """
    make, log_target = MODELS[model]
    if log_target:  # a linear model needs one-hot categories (state, species)
        x = pd.get_dummies(x, dtype=float)
    comp = [TARGETS.index(c) for c in COMPONENTS]
    # One OpenMP thread for boosting: on 160 rows, threads on a busy machine cost 20x.
    with threadpool_limits(limits=1, user_api="openmp"):
        return _cv(x, y, dates, make, log_target, comp, folds, repeats)


def _cv(
    x: pd.DataFrame,
    y: np.ndarray,
    dates: np.ndarray,
    make: Model,
    log_target: bool,
    comp: list[int],
    folds: int,
    repeats: int,
) -> tuple[np.ndarray, np.ndarray]:
    """`cv_scores` after model lookup: R repeats of date-grouped k-fold."""
    oof_r2, fold_r2 = [], []
    for rep in range(repeats):
        fold_of = grouped_folds(dates, folds, rep)
        pred = np.zeros((len(y), len(comp)))
        for k in range(folds):
            tr, va = fold_of != k, fold_of == k
            for j, col in enumerate(comp):
                m = make(rep)
                target = np.log1p(y[tr, col]) if log_target else y[tr, col]
                m.fit(x[tr], target)  # type: ignore[attr-defined]
                p = m.predict(x[va])  # type: ignore[attr-defined]
                if log_target:  # expm1 of an extrapolated log blows up: stay in the train range
                    p = np.clip(p, 0.0, target.max())
                pred[va, j] = np.clip(np.expm1(p) if log_target else p, 0.0, None)
        full = derive_targets(pred)
        oof_r2.append(weighted_r2(y, full))
        fold_r2.append([weighted_r2(y[fold_of == k], full[fold_of == k]) for k in range(folds)])
    return np.array(oof_r2), np.array(fold_r2)


def _frame(arr: np.ndarray, prefix: str) -> pd.DataFrame:
    return pd.DataFrame(arr, columns=[f"{prefix}{i}" for i in range(arr.shape[1])])


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _ms(a: np.ndarray) -> str:
    return f"{a.mean():.3f} ± {a.std(ddof=1):.3f}" if len(a) > 1 else f"{a.mean():.3f}"


def score_sets(
    sets: dict[str, pd.DataFrame], y: np.ndarray, dates: np.ndarray, folds: int, repeats: int
) -> tuple[str, dict[str, dict[str, np.ndarray]]]:
    """Markdown table of every feature set under every model; per-repeat scores per model."""
    rows: list[list[str]] = []
    scores: dict[str, dict[str, np.ndarray]] = {m: {} for m in MODELS}
    for name, x in sets.items():
        row = [name, str(x.shape[1])]
        for model in MODELS:
            oof, fold = cv_scores(x, y, dates, model, folds, repeats)
            row += [_ms(oof), f"{fold.std(axis=1, ddof=1).mean():.3f}"]
            scores[model][name] = oof
        rows.append(row)
    header = ["features", "n"] + [f"{m} {s}" for m in MODELS for s in ("R² (mean ± sd)", "fold sd")]
    return _table(header, rows), scores


def _paired(scores: dict[str, dict[str, np.ndarray]], pairs: list[tuple[str, str]]) -> str:
    """Per-repeat paired differences (same folds): the honest test of 'b adds to a'."""
    rows = []
    for model, by_set in scores.items():
        for a, b in pairs:
            d = by_set[b] - by_set[a]
            rows.append([model, f"{b} − {a}", _ms(d), " ".join(f"{v:+.3f}" for v in d)])
    return _table(["model", "paired ΔR²", "mean ± sd", "per repeat"], rows)


def metadata_predictability(
    wide: pd.DataFrame, feats: pd.DataFrame, oof_meta: pd.DataFrame | None, folds: int
) -> str:
    """How well image features (grouped CV) and Phase 1 (OOF) recover the FiLM metadata."""
    enc = MetaEncoder.fit(wide)
    truth = enc.encode(wide)
    dates = wide["sampling_date"].astype(str).to_numpy()
    fold_of = grouped_folds(dates, folds, 0)
    rows = []
    for key in FILM_KEYS:
        t = truth[key].astype(np.float64)
        pred = np.zeros(len(t))
        for k in range(folds):
            tr, va = fold_of != k, fold_of == k
            with threadpool_limits(limits=1, user_api="openmp"):
                pred[va] = _hgb(0).fit(feats[tr], t[tr]).predict(feats[va])
        r2 = 1 - np.sum((t - pred) ** 2) / np.sum((t - t.mean()) ** 2)
        p1 = "—"
        if oof_meta is not None:
            q = oof_meta[key].to_numpy(np.float64)
            p1 = f"{1 - np.sum((t - q) ** 2) / np.sum((t - t.mean()) ** 2):.3f}"
        rows.append([key, f"{r2:.3f}", p1])
    return _table(["metadata", "R² from global features (HGB)", "R² of Phase-1 OOF"], rows)


def run_spread(runs: list[tuple[str, Path]]) -> str:
    """Fold and repeat spread of finished pipeline runs (their ``metrics.json``)."""
    by_label: dict[str, list[dict]] = {}
    for label, run in runs:
        fit = json.loads((run / "metrics.json").read_text())["fit"]
        by_label.setdefault(label, []).append(fit)
    rows = []
    for label, fits in by_label.items():
        oof = np.array([f["oof_weighted_r2"] for f in fits])
        fold_sd = np.mean([np.std(f["fold_weighted_r2"], ddof=1) for f in fits])
        rows.append([label, str(len(fits)), str(fits[0]["folds"]), _ms(oof), f"{fold_sd:.3f}"])
    return _table(["runs", "repeats", "folds", "OOF R² (mean ± sd)", "mean fold sd"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="synthetic biomass data dir")
    parser.add_argument("--config", default="biomass_demo", help="recipe of the views")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--oof-meta", type=Path, help="phase1/oof_meta.csv of a finished run")
    parser.add_argument("--runs", nargs="*", default=[], help="LABEL=RUN_DIR finished runs")
    args = parser.parse_args()
    torch.set_num_threads(2)
    start = time.perf_counter()
    cfg = load_config(BiomassConfig, args.config)
    wide = read_train_table(args.data / "train.csv")
    y = wide[list(TARGETS)].to_numpy(np.float64)
    dates = wide["sampling_date"].astype(str).to_numpy()
    views = view_features(args.data, cfg, list(wide["image_path"]))
    manifest = pd.read_csv(args.data / "manifest.csv").set_index("image_id")
    vis = manifest.loc[wide["image_id"], ["cover", "visible_green", "visible_dead",
                                          "visible_clover"]].reset_index(drop=True)  # fmt: skip
    a, b = _frame(views["global"], "g"), _frame(views["tiles"], "t")
    c = _frame(views["fullres"], "f")
    meta = tabular_features(wide)
    oof_meta = pd.read_csv(args.oof_meta)[list(FILM_KEYS)] if args.oof_meta else None
    gs, ts = cfg.phase2.global_size, cfg.phase2.tile_grid
    print(f"# Biomass information benchmark ({len(wide)} images, {len(set(dates))} dates, "
          f"{args.folds} folds × {args.repeats} repeats)\n")  # fmt: skip
    print(f"Views: clean {tuple(cfg.data.clean.size)}, global {tuple(gs)}, tiles {tuple(ts)} "
          f"at {cfg.phase2.tile_input or 'native'} resolution.\n")  # fmt: skip

    sets = {
        "(a) global view": a,
        "(b) tiles (mean/max/min)": b,
        "(a)+(b)": pd.concat([a, b], axis=1),
        "(c) full-res whole image": c,
        "(a)+(c)": pd.concat([a, c], axis=1),
        "oracle: manifest visible cover": vis,
    }
    table, s1 = score_sets(sets, y, dates, args.folds, args.repeats)
    print("## 1. Do tiles carry information the global view loses?\n\n" + table + "\n")
    pairs = [("(a) global view", "(a)+(b)"), ("(a) global view", "(a)+(c)"),
             ("(a) global view", "oracle: manifest visible cover")]  # fmt: skip
    print(_paired(s1, pairs) + "\n")

    sets2 = {"true metadata": meta, "(a) + true metadata": pd.concat([a, meta], axis=1)}
    if oof_meta is not None:
        sets2["Phase-1 OOF metadata"] = oof_meta
        sets2["(a) + Phase-1 OOF metadata"] = pd.concat([a, oof_meta], axis=1)
    table2, s2 = score_sets(sets2, y, dates, args.folds, args.repeats)
    for model in MODELS:
        s2[model]["(a) global view"] = s1[model]["(a) global view"]
    print("## 2. Metadata: does it explain the targets, and is it in the image?\n\n" + table2)
    pairs2 = [("(a) global view", "(a) + true metadata")]
    if oof_meta is not None:
        pairs2.append(("(a) global view", "(a) + Phase-1 OOF metadata"))
    print("\n" + _paired(s2, pairs2) + "\n")
    print(metadata_predictability(wide, a, oof_meta, args.folds) + "\n")

    if args.runs:
        runs = [(s.split("=", 1)[0], Path(s.split("=", 1)[1])) for s in args.runs]
        print("## 3. Noise floor of the pipeline runs\n\n" + run_spread(runs) + "\n")
    print(f"_{time.perf_counter() - start:.0f} s_")


if __name__ == "__main__":
    main()
