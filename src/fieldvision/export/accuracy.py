"""The task-level accuracy check of INT8 copies: FP32 and INT8 ONNX side by side.

Per model: output agreement (max / mean absolute difference, cosine similarity, top-1
agreement for classifier outputs). Per model group (a fold ensemble), when the evaluation
images carry labels, the pipeline's own task metric with each precision: biomass Phase-2
weighted R², re-ID mAP, MIL expert macro-F1 (see `fieldvision.export.quantize` for how the
evaluation images are chosen and why Phase 2 is fed by the INT8 Phase-1 ensemble).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fieldvision.errors import DataError, RunError
from fieldvision.export.calibration import (
    ImageSet,
    biomass_meta,
    model_feeds,
    run_views,
    tta_views,
)

__all__ = ["CLASSIFIER_OUTPUTS", "agreement", "evaluate_int8", "session"]

#: Outputs whose arg-max is a decision (class logits, the scouter's tile map).
CLASSIFIER_OUTPUTS = frozenset({"species", "state", "tile_logits", "importance"})


def session(path: Path) -> Any:
    """A CPU ONNX Runtime session of `path`."""
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


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
            name: session(folder / (e["file"] if p == "fp32" else e["int8"]["file"]))
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
