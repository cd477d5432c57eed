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

from fieldvision.config import config_to_dict, load_config
from fieldvision.console import console
from fieldvision.errors import ConfigError
from fieldvision.io import read_yaml
from fieldvision.pipelines.biomass.config import BiomassConfig
from fieldvision.pipelines.biomass.fit import train
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
    "no_aux": Variant(
        "full pipeline, Phase 1 without species/state heads",
        (*_FULL, "phase1.use_species=false", "phase1.use_state=false"),
    ),
}


def run_ablation(data_dir: Path, out: Path, base: BiomassConfig, names: list[str]) -> list[dict]:
    """Train every named variant and write ``out/ablation.md``.

    Returns:
        One row per variant: variant, description, weighted_r2, delta (vs baseline), minutes,
        and per-target R².
    """
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ConfigError(
            f"unknown ablation variant(s) {unknown}; choose from {', '.join(VARIANTS)}"
        )
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
        run_dir = out / name
        key = repr((config_to_dict(cfg)["phase1"], config_to_dict(cfg)["data"]))
        console.rule(f"[bold]ablation: {name}[/] — {variant.description}")
        start = time.perf_counter()
        result = train(
            data_dir, run_dir, cfg, phase1_from=phase1_runs.get(key) if cfg.needs_phase1 else None
        )
        if cfg.needs_phase1:
            phase1_runs.setdefault(key, run_dir)
        metrics = read_yaml(run_dir / "metrics.json")
        results[name] = {
            "weighted_r2": result.oof_r2,
            "no_tta": result.oof_r2_no_tta,
            "per_target": result.per_target,
            "minutes": metrics.get("fit", {}).get("seconds", time.perf_counter() - start) / 60.0,
        }
    rows = []
    anchor = results["baseline"]["weighted_r2"]
    for name in dict.fromkeys(["baseline", *names]):
        variant = VARIANTS[name]
        if variant.reuse:
            src = results[variant.reuse]
            score, minutes, per_target = src["no_tta"], 0.0, {}
        else:
            score, minutes, per_target = (
                results[name]["weighted_r2"],
                results[name]["minutes"],
                results[name]["per_target"],
            )
        row = {
            "variant": name,
            "description": variant.description,
            "weighted_r2": score,
            "delta": score - anchor,
            "minutes": minutes,
        }
        row.update({k.removesuffix("_g"): v for k, v in per_target.items()})
        rows.append(row)
    columns = ["variant", "description", "weighted_r2", "delta", "minutes"]
    columns += [c for c in rows[0] if c not in columns]
    body = (
        "Out-of-fold weighted R² on identical date-grouped folds "
        f"({base.train.folds} folds, seed {base.train.seed}); Δ is against `baseline`. "
        "`minutes` is the wall time of the last `train` call of that variant (a resumed or "
        "reused run only counts what was left to do).\n\n" + markdown_table(rows, columns)
    )
    write_report(out / "ablation.md", "Biomass ablation", [("Results", body)])
    return rows
