"""Repeated cross-validation: the same pipeline under R fold seeds (and model seeds).

With ~30 sampling dates the date-grouped folds themselves move the out-of-fold score by
more than most design changes, so one k-fold run cannot tell two variants apart. Repeat
``r`` trains with ``train.seed = seed + r``, which changes both the fold assignment and
every model seed. Layout of ``--out`` with R > 1 (with R = 1, ``--out`` is the run itself,
as before)::

    out/repeat{r}/   one complete, resumable run directory per repeat
    out/repeats.json per-repeat scores, mean and std (sample std, ddof=1)
    out/label_noise.csv  per-image OOF residuals over the repeats, images flagged as
                     likely label noise (`fieldvision.pipelines.biomass.noise`)
    out/repeats.md   the scores per repeat and the label-noise section
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fieldvision.config import config_to_dict, load_config
from fieldvision.errors import ConfigError
from fieldvision.io import write_json
from fieldvision.pipelines.biomass.config import BiomassConfig
from fieldvision.pipelines.biomass.fit import TrainResult, train
from fieldvision.pipelines.biomass.noise import (
    label_noise_section,
    label_noise_table,
    oof_arrays,
    write_label_noise,
)
from fieldvision.report.markdown import markdown_table, write_report

__all__ = ["REPEATS_FILE", "RepeatedResult", "mean_std", "repeat_configs", "train_repeats"]

REPEATS_FILE = "repeats.json"


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std (ddof=1; 0 for a single value)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return float("nan"), float("nan")
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


@dataclass
class RepeatedResult:
    """R runs of one configuration."""

    runs: list[TrainResult]
    seeds: list[int]

    def _stat(self, attr: str) -> tuple[float, float]:
        return mean_std([getattr(r, attr) for r in self.runs])

    @property
    def oof_r2(self) -> tuple[float, float]:
        """Honest OOF weighted R²: (mean, std) over repeats."""
        return self._stat("oof_r2")

    @property
    def oof_r2_fold_best(self) -> tuple[float, float]:
        """OOF weighted R² with each fold's own best epoch (biased): (mean, std)."""
        return self._stat("oof_r2_fold_best")

    @property
    def oof_r2_no_tta(self) -> tuple[float, float]:
        return self._stat("oof_r2_no_tta")

    @property
    def per_target(self) -> dict[str, float]:
        """Mean per-target R² over repeats."""
        keys = self.runs[0].per_target
        return {k: float(np.mean([r.per_target[k] for r in self.runs])) for k in keys}

    @property
    def seconds(self) -> float:
        return float(sum(r.seconds for r in self.runs))

    @property
    def selection(self) -> str:
        return self.runs[0].selection

    def summary(self) -> dict:
        """JSON-able record (what ``repeats.json`` holds)."""
        out: dict = {"repeats": len(self.runs), "seeds": self.seeds}
        for name in ("oof_r2", "oof_r2_fold_best", "oof_r2_no_tta"):
            mean, std = getattr(self, name)
            out[name] = {"mean": mean, "std": std, "values": [getattr(r, name) for r in self.runs]}
        out["selection"] = self.selection
        out["per_target_mean"] = self.per_target
        out["runs"] = [str(r.run_dir) for r in self.runs]
        return out


def repeat_configs(cfg: BiomassConfig, repeats: int) -> list[BiomassConfig]:
    """One config per repeat: ``train.seed`` = base seed + r (folds and model seeds)."""
    if repeats < 1:
        raise ConfigError(f"repeats must be at least 1, got {repeats}")
    base = config_to_dict(cfg)
    seed = cfg.train.seed
    return [
        load_config(BiomassConfig, overrides=[f"train.seed={seed + r}"], base=base)
        for r in range(repeats)
    ]


def train_repeats(
    data_dir: str | Path,
    out: str | Path,
    cfg: BiomassConfig,
    repeats: int = 1,
    phase1_from: Sequence[Path | None] | None = None,
) -> RepeatedResult:
    """Train `repeats` runs (``out`` itself when 1, else ``out/repeat{r}``); resumable.

    Args:
        phase1_from: Per repeat, a finished run whose Phase 1 can be reused (ablations).
    """
    out = Path(out)
    configs = repeat_configs(cfg, repeats)
    dirs = [out] if repeats == 1 else [out / f"repeat{r}" for r in range(repeats)]
    reuse = list(phase1_from) if phase1_from is not None else [None] * repeats
    runs = [
        train(data_dir, run_dir, c, phase1_from=p)
        for run_dir, c, p in zip(dirs, configs, reuse, strict=True)
    ]
    result = RepeatedResult(runs, [c.train.seed for c in configs])
    if repeats > 1:
        write_json(out / REPEATS_FILE, result.summary())
        _write_repeats_report(out, result)
    return result


def _write_repeats_report(out: Path, result: RepeatedResult) -> None:
    """``label_noise.csv`` across the repeats and ``repeats.md`` (scores + label noise)."""
    ids, y, preds = oof_arrays([r.run_dir for r in result.runs])
    noise = label_noise_table(ids, y, preds)
    write_label_noise(out, noise)
    rows = [
        {
            "seed": seed,
            "oof_r2": r.oof_r2,
            "fold_best": r.oof_r2_fold_best,
            "no_tta": r.oof_r2_no_tta,
        }
        for seed, r in zip(result.seeds, result.runs, strict=True)
    ]
    mean, std = result.oof_r2
    excluded = result.runs[0].extra.get("n_excluded", 0)
    body = (
        f"OOF weighted R² {mean:.4f} ± {std:.4f} (mean ± sample std over {len(rows)} "
        f"repeats, selection `{result.selection}`); {len(ids)} images scored"
        + (f", {excluded} excluded (data.exclude)" if excluded else "")
        + ".\n\n"
        + markdown_table(rows)
    )
    sections = [("Scores", body), ("Label noise", label_noise_section(noise, len(rows)))]
    write_report(out / "repeats.md", "Biomass repeated CV", sections)
