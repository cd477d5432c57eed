"""Parity on real images: ONNX Runtime vs PyTorch on batches of the user's own data.

`export_model` always checks parity on random inputs at two batch sizes (it needs no data
and catches a broken graph). Random inputs can hide an op whose error grows only on real
statistics (a normalisation over real colours, an attention softmax that saturates), so
every model is also checked on real images, read and preprocessed exactly as its pipeline
reads them (`fieldvision.export.calibration`), at two batch sizes: 1 and the first full
feed (for a MIL expert the batch axis is the tile axis: 1 tile and a whole bag). A model
beyond the FP32 tolerance fails the export, which then leaves nothing behind. The figures
are recorded in the model's manifest entry as ``parity_real``.

Which images: ``--parity-data`` when given; with ``--int8`` the ``--calibration`` images;
otherwise the run's own training data, found through the location ``run.json`` records
(`RunDir.data_path`). When that location is unrecorded (an older run), gone or unreadable,
the export falls back to random inputs and says why (`run_data_images`). Every manifest
entry records what was checked: ``parity_inputs`` (``"real"`` or ``"random"``) and
``parity_source`` (the folder or CSV, or None), plus ``parity_note`` with the reason for a
fallback.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fieldvision.errors import DataError, RunError
from fieldvision.export.calibration import ImageSet, biomass_meta, model_feeds

__all__ = ["check_real_parity", "export_run_with_parity", "feed_parity", "run_data_images"]

#: How to give images when the run's own cannot be used (the fallback warning says it).
PARITY_HINT = "pass --parity-data DIR_OR_CSV to check parity on real images"


def _slice(feed: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    return {k: np.ascontiguousarray(v[:n]) for k, v in feed.items()}


def feed_parity(
    model: torch.nn.Module,
    spec: Any,
    session: Any,
    feeds: list[dict[str, np.ndarray]],
    *,
    rtol: float,
    atol: float,
    name: str,
) -> dict[str, Any]:
    """Compare torch and ONNX Runtime on `feeds` (each ``{input name: array}``).

    Raises:
        RunError: An output beyond ``rtol``/``atol`` (naming model, output and batch size).
    """
    from fieldvision.export.onnx import _Graph, _Graph2

    graph = (_Graph if len(spec.inputs) == 1 else _Graph2)(model, spec).eval()
    worst_abs, worst_rel, sizes = 0.0, 0.0, []
    for feed in feeds:
        tensors = tuple(torch.from_numpy(np.asarray(feed[n], np.float32)) for n, _ in spec.inputs)
        with torch.no_grad():
            expected = [t.float().numpy() for t in graph(*tensors)]
        got = session.run(spec.outputs, {n: feed[n] for n, _ in spec.inputs})
        b = int(tensors[0].shape[0])
        sizes.append(b)
        for out, e, g in zip(spec.outputs, expected, got, strict=True):
            diff = np.abs(e.astype(np.float64) - g.astype(np.float64))
            worst_abs = max(worst_abs, float(diff.max(initial=0.0)))
            worst_rel = max(worst_rel, float((diff / (np.abs(e) + atol)).max(initial=0.0)))
            if not np.allclose(g, e, rtol=rtol, atol=atol):
                raise RunError(
                    f"parity on real images failed for {name} output {out!r} at batch {b}: "
                    f"max |onnx - torch| = {float(diff.max()):.3g} beyond rtol={rtol}, "
                    f"atol={atol}"
                )
    return {"batches": sizes, "max_abs": worst_abs, "max_rel": worst_rel,
            "rtol": rtol, "atol": atol, "passed": True}  # fmt: skip


def check_real_parity(
    staging: Path, manifest: dict[str, Any], *, run_dir: Any, cfg: Any, images: ImageSet
) -> None:
    """The `export_run` hook: real-image parity of every exported model (see module doc)."""
    from fieldvision.export.accuracy import session
    from fieldvision.export.onnx import ATOL, RTOL, _image_size, export_spec

    models = manifest["models"]
    phase1 = [session(staging / e["file"]) for e in models.values()
              if e["registry_name"] == "biomass_phase1"]  # fmt: skip
    needs_meta = any(i["name"] == "meta" for e in models.values() for i in e["inputs"])
    # Phase 2 is conditioned on what the FP32 Phase-1 ensemble predicts for these images.
    meta = biomass_meta(phase1, images, cfg.train.tta) if needs_meta else None
    kind = manifest["run"]["kind"]
    for name, entry in models.items():
        rel = entry["source"].rsplit("/", 1)[0]
        model = run_dir.load_model(entry["source"]).eval().cpu()
        spec = export_spec(model, _image_size(kind, cfg, rel))
        feeds = model_feeds(entry, images, meta)
        if not feeds:
            raise RunError(f"{name}: no real inputs could be built from {images.source}")
        first = feeds[0]
        chosen = [_slice(first, 1)] + ([first] if len(next(iter(first.values()))) > 1 else [])
        entry["parity_real"] = {
            **feed_parity(model, spec, session(staging / entry["file"]), chosen,
                          rtol=RTOL, atol=ATOL, name=name),
            "images": images.describe(),
        }  # fmt: skip
        entry["parity_inputs"], entry["parity_source"] = "real", images.source


def run_data_images(run_dir: Any, kind: str, cfg: Any, n: int) -> tuple[ImageSet | None, str]:
    """Up to `n` images of the training data a run recorded, read as its pipeline reads them.

    Returns:
        ``(images, "")``, or ``(None, reason)`` when the run records no data location (runs
        trained before it was recorded), the location is gone, or no image could be read
        there; the caller then checks parity on random inputs only.
    """
    from fieldvision.export.calibration import load_image_set

    path = run_dir.data_path
    if path is None:
        return None, "the run does not record its training data (trained by an older version)"
    if not path.exists():
        return None, f"the run's training data {path} no longer exists"
    try:
        return load_image_set(path, kind, cfg, n), ""
    except (DataError, OSError) as exc:  # moved, emptied or rewritten since training
        detail = exc.message if isinstance(exc, DataError) else str(exc)
        return None, f"no images could be read from the run's training data {path} ({detail})"


def _mark_random(staging: Path, manifest: dict[str, Any], *, note: str) -> None:
    """The `export_run` hook of the fallback: say in every entry why parity is random-only."""
    for entry in manifest["models"].values():
        entry["parity_note"] = note


def export_run_with_parity(
    run: str | Path,
    out: str | Path,
    parity_data: str | Path | None = None,
    *,
    n: int = 16,
    opset: int = 18,
) -> dict[str, Any]:
    """`export_run` plus parity on `n` real images (see the module doc for which).

    Args:
        run: A finished run.
        out: The export folder (see `export_run`).
        parity_data: Folder or CSV of images; None: the run's own training data, or random
            inputs only when that cannot be read (``parity_note`` in the manifest says why).
        n: Images to check at most.
        opset: ONNX opset.

    Returns:
        The manifest (also written to ``out/manifest.json``).

    Raises:
        DataError: `parity_data` given but holds no usable image (validated before anything
            is exported; a failure leaves no `out`).
        RunError: See `export_run`, or failed parity on the real images.
    """
    import functools

    from fieldvision.export.calibration import load_image_set
    from fieldvision.export.onnx import _config_class, export_run
    from fieldvision.runs import RunDir

    kind = RunDir.kind_of(Path(run))
    run_dir, cfg = RunDir.open(run, kind, _config_class(kind))
    if parity_data is not None:
        images: ImageSet | None = load_image_set(parity_data, kind, cfg, n)
    else:
        images, note = run_data_images(run_dir, kind, cfg, n)
        if images is None:
            return export_run(run, out, opset, extend=functools.partial(_mark_random, note=note))
    hook = functools.partial(check_real_parity, run_dir=run_dir, cfg=cfg, images=images)
    return export_run(run, out, opset, extend=hook)
