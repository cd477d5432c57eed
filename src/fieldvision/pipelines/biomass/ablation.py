"""Named ablation variants of the biomass pipeline, trained on identical folds.

Each variant is a set of ``--set`` overrides on top of the user's config, trained into its own
run directory (so an interrupted ablation resumes variant by variant). Folds depend only on
the sampling dates and the seed, so every variant sees exactly the same splits. Variants that
share the Phase-1 settings reuse one Phase-1 training. The "no_tta" row needs no training: it
is the full pipeline's out-of-fold score without flip TTA.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fieldvision.config import config_to_dict, load_config
from fieldvision.console import console
from fieldvision.errors import ConfigError
from fieldvision.io import read_yaml
from fieldvision.pipelines.biomass.config import BiomassConfig
from fieldvision.pipelines.biomass.fit import train
from fieldvision.pipelines.biomass.repeats import mean_std, repeat_configs
from fieldvision.report.markdown import markdown_table, write_report

__all__ = ["VARIANTS", "Variant", "run_ablation"]


@dataclass(frozen=True)
class Variant:
    """An ablation variant: overrides applied to the base config."""

    description: str
    overrides: tuple[str, ...]
    reuse: str | None = None  # evaluate another variant's run differently instead of training


_GLOBAL_ONLY = ("phase2.use_tiles=false", "phase2.use_film=false")
_TILES = ("phase2.use_tiles=true", "phase2.aggregation=attention", "phase2.use_film=false")
_FULL = ("phase2.use_tiles=true", "phase2.aggregation=attention", "phase2.use_film=true")

#: The variants, in table order. "baseline" is what every row's Δ is measured against.
VARIANTS: dict[str, Variant] = {
    "baseline": Variant("global view only, no metadata (image regression baseline)", _GLOBAL_ONLY),
    "tiles": Variant("+ 8 tiles, attention aggregation", _TILES),
    "film": Variant("+ tiles + FiLM on OOF Phase-1 metadata (full pipeline)", _FULL),
    "mean": Variant(
        "full pipeline with mean instead of attention aggregation",
        (*_FULL[:1], "phase2.aggregation=mean", _FULL[2]),
    ),
    "no_tta": Variant("full pipeline evaluated without flip TTA", _FULL, reuse="film"),
    "clahe": Variant("full pipeline + CLAHE in cleaning", (*_FULL, "data.clean.clahe=true")),
    "swa": Variant(
        "full pipeline, Phase 2 exports the mean of its last 3 epochs' weights",
        (*_FULL, "phase2.selection=last_k_average", "phase2.selection_k=3"),
    ),
    "no_aux": Variant(
        "full pipeline, Phase 1 without species/state heads",
        (*_FULL, "phase1.use_species=false", "phase1.use_state=false"),
    ),
    "artifacts": Variant(
        "full pipeline + pasted date stamps / red dots on half the training images",
        (*_FULL, "data.artifact_augment=0.5"),
    ),
    "artifacts_no_clean": Variant(
        "full pipeline + pasted artifacts, no date-stamp cleaning (mask + inpaint off)",
        (*_FULL, "data.artifact_augment=0.5", "data.clean.stamp_mask=false"),
    ),
    "bins": Variant(
        "full pipeline + interval-classification heads (8 quantile bins per component)",
        (*_FULL, "phase2.bins=8"),
    ),
    "projection": Variant(
        "full pipeline, 5 targets projected onto the mass balance instead of 3 components",
        (*_FULL, "phase2.head=projection"),
    ),
}


def run_ablation(
    data_dir: Path, out: Path, base: BiomassConfig, names: list[str], repeats: int = 1
) -> list[dict]:
    """Train every named variant (`repeats` times) and write ``out/ablation.md``.

    With ``repeats`` R > 1, variant ``v`` trains ``out/v/repeat{r}`` with ``train.seed`` =
    seed + r (other folds, other model seeds; repeat r has the same folds in every
    variant), and a variant counts as better than the baseline only when its mean gain
    exceeds twice the combined std, ``2·sqrt(s_v² + s_baseline²)``.

    Returns:
        One row per variant: variant, description, weighted_r2 (mean over repeats), std,
        delta (vs baseline), better (True/False; None with a single repeat), fold_best
        (the biased fold-best-epoch OOF, mean), minutes, and per-target R² (means).
    """
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ConfigError(
            f"unknown ablation variant(s) {unknown}; choose from {', '.join(VARIANTS)}"
        )
    if repeats < 1:
        raise ConfigError(f"repeats must be at least 1, got {repeats}")
    # Reused variants need the run they read from; the baseline anchors the deltas.
    todo = list(
        dict.fromkeys(
            ["baseline", *names, *(VARIANTS[n].reuse for n in names if VARIANTS[n].reuse)]
        )
    )
    base_dict = config_to_dict(base)
    results: dict[str, dict] = {}
    phase1_runs: dict[str, Path] = {}
    for name in todo:
        variant = VARIANTS[name]
        if variant.reuse:
            continue
        cfg = load_config(BiomassConfig, overrides=variant.overrides, base=base_dict)
        console.rule(f"[bold]ablation: {name}[/] — {variant.description}")
        runs, minutes = [], 0.0
        for r, rcfg in enumerate(repeat_configs(cfg, repeats)):
            run_dir = out / name if repeats == 1 else out / name / f"repeat{r}"
            d = config_to_dict(rcfg)
            key = repr((d["phase1"], d["data"], d["train"]))
            start = time.perf_counter()
            reuse = phase1_runs.get(key) if rcfg.needs_phase1 else None
            result = train(data_dir, run_dir, rcfg, phase1_from=reuse)
            if rcfg.needs_phase1:
                phase1_runs.setdefault(key, run_dir)
            metrics = read_yaml(run_dir / "metrics.json") or {}
            seconds = metrics.get("fit", {}).get("seconds", time.perf_counter() - start)
            minutes += seconds / 60.0
            runs.append(result)
        results[name] = {
            "scores": [x.oof_r2 for x in runs],
            "no_tta": [x.oof_r2_no_tta for x in runs],
            "fold_best": [getattr(x, "oof_r2_fold_best", float("nan")) for x in runs],
            "per_target": {
                k: float(np.mean([x.per_target[k] for x in runs])) for k in runs[0].per_target
            },
            "minutes": minutes,
        }
    rows = []
    anchor, anchor_std = mean_std(results["baseline"]["scores"])
    for name in dict.fromkeys(["baseline", *names]):
        variant = VARIANTS[name]
        if variant.reuse:
            src = results[variant.reuse]
            scores, fold_best, minutes, per_target = src["no_tta"], [], 0.0, {}
        else:
            src = results[name]
            scores, fold_best = src["scores"], src["fold_best"]
            minutes, per_target = src["minutes"], src["per_target"]
        score, std = mean_std(scores)
        delta = score - anchor
        # Repeat r uses the same folds in every variant, so the per-repeat differences
        # cancel the fold-draw noise that dominates `std`: their spread is the paired sd.
        paired = [a - b for a, b in zip(scores, results["baseline"]["scores"], strict=True)]
        delta_sd = mean_std(paired)[1]
        better = None
        if repeats > 1 and name != "baseline":
            better = bool(delta > 2.0 * float(np.hypot(std, anchor_std)))
        row = {
            "variant": name,
            "description": variant.description,
            "weighted_r2": score,
            "std": std,
            "delta": delta,
            "delta_sd": delta_sd,
            "better": better,
            "fold_best": mean_std(fold_best)[0] if fold_best else float("nan"),
            "minutes": minutes,
        }
        row.update({k.removesuffix("_g"): v for k, v in per_target.items()})
        rows.append(row)
    columns = ["variant", "description", "weighted_r2", "std", "delta", "delta_sd", "better"]
    columns += ["fold_best", "minutes"]
    columns += [c for c in rows[0] if c not in columns]  # then the per-target R² columns
    table_rows = [
        {**row, "better": {None: "–", True: "yes", False: "no"}[row["better"]]} for row in rows
    ]
    body = (
        f"Out-of-fold weighted R² on identical date-grouped folds ({base.train.folds} folds, "
        f"{repeats} repeat(s), fold seeds {base.train.seed}..{base.train.seed + repeats - 1}); "
        "`weighted_r2` and `std` are the mean and sample std over repeats of the honest "
        f"score (selection `{base.phase2.selection}`), `fold_best` the biased score with "
        "each fold's own best epoch. Δ is against `baseline`; `better` is yes only when "
        "Δ > 2·sqrt(std² + std_baseline²) (needs ≥ 2 repeats). `delta_sd` is the sample std "
        "of the per-repeat Δ (repeat r has the same folds in every variant, so this paired "
        "spread excludes the fold-draw noise in `std`). `minutes` is the wall time "
        "of the last `train` calls of that variant (a resumed or reused run only counts "
        "what was left to do).\n\n" + markdown_table(table_rows, columns)
    )
    write_report(out / "ablation.md", "Biomass ablation", [("Results", body)])
    return rows
