"""Biomass fold-ensemble prediction with ONNX Runtime, in the Kaggle submission format.

The same steps as `fieldvision.pipelines.biomass.predict`, in NumPy:

1. ``test.csv`` and its images are validated and every photo is cleaned once through the
   same `ImageCache` (same cleaning code, same cache folder: a cache filled by the torch
   runtime serves this one and the other way round);
2. images are ``uint8 / 255`` batches of ``data.batch_size``; the flip TTA views (identity,
   h-flip, v-flip) are mirrored batches, as `fieldvision.inference.View` mirrors them;
3. with FiLM, ``meta`` is the mean over Phase-1 folds of each fold's view-averaged outputs
   (`film_meta`), exactly how Phase 2 was trained; Phase 2 uses ``--tta`` (default the
   run's), Phase 1 always the run's setting;
4. targets are the mean over folds of the mean over views, clipped at 0 g, and written as
   ``sample_id,target`` in ``test.csv`` order (`submission_for`).

No torch import: the models are the export's ONNX files (`fieldvision.deploy.session`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fieldvision.data.biomass.tables import check_images_exist, read_test_table
from fieldvision.data.cache import ImageCache
from fieldvision.deploy.session import Deployment, open_deployment
from fieldvision.io import write_csv
from fieldvision.ops.cleaning import CleanConfig
from fieldvision.schemas.biomass import submission_for

__all__ = ["film_meta", "predict", "predict_targets"]

#: Phase-1 outputs that condition FiLM, in `fieldvision.pipelines.biomass.meta.FILM_KEYS`
#: order: month (sin, cos), NDVI and height (z units).
FILM_OUTPUTS = ("month", "ndvi", "height")


@dataclass
class _Test:
    table: pd.DataFrame
    image_ids: list[str]
    paths: list[Path]
    cache: ImageCache


def film_meta(outputs: dict[str, np.ndarray]) -> np.ndarray:
    """float32[N, 4] FiLM conditioning from Phase-1 outputs (as the torch pipeline's)."""
    month = outputs["month"]
    stacked = [month[:, 0], month[:, 1], outputs["ndvi"], outputs["height"]]
    return np.stack(stacked, axis=1).astype(np.float32)


def _load_test(data_dir: Path, dep: Deployment) -> _Test:
    """``test.csv`` validated and every image cleaned once (`load_test_data`'s steps)."""
    table = read_test_table(data_dir / "test.csv")
    check_images_exist(table, data_dir, "test")
    images = table.drop_duplicates("image_id")[["image_id", "image_path"]].reset_index(drop=True)
    paths = [data_dir / p for p in images["image_path"]]
    cache_dir = dep.setting("data.cache_dir")
    root = Path(cache_dir) if cache_dir else data_dir / ".fieldvision_cache"
    clean = CleanConfig.model_validate(dep.setting("data.clean"))
    max_pixels = int(dep.setting("data.max_image_pixels"))
    cache = ImageCache(root, clean, memory_items=2048, max_pixels=max_pixels)
    cache.warm(paths, progress=bool(dep.setting("train.progress")))
    return _Test(table, [str(i) for i in images["image_id"]], paths, cache)


def _views(tta: bool) -> list[tuple[bool, bool]]:
    """``(hflip, vflip)`` of flip TTA, identity first (`flip_views` with ``vertical=True``)."""
    return [(False, False), (True, False), (False, True)] if tta else [(False, False)]


def _flip(batch: np.ndarray, hflip: bool, vflip: bool) -> np.ndarray:
    axes = [a for a, on in ((-1, hflip), (-2, vflip)) if on]
    return np.ascontiguousarray(np.flip(batch, axis=axes)) if axes else batch


def _run_folds(
    dep: Deployment,
    phase: str,
    test: _Test,
    views: Sequence[tuple[bool, bool]],
    meta: np.ndarray | None,
) -> list[dict[str, np.ndarray]]:
    """Per fold: ``{output: float32[N, ...]}`` averaged over `views`."""
    batch = int(dep.setting("data.batch_size"))
    outs = []
    for k in range(int(dep.setting("train.folds"))):
        session = dep.session(f"{phase}/fold{k}")
        names = [o.name for o in session.get_outputs()]
        takes_meta = any(i.name == "meta" for i in session.get_inputs())
        chunks: dict[str, list[np.ndarray]] = {n: [] for n in names}
        for start in range(0, len(test.paths), batch):
            items = [test.cache.get(p) for p in test.paths[start : start + batch]]
            images = np.stack(items).transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255)
            feed: dict[str, Any] = {}
            if takes_meta:
                feed["meta"] = np.ascontiguousarray(meta[start : start + batch], np.float32)
            runs = [session.run(names, {**feed, "image": _flip(images, h, v)}) for h, v in views]
            for j, name in enumerate(names):
                chunks[name].append(np.mean([r[j] for r in runs], axis=0))
        outs.append({n: np.concatenate(parts) for n, parts in chunks.items()})
    return outs


def predict_targets(dep: Deployment, test: _Test, tta: bool | None = None) -> np.ndarray:
    """float[N, 5] grams of the test images: fold ensemble, TTA, clipped at 0."""
    run_tta = bool(dep.setting("train.tta"))
    meta = None
    if bool(dep.setting("phase2.use_film")):  # `BiomassConfig.needs_phase1`
        per_fold = _run_folds(dep, "phase1", test, _views(run_tta), None)
        meta = np.mean([film_meta(o) for o in per_fold], axis=0).astype(np.float32)
    views = _views(run_tta if tta is None else tta)
    per_fold = _run_folds(dep, "phase2", test, views, meta)
    preds = np.mean([o["targets"] for o in per_fold], axis=0)
    return np.clip(preds, 0.0, None)


def predict(
    run_dir: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    out_csv: str | os.PathLike[str],
    tta: bool | None = None,
    overrides: Sequence[str] = (),
    runtime: str = "onnx",
    onnx: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """``fieldvision biomass predict --runtime onnx|onnx-int8``.

    Args:
        run_dir: A finished biomass run.
        data_dir: Kaggle-layout directory with ``test.csv`` and ``test/``.
        out_csv: The submission, written atomically after every input was validated.
        tta: Override the run's Phase-2 TTA.
        overrides: ``--set`` values of runtime fields.
        runtime: ``onnx`` (FP32) or ``onnx-int8``.
        onnx: The export folder (default ``RUN/export``).

    Returns:
        The submission frame (``sample_id, target``), rows in ``test.csv`` order.

    Raises:
        RunError: See `open_deployment`; DataError: bad table or images.
    """
    dep = open_deployment(run_dir, "biomass", runtime, onnx, overrides)
    test = _load_test(Path(data_dir), dep)
    preds = predict_targets(dep, test, tta)
    submission = submission_for(test.table, test.image_ids, preds)
    write_csv(out_csv, submission)
    return submission
