"""Using a finished MIL run: predictions with per-tile output and heatmaps, and evaluation."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fieldvision.config import apply_runtime_overrides
from fieldvision.console import console
from fieldvision.data.mil import BagStore
from fieldvision.errors import DataError, RunError
from fieldvision.pipelines.mil.config import MILConfig
from fieldvision.pipelines.mil.engine import Predictor
from fieldvision.pipelines.mil.fit import RUN_KIND
from fieldvision.pipelines.mil.inputs import bag_spec, read_samples
from fieldvision.runs import RunDir
from fieldvision.schemas.mil import prediction_tables, write_predictions

__all__ = ["MILRun", "evaluate", "load_run", "predict"]


@dataclass
class MILRun:
    """A finished MIL run, loaded."""

    run: RunDir
    cfg: MILConfig
    classes: tuple[str, ...]
    negative: int | None
    experts: list
    scouters: list
    students: list  # distilled glance experts (empty when the run has none)


def load_run(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> MILRun:
    """Open a finished MIL run with its fold experts and scouters.

    Args:
        path: Run directory.
        overrides: ``--set`` values of runtime fields (glance budget, device, ...).

    Raises:
        RunError: Not a finished MIL run, or missing / damaged weights.
    """
    run, cfg = RunDir.open(path, RUN_KIND, MILConfig)
    cfg = apply_runtime_overrides(cfg, overrides)
    try:
        info = json.loads((run.path / "classes.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise RunError(f"{run.path}: missing or unreadable classes.json") from None
    classes = tuple(info["classes"])
    negative = classes.index(info["negative"]) if info.get("negative") in classes else None
    splits = run.read_metrics().get("fit", {}).get("splits") or []
    if not splits:
        raise RunError(f"{run.path}: metrics.json lists no trained splits", hint="retrain")
    experts = [run.load_model(f"expert/{s}/model.safetensors") for s in splits]
    scouters = [run.load_model(f"scouter/{s}/model.safetensors") for s in splits]
    raw = [s for s in splits if not (run.path / "scouter" / s / "calibration.json").is_file()]
    if raw and cfg.scouter.calibrate:  # a run trained before calibration existed
        console.print(
            f"[yellow]{run.path}: the scouter of {', '.join(raw)} is not calibrated, so the "
            "glance stop rule reads raw scores; re-run `fieldvision mil train` with the same "
            "--out to calibrate it (nothing is retrained)[/]"
        )
    students = []
    if all((run.path / "student" / s / "model.safetensors").is_file() for s in splits):
        students = [run.load_model(f"student/{s}/model.safetensors") for s in splits]
    return MILRun(run, cfg, classes, negative, experts, scouters, students)


def _store(images: str | os.PathLike[str], loaded: MILRun, labelled: bool) -> BagStore:
    samples = read_samples(images, loaded.cfg)
    if labelled:
        if samples.labels is None:
            raise DataError(
                f"{samples.source}: evaluation needs labels (a label column or folders)"
            )
        samples.label_ids(loaded.classes)  # labels must be classes of the run
    # Images are validated as inference decodes them: nothing is written before all passed.
    return BagStore(samples, bag_spec(loaded.cfg), max_pixels=loaded.cfg.data.max_image_pixels)


def predict(
    run: str | os.PathLike[str],
    images: str | os.PathLike[str],
    out: str | os.PathLike[str],
    mode: str = "glance",
    budget: float | None = None,
    heatmaps: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
    progress: bool = True,
) -> pd.DataFrame:
    """Predict images; write ``out`` (one row per image) and ``tiles.csv`` beside it.

    ``out`` columns: ``image, label, prob_<class>..., tiles, ms``; ``tiles.csv``:
    ``image, row, col, x1, y1, x2, y2, scouter, selected, expert_<class>...`` (expert tile
    probabilities, empty where the expert did not run the tile in glance mode).

    Raises:
        DataError / RunError: Bad images or run; nothing is written then.
    """

    from fieldvision.report.mil import HeatmapExample, write_heatmap_png

    sets = list(overrides) + ([f"glance.budget={budget}"] if budget is not None else [])
    loaded = load_run(run, sets)
    store = _store(images, loaded, labelled=False)
    g = loaded.cfg.glance
    predictor = Predictor(loaded.experts, loaded.scouters, loaded.negative,
                          loaded.cfg.train.device, loaded.students)  # fmt: skip
    results = predictor.run(store, mode, g.budget, g.min_tiles, g.stop_entropy, progress)
    cols_n = loaded.cfg.data.grid[1]
    rows, tile_rows = prediction_tables(store.samples.names, results, loaded.classes, cols_n)
    table = write_predictions(out, rows, tile_rows)
    if heatmaps is not None:
        for i, r in enumerate(results):
            scores = np.nan_to_num(r.expert if mode == "full" else r.scouter, nan=0.0)
            ex = HeatmapExample(_resized(store, i), r.boxes, scores, r.selected,
                                f"{store.samples.names[i]}: {rows[i]['label']}")  # fmt: skip
            stem = Path(store.samples.names[i]).with_suffix("").as_posix().replace("/", "__")
            write_heatmap_png(Path(heatmaps) / f"{stem}.png", ex)
    return table


def _resized(store: BagStore, i: int) -> np.ndarray:
    """Image `i` as uint8 RGB at the size its tiles were cut from."""
    x = store.load_image(i)
    return (x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def evaluate(
    run: str | os.PathLike[str],
    data: str | os.PathLike[str],
    budget: float | None = None,
    overrides: Sequence[str] = (),
    progress: bool = True,
    report: bool = True,
) -> dict[str, Any]:
    """Full vs glance on a labelled dataset; ``metrics.json`` ("evaluate") and report.

    Returns:
        ``{"full": metrics, "glance": metrics, "curve": rows, "line": "key=value ..."}``.

    Raises:
        DataError: Unlabelled data or labels that are not classes of the run.
    """
    from fieldvision.pipelines.mil.scoring import evaluate_store

    sets = list(overrides) + ([f"glance.budget={budget}"] if budget is not None else [])
    loaded = load_run(run, sets)
    store = _store(data, loaded, labelled=True)
    result = evaluate_store(loaded.experts, loaded.scouters, store, loaded.classes,
                            loaded.negative, loaded.cfg, progress=progress,
                            students=loaded.students)  # fmt: skip
    full, glance = result["full"], result["glance"]
    line = (
        f"full_macro_f1={full['macro_f1']:.4f} full_auc={full['auc']:.4f} "
        f"full_ms={full['ms_per_image']:.1f} glance_macro_f1={glance['macro_f1']:.4f} "
        f"glance_auc={glance['auc']:.4f} glance_ms={glance['ms_per_image']:.1f} "
        f"glance_tiles={glance['tile_fraction']:.3f}"
    )
    public = {"full": full, "glance": glance, "curve": result["curve"], "line": line,
              "data": str(data)}  # fmt: skip
    loaded.run.update_metrics("evaluate", public)
    if report:
        _write_report(loaded, store, result)
    return public


def _write_report(loaded: MILRun, store: BagStore, result: dict[str, Any]) -> None:
    from fieldvision.report.mil import HeatmapExample, write_mil_report

    labels = store.samples.label_ids(loaded.classes)
    examples = []
    per_class: dict[int, int] = {}
    for i, (f, g) in enumerate(zip(result["_results"]["full"], result["_results"]["glance"],
                                   strict=True)):  # fmt: skip
        c = int(labels[i])
        if per_class.get(c, 0) >= 3:
            continue
        per_class[c] = per_class.get(c, 0) + 1
        examples.append(HeatmapExample(
            _resized(store, i), f.boxes, np.nan_to_num(f.expert, nan=0.0), g.selected,
            f"{loaded.classes[c]} → {result['_pred']['glance'][i]}",
            mask=result["_masks"][i], label=c,
        ))  # fmt: skip
    write_mil_report(loaded.run.path, {"full": result["full"], "glance": result["glance"]},
                     result["curve"], examples, loaded.classes)  # fmt: skip
