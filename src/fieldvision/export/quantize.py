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
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from fieldvision.errors import DataError, RunError
from fieldvision.export.accuracy import _classes, agreement, evaluate_int8, session
from fieldvision.export.calibration import (
    FeedReader,
    ImageSet,
    biomass_meta,
    load_image_set,
    model_feeds,
)
from fieldvision.export.parity import check_real_parity
from fieldvision.io import atomic_path

__all__ = ["agreement", "evaluate_int8", "export_run_int8", "quantize_model"]

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


def _smoke(path: Path, feed: Mapping[str, np.ndarray] | None) -> None:
    """The INT8 graph loads and (given a feed) gives finite outputs."""
    sess = session(path)
    if feed is None:
        return
    for name, value in zip(
        (o.name for o in sess.get_outputs()), sess.run(None, dict(feed)), strict=True
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
        session(staging / e["file"])
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
    quantize_hook = functools.partial(
        _quantize_all,
        run_dir=run_dir,
        cfg=cfg,
        calibration=calib,
        evaluation=evaluation,
        evaluation_info=info,
        classes=classes,
        method=method,
    )

    def hook(staging: Path, manifest: dict[str, Any]) -> None:
        # FP32 parity on the calibration images first: INT8 is judged against FP32.
        check_real_parity(staging, manifest, run_dir=run_dir, cfg=cfg, images=calib)
        quantize_hook(staging, manifest)

    return export_run(run, out, opset, extend=hook)
