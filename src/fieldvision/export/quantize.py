"""INT8 post-training quantization of exported models, and its task-level accuracy check.

`quantize_model` turns one FP32 ``.onnx`` into an INT8 copy:

1. ``quant_pre_process`` (ONNX Runtime's shape inference + graph optimisation, which the
   quantizer expects). Symbolic shape inference fails on some dynamo graphs (an ``Expand``
   whose shape it cannot follow, e.g. in GeM pooling); then ONNX shape inference alone is
   used, and if that fails too the FP32 graph goes in as it is. What was used is recorded.
2. Static QDQ quantization (`quantize_static`, `QuantFormat.QDQ`) calibrated with MinMax
   ranges over the reader's feeds: weights int8, symmetric, per output channel;
   activations **uint8** (asymmetric). U8S8 is what ORT's CPU kernels run fastest: on x86
   the int8 GEMM/conv kernels (AVX2 ``VPMADDUBSW``, AVX-512 VNNI ``VPDPBUSD``) multiply
   an unsigned by a signed byte, so S8S8 activations are shifted to u8 at run time.
   Measured here (ORT 1.32, 2 threads, AVX-512 VNNI, batch 8 at 224²): resnet50 85 img/s
   U8S8 vs 31 S8S8, convnext_tiny 33 vs 17, with the same cosine to FP32 (0.9999). The
   default set of quantized op types is kept: restricting it to Conv/MatMul/Gemm leaves
   FP32 islands between them and ran 3x slower. (On AVX2 CPUs without VNNI, U8S8 can
   saturate; pass ``reduce_range=True`` there.)
3. A smoke run of the INT8 session on one feed (finite outputs). If step 2 or 3 fails,
   dynamic quantization (`quantize_dynamic`, int8 weights, activations quantized on the
   fly) is used instead and the reason is recorded.

The copy is written atomically beside the FP32 file; its record carries its sha256, so
`verify_export` refuses an edited INT8 file as it does an FP32 one.

`export_run_int8` is ``fieldvision export --int8``: it validates the run, the calibration
images and the validation images *before* anything is exported, exports every model (FP32,
parity-checked), quantizes each one on calibration inputs built as the pipeline builds
them (`fieldvision.export.calibration`), then runs FP32 and INT8 ONNX side by side on the
evaluation images and records, per model and per model group (the fold ensemble):

* the task metric when the evaluation images carry labels, computed with the pipeline's own
  metric code: biomass Phase 2 weighted R² (`weighted_r2`, folds averaged and clipped at 0
  as predict does), re-ID mAP (`evaluate_ranking`, every image queries the others, flip
  TTA), MIL expert macro-F1 (`classification_metrics`, full tiling, the expert's own
  pooling run in torch over the ONNX tile logits and features);
* output agreement for every model: max / mean absolute difference, cosine similarity, and
  for classifier outputs the top-1 agreement.

Biomass Phase 2 with FiLM is evaluated as it would be deployed: the INT8 Phase 2 gets its
``meta`` from the INT8 Phase-1 ensemble, the FP32 one from the FP32 ensemble, so the
figure includes both models' quantization error.

Which labelled images: ``validation`` (``--validation DIR_OR_CSV``) when given (it must
carry labels); else the calibration images when they carry labels (recorded as
``same_as_calibration``: the ranges were fit on them, which flatters INT8 a little); else
agreement only. The run itself cannot be asked: ``run.json`` records a fingerprint of the
training table (name and hash), not where it lives.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from fieldvision.errors import DataError, RunError
from fieldvision.export.calibration import (
    FeedReader,
    ImageSet,
    biomass_meta,
    load_image_set,
    model_feeds,
    run_views,
    tta_views,
)
from fieldvision.io import atomic_path

__all__ = ["agreement", "evaluate_int8", "export_run_int8", "quantize_model"]

#: Outputs whose arg-max is a decision (class logits, the scouter's tile map).
CLASSIFIER_OUTPUTS = frozenset({"species", "state", "tile_logits", "importance"})
#: Evaluation images used at most (chosen like the calibration images).
MAX_VALIDATION = 256


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the quantizer's chatter (per-tensor ``logging.warning`` on the root logger,
    e.g. "Axis 1 is out-of-range" for rank-1 LayerNorm weights it then quantizes per
    tensor, and its progress prints)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"[:300]


def _preprocess(fp32: Path, pre: Path) -> str:
    """Write the quantizer's input to `pre`; return what was done (for the record)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    attempts = [
        ("quant_pre_process (symbolic shape inference, optimisation)", {}),
        (
            "quant_pre_process (ONNX shape inference only: symbolic failed)",
            {"skip_symbolic_shape": True},
        ),
    ]
    for label, kwargs in attempts:
        try:
            with _quiet():
                quant_pre_process(str(fp32), str(pre), **kwargs)
            return label
        except Exception:  # ORT raises many types; the next attempt decides
            pre.unlink(missing_ok=True)
    pre.write_bytes(fp32.read_bytes())
    return "none (pre-processing failed; the FP32 graph was quantized as exported)"


def _quantize_static(
    pre: Path, out: Path, reader: CalibrationDataReader, reduce_range: bool
) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    with _quiet():
        quantize_static(
            str(pre),
            str(out),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )


def _quantize_dynamic(pre: Path, out: Path, reduce_range: bool) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(str(pre), str(out), weight_type=QuantType.QInt8, reduce_range=reduce_range)


def _session(path: Path) -> Any:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _smoke(path: Path, feed: Mapping[str, np.ndarray] | None) -> None:
    """The INT8 graph loads and (given a feed) gives finite outputs."""
    session = _session(path)
    if feed is None:
        return
    for name, value in zip(
        (o.name for o in session.get_outputs()), session.run(None, dict(feed)), strict=True
    ):
        if not np.all(np.isfinite(value)):
            raise RunError(f"INT8 output {name!r} is not finite")


def quantize_model(
    fp32_path: str | os.PathLike[str],
    int8_path: str | os.PathLike[str],
    reader: CalibrationDataReader | None,
    *,
    method: str = "static",
    reduce_range: bool = False,
) -> dict[str, Any]:
    """Quantize one FP32 ONNX model to INT8 (static QDQ; dynamic as the fallback).

    Args:
        fp32_path: The FP32 model.
        int8_path: Where the INT8 copy goes (written atomically).
        reader: Calibration feeds (needed for ``static``); a `FeedReader` is rewound
            first and its first feed smoke-tests the result.
        method: ``static`` (falls back to ``dynamic`` when it fails) or ``dynamic``.
        reduce_range: 7-bit weights, for AVX2 CPUs without VNNI (see the module).

    Returns:
        The manifest record: ``file``, ``sha256``, ``bytes``, ``method`` (the one used),
        ``fallback_reason`` (why static was not used, or None), ``format``, ``weights``,
        ``activations``, ``preprocess``, ``calibration_feeds``.

    Raises:
        ValueError: Unknown `method`, or ``static`` without a reader.
        RunError: Dynamic quantization failed too; nothing is left at `int8_path`.
    """
    from fieldvision.export.onnx import _sha256

    if method not in ("static", "dynamic"):
        raise ValueError(f"method must be static or dynamic, got {method!r}")
    if method == "static" and reader is None:
        raise ValueError("static quantization needs a calibration reader")
    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    feeds = getattr(reader, "feeds", None)
    check = feeds[0] if feeds else None
    reason = None
    with tempfile.TemporaryDirectory(prefix=".quantize.", dir=int8_path.parent) as tmp:
        pre = Path(tmp) / "pre.onnx"
        preprocess = _preprocess(fp32_path, pre)
        used = method
        if method == "static":
            if hasattr(reader, "rewind"):
                reader.rewind()
            try:
                with atomic_path(int8_path) as out:
                    _quantize_static(pre, out, reader, reduce_range)
                    _smoke(out, check)
            except Exception as exc:  # any failure: try dynamic
                reason = f"static quantization failed ({_first_line(exc)})"
                used = "dynamic"
        if used == "dynamic":
            try:
                with atomic_path(int8_path) as out:
                    _quantize_dynamic(pre, out, reduce_range)
                    _smoke(out, check)
            except Exception as exc:
                raise RunError(
                    f"cannot quantize {fp32_path.name} to INT8: {reason or ''} "
                    f"dynamic quantization failed ({_first_line(exc)})"
                ) from None
    static = used == "static"
    return {
        "file": int8_path.name,
        "sha256": _sha256(int8_path),
        "bytes": int8_path.stat().st_size,
        "method": used,
        "fallback_reason": reason,
        "format": "QDQ" if static else "QOperator (dynamic)",
        "weights": "int8 symmetric " + ("per channel" if static else "per tensor"),
        "activations": (
            "uint8 asymmetric, MinMax-calibrated" if static else "uint8, quantized at run time"
        ),
        "reduce_range": reduce_range,
        "preprocess": preprocess,
        "calibration_feeds": len(feeds) if (static and feeds is not None) else None,
    }


# --------------------------------------------------------------------------- accuracy


def agreement(name: str, fp32: np.ndarray, int8: np.ndarray) -> dict[str, float]:
    """How close an INT8 output is to the FP32 one.

    Args:
        name: Output name (classifier outputs also get ``top1``).
        fp32: float[N, ...] FP32 output.
        int8: float[N, ...] INT8 output, same shape.

    Returns:
        ``max_abs``, ``mean_abs``, ``cosine`` (mean over rows of the per-row cosine for
        [N, D>1] outputs, of the whole vector otherwise) and, for `CLASSIFIER_OUTPUTS`,
        ``top1`` (share of rows whose arg-max agrees; the scouter's over its tile map).
    """
    a = np.asarray(fp32, np.float64).reshape(len(fp32), -1)
    b = np.asarray(int8, np.float64).reshape(len(int8), -1)
    diff = np.abs(a - b)
    if a.shape[1] > 1:
        na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
        cos = float(np.mean((a * b).sum(1) / np.maximum(na * nb, 1e-12)))
    else:
        cos = float((a * b).sum() / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12))
    out = {"max_abs": float(diff.max(initial=0.0)), "mean_abs": float(diff.mean()), "cosine": cos}
    if name in CLASSIFIER_OUTPUTS:
        out["top1"] = float(np.mean(a.argmax(1) == b.argmax(1)))
    return out


def _relative(fp32: float | None, int8: float | None) -> float | None:
    if fp32 is None or int8 is None or not np.isfinite(fp32) or fp32 == 0:
        return None
    return float((int8 - fp32) / abs(fp32))


class _Task:
    """The task prediction and metric of a model kind on labelled images."""

    def __init__(self, run_dir: Any, images: ImageSet, classes: Sequence[str]) -> None:
        self.run_dir = run_dir
        self.images = images
        self.classes = list(classes)

    def prediction(self, entry: Mapping[str, Any], outs: list[dict]) -> np.ndarray | None:
        """What the fold ensemble averages: biomass grams [N, 5] (unclipped), re-ID
        embeddings [N, E], MIL bag probabilities [N, C]; None for other models."""
        kind = entry["registry_name"]
        if kind == "biomass_phase2":
            return np.concatenate([o["targets"] for o in outs])
        if kind == "reid_embedder":
            return np.concatenate([o["embedding"] for o in outs])
        if kind == "mil_expert":
            return self._bag_probs(entry, outs)
        return None

    def _bag_probs(self, entry: Mapping[str, Any], outs: list[dict]) -> np.ndarray:
        import torch

        expert = self.run_dir.load_model(entry["source"]).eval()
        probs = []
        with torch.no_grad():
            for o in outs:  # one bag per image, every tile selected (full tiling)
                lg = torch.from_numpy(o["tile_logits"])[None]
                ft = torch.from_numpy(o["tile_features"])[None]
                bag, _ = expert.pool(lg, ft, torch.ones(lg.shape[:2], dtype=torch.bool))
                probs.append(bag.float().softmax(-1)[0].numpy())
        return np.stack(probs)

    def score(self, kind: str, pred: np.ndarray) -> tuple[str, float | None, str | None]:
        """``(metric name, value or None, note)`` of a prediction."""
        labels = self.images.labels
        if kind == "biomass_phase2":
            from fieldvision.metrics.regression import weighted_r2

            if labels is None:
                return "weighted_r2", None, "no labels"
            return "weighted_r2", weighted_r2(labels, np.clip(pred, 0.0, None)), None
        if kind == "reid_embedder":
            from fieldvision.metrics.retrieval import evaluate_ranking

            if labels is None:
                return "mAP", None, "no identities"
            emb = pred / np.maximum(np.linalg.norm(pred, axis=1, keepdims=True), 1e-12)
            ids = np.asarray(labels)
            cams = np.asarray(self.images.cameras or np.arange(len(ids)))
            try:
                res = evaluate_ranking(1.0 - emb @ emb.T, ids, ids, cams, cams, max_rank=1)
            except DataError as exc:
                return "mAP", None, exc.message
            return "mAP", float(res.mAP), None
        if kind == "mil_expert":
            from fieldvision.metrics.classification import classification_metrics

            if labels is None:
                return "macro_f1", None, "no class labels"
            y = np.array([self.classes.index(c) for c in labels])
            return "macro_f1", classification_metrics(y, pred, self.classes)["macro_f1"], None
        return "agreement", None, None


def _views(entry: Mapping[str, Any], cfg: Any) -> list[tuple[bool, bool]]:
    """The flip TTA views the pipeline runs this model with."""
    kind = entry["registry_name"]
    if kind.startswith("biomass"):
        return tta_views(cfg.train.tta)
    if kind == "reid_embedder":
        return tta_views(cfg.inference.tta, vertical=False)
    return tta_views(False)


def evaluate_int8(
    models: Mapping[str, dict[str, Any]],
    folder: Path,
    run_dir: Any,
    cfg: Any,
    images: ImageSet,
    classes: Sequence[str] = (),
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """FP32 vs INT8 ONNX on the same images: per-model figures and per-group ensembles.

    Args:
        models: Manifest entries, each with its ``int8`` record.
        folder: The export folder holding both files of every model.
        run_dir: The run (MIL pooling loads the expert's torch weights).
        cfg: The run's config (TTA settings).
        images: Evaluation images (labelled or not).
        classes: The run's MIL classes.

    Returns:
        ``(per model, per group)``; each figure has ``metric``, ``metric_fp32``,
        ``metric_int8``, ``relative_change`` (None without labels), per-model entries also
        ``agreement`` ``{output: agreement(...)}``.
    """
    sessions = {
        p: {
            name: _session(folder / (e["file"] if p == "fp32" else e["int8"]["file"]))
            for name, e in models.items()
        }
        for p in ("fp32", "int8")
    }
    phase1 = [n for n, e in models.items() if e["registry_name"] == "biomass_phase1"]
    needs_meta = any(i["name"] == "meta" for e in models.values() for i in e["inputs"])
    meta = (
        {
            p: biomass_meta([sessions[p][n] for n in phase1], images, cfg.train.tta)
            for p in ("fp32", "int8")
        }
        if needs_meta
        else {}
    )
    task = _Task(run_dir, images, classes)
    per_model: dict[str, dict[str, Any]] = {}
    groups: dict[str, dict[str, list]] = {}
    for name, entry in models.items():
        outs, preds = {}, {}
        for p in ("fp32", "int8"):
            feeds = model_feeds(entry, images, meta.get(p))
            outs[p] = run_views(sessions[p][name], feeds, _views(entry, cfg))
            preds[p] = task.prediction(entry, outs[p])
        joined = {p: {k: np.concatenate([o[k] for o in outs[p]]) for k in outs[p][0]} for p in outs}
        record = _figure(task, entry["registry_name"], preds)
        record["agreement"] = {
            k: agreement(k, joined["fp32"][k], joined["int8"][k]) for k in entry["outputs"]
        }
        record["n_images"] = len(images)
        per_model[name] = record
        if preds["fp32"] is not None:
            group = groups.setdefault(
                entry["source"].split("/")[0], {"kind": [], "fp32": [], "int8": []}
            )
            group["kind"].append(entry["registry_name"])
            for p in ("fp32", "int8"):
                group[p].append(preds[p])
    ensembles = {}
    for group, members in groups.items():
        kind = members["kind"][0]
        mean = {p: np.mean(members[p], axis=0) for p in ("fp32", "int8")}
        ensembles[group] = {**_figure(task, kind, mean), "models": len(members["kind"])}
    return per_model, ensembles


def _figure(task: _Task, kind: str, preds: Mapping[str, np.ndarray | None]) -> dict[str, Any]:
    if preds["fp32"] is None:
        return {
            "metric": "agreement",
            "metric_fp32": None,
            "metric_int8": None,
            "relative_change": None,
        }
    metric, fp32, note = task.score(kind, preds["fp32"])
    _, int8, _ = task.score(kind, preds["int8"])
    out = {
        "metric": metric,
        "metric_fp32": fp32,
        "metric_int8": int8,
        "relative_change": _relative(fp32, int8),
    }
    if note:
        out["note"] = note
    return out


# --------------------------------------------------------------------------- the run


def _classes(run_dir: Any, kind: str) -> list[str]:
    if kind != "mil":
        return []
    try:
        return list(json.loads((run_dir.path / "classes.json").read_text("utf-8"))["classes"])
    except (OSError, ValueError, KeyError):
        raise RunError(f"{run_dir.path}: missing or unreadable classes.json") from None


def _quantize_all(
    staging: Path,
    manifest: dict[str, Any],
    *,
    run_dir: Any,
    cfg: Any,
    calibration: ImageSet,
    evaluation: ImageSet,
    evaluation_info: dict[str, Any],
    classes: list[str],
    method: str,
) -> None:
    """The `export_run` hook: INT8 copies and their accuracy, into the staging folder."""
    import onnxruntime as ort

    models = manifest["models"]
    phase1 = [
        _session(staging / e["file"])
        for e in models.values()
        if e["registry_name"] == "biomass_phase1"
    ]
    needs_meta = any(i["name"] == "meta" for e in models.values() for i in e["inputs"])
    meta = biomass_meta(phase1, calibration, cfg.train.tta) if needs_meta else None
    for name, entry in models.items():
        reader = FeedReader(model_feeds(entry, calibration, meta))
        entry["int8"] = quantize_model(
            staging / entry["file"], staging / f"{name}.int8.onnx", reader, method=method
        )
    per_model, task = evaluate_int8(models, staging, run_dir, cfg, evaluation, classes)
    for name, record in per_model.items():
        models[name]["int8"]["accuracy"] = record
    manifest["int8"] = {
        "onnxruntime": ort.__version__,
        "calibration": calibration.describe(),
        "evaluation": evaluation_info,
        "task": task,
        "phase2_meta": "each precision's own Phase-1 ensemble" if needs_meta else None,
    }


def export_run_int8(
    run: str | os.PathLike[str],
    out: str | os.PathLike[str],
    calibration: str | os.PathLike[str],
    *,
    n: int = 64,
    validation: str | os.PathLike[str] | None = None,
    opset: int = 18,
    method: str = "static",
) -> dict[str, Any]:
    """Export every model of a run to FP32 and INT8 ONNX, with the accuracy check.

    Everything is validated before the export starts: the run, the calibration images
    (`load_image_set`), the validation images (must carry labels; MIL labels must be
    classes of the run). A failure anywhere leaves no `out`.

    Args:
        run: A finished run.
        out: The export folder (see `export_run`).
        calibration: Folder or CSV of calibration images.
        n: Calibration images (deterministic, evenly spread choice).
        validation: Labelled folder or CSV for the task metric (up to `MAX_VALIDATION`
            images); default: the calibration images when labelled.
        opset: ONNX opset.
        method: ``static`` (dynamic as the fallback) or ``dynamic``.

    Returns:
        The manifest (also written to ``out/manifest.json``).

    Raises:
        RunError: See `export_run`, or a model that cannot be quantized.
        DataError: No usable calibration images, unlabelled validation data, or MIL
            labels that are not classes of the run.
    """
    from fieldvision.export.onnx import _config_class, export_run
    from fieldvision.runs import RunDir

    kind = RunDir.kind_of(run)
    run_dir, cfg = RunDir.open(run, kind, _config_class(kind))
    classes = _classes(run_dir, kind)
    calib = load_image_set(calibration, kind, cfg, n)
    if validation is not None:
        evaluation = load_image_set(validation, kind, cfg, MAX_VALIDATION)
        if evaluation.labels is None:
            raise DataError(
                f"{validation}: --validation needs labelled images (biomass: a "
                "train.csv; reid: identities; mil: classes)"
            )
        info = {**evaluation.describe(), "data": "validation", "same_as_calibration": False}
    else:
        evaluation = calib
        info = {**calib.describe(), "data": "calibration", "same_as_calibration": True}
    if classes and evaluation.labels is not None:
        unknown = sorted(set(evaluation.labels) - set(classes))
        if unknown:
            raise DataError(
                f"{evaluation.source}: label(s) {', '.join(unknown)} are not "
                f"classes of the run ({', '.join(classes)})"
            )
    hook = functools.partial(
        _quantize_all,
        run_dir=run_dir,
        cfg=cfg,
        calibration=calib,
        evaluation=evaluation,
        evaluation_info=info,
        classes=classes,
        method=method,
    )
    return export_run(run, out, opset, extend=hook)
