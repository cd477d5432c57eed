"""ONNX export with dynamic batch axes, checked against PyTorch with ONNX Runtime.

Every registered model has an export adapter (`export_spec`): its ONNX inputs and outputs,
an example input of a given batch size, and a wrapper whose forward returns a tuple (ONNX
graphs have positional outputs). `export_model` writes one self-contained ``.onnx`` with
the ``torch.export``-based exporter (``dynamo=True`` at opset 18: the legacy one cannot
convert the antialiased resizes the models do inside; ``external_data=False`` keeps the
weights in the file, fine below 2 GB) from an export-friendly copy of the model
(`fieldvision.export.rewrite.export_form`: timm ConvNeXt blocks in NCHW form, GELU in the
form ONNX Runtime fuses), then runs the parity check against the model itself: ONNX
Runtime vs PyTorch on random inputs at two batch sizes, max absolute / relative difference
against FP32 tolerances (rtol 1e-3, atol 1e-5); an export that fails parity raises and
leaves no file.
`fieldvision.export.parity` checks parity again on real images (the run's training data by
default); each manifest entry says which (``parity_inputs``: ``random`` or ``real``).

`export_run` exports every ``model.safetensors`` of a finished run into a folder with a
``manifest.json`` (models, input / output names and shapes, dynamic axes, normalisation,
opset, fieldvision version, parity figures, sha256 of each file, and the ``inference`` block
that the torch-free `fieldvision.deploy` path predicts from), written to a temporary
folder and renamed into place, so an interrupted or failed export leaves nothing partial.
`verify_export` re-checks the checksums (an edited or foreign ``.onnx`` is refused), of the
INT8 copies too (``fieldvision.export.quantize``).

Where we differ from a one-model export script: the MIL expert is exported as its tile
scorer (tiles → tile logits and features, and with attention pooling each tile's attention
scores); the bag pooling (max / top-k / the masked softmax over a variable subset of tiles)
stays with the caller, because glance inference pools over the tiles it selected.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from fieldvision.deploy.manifest import INFERENCE_FORMAT, MANIFEST, verify_export
from fieldvision.deploy.manifest import sha256 as _sha256
from fieldvision.errors import RunError
from fieldvision.export.rewrite import export_form
from fieldvision.io import write_json

__all__ = ["ExportSpec", "export_model", "export_run", "export_spec", "verify_export"]

RTOL, ATOL = 1e-3, 1e-5
NORMALISATION = "images float32 in [0, 1], RGB; ImageNet mean/std applied inside the model"


@dataclass
class ExportSpec:
    """How one model is exported.

    Attributes:
        inputs: ``(name, shape)`` per input; string dimensions are dynamic.
        outputs: Output names, in graph order.
        example: ``batch -> tuple of input tensors``.
        call: ``(model, *inputs) -> dict`` of outputs (keys ⊇ `outputs`).
    """

    inputs: list[tuple[str, list[int | str]]]
    outputs: list[str]
    example: Callable[[int], tuple[Tensor, ...]]
    call: Callable[..., dict[str, Tensor]]
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)


class _Graph(nn.Module):
    """Positional-output wrapper of a one-input model for the exporter."""

    def __init__(self, model: nn.Module, spec: ExportSpec) -> None:
        super().__init__()
        self.model = model
        self.spec = spec

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        out = self.spec.call(self.model, x)
        return tuple(out[name] for name in self.spec.outputs)


class _Graph2(_Graph):
    """The same for two inputs (image + conditioning)."""

    def forward(self, x: Tensor, y: Tensor) -> tuple[Tensor, ...]:  # type: ignore[override]
        out = self.spec.call(self.model, x, y)
        return tuple(out[name] for name in self.spec.outputs)


def _image_spec(size: Sequence[int], call, outputs, extra=()) -> ExportSpec:
    h, w = int(size[0]), int(size[1])
    inputs: list[tuple[str, list[int | str]]] = [("image", ["batch", 3, h, w])]
    inputs += [(name, ["batch", dim]) for name, dim in extra]

    def example(b: int) -> tuple[Tensor, ...]:
        gen = torch.Generator().manual_seed(b)
        tensors = [torch.rand(b, 3, h, w, generator=gen)]
        tensors += [torch.randn(b, dim, generator=gen) for _, dim in extra]
        return tuple(tensors)

    return ExportSpec(inputs, outputs, example, call)


def export_spec(model: nn.Module, image_size: Sequence[int] | None = None) -> ExportSpec:
    """The export adapter of a registered model.

    Args:
        model: A registered fieldvision model.
        image_size: ``(H, W)`` of the example image (default: what the model resizes to).

    Raises:
        RunError: The model has no export adapter.
    """
    name = getattr(model, "registry_name", None)
    cfg = getattr(model, "cfg", None)
    if name == "biomass_phase1":
        outputs = [
            "month",
            "ndvi",
            "height",
            *[t for t in ("species", "state") if t in model.heads],
        ]
        size = image_size or (cfg.input_size[0], cfg.input_size[1])
        spec = _image_spec(size, lambda m, x: m(x), outputs)
    elif name == "biomass_phase2":
        outputs = ["targets"] + (["tile_weights"] if cfg.use_tiles else [])
        size = image_size or tuple(cfg.global_size)
        if cfg.use_film:
            spec = _image_spec(
                size, lambda m, x, meta: m(x, meta), outputs, [("meta", model.meta_dim)]
            )
        else:
            spec = _image_spec(size, lambda m, x: m(x), outputs)
    elif name == "reid_embedder":
        spec = _image_spec(image_size or (128, 128), lambda m, x: m(x), ["embedding"])
    elif name == "mil_scouter":
        spec = _image_spec(image_size or cfg.input_size, lambda m, x: m(x), ["importance"])
    elif name == "mil_expert":
        s = int(cfg.tile_size)

        def call(m, tiles):
            logits, features = m.score_tiles(tiles)
            out = {"tile_logits": logits, "tile_features": features}
            if m.attention is not None:  # per-tile scores; the masked softmax is the caller's
                out["tile_attention"] = m.attention.scores(features)
            return out

        outputs = ["tile_logits", "tile_features"]
        outputs += ["tile_attention"] if model.attention is not None else []
        spec = ExportSpec(
            [("tiles", ["tiles", 3, s, s])],
            outputs,
            lambda b: (torch.rand(b, 3, s, s, generator=torch.Generator().manual_seed(b)),),
            call,
        )
    else:
        raise RunError(f"no ONNX export adapter for model {name!r} ({type(model).__name__})")
    for input_name, shape in spec.inputs:
        spec.dynamic_axes[input_name] = {i: d for i, d in enumerate(shape) if isinstance(d, str)}
    first_dyn = next(iter(spec.dynamic_axes[spec.inputs[0][0]].values()))
    for output in spec.outputs:
        spec.dynamic_axes[output] = {0: first_dyn}
    return spec


def _parity(session: Any, graph: _Graph, spec: ExportSpec, batches: Sequence[int]) -> dict:
    worst_abs, worst_rel = 0.0, 0.0
    for b in batches:
        inputs = spec.example(b)
        with torch.no_grad():
            expected = [t.float().numpy() for t in graph(*inputs)]
        feeds = {name: x.numpy() for (name, _), x in zip(spec.inputs, inputs, strict=True)}
        got = session.run(spec.outputs, feeds)
        for name, e, g in zip(spec.outputs, expected, got, strict=True):
            if e.shape != g.shape:
                raise RunError(
                    f"parity: output {name!r} has shape {g.shape} in ONNX, {e.shape} in torch"
                )
            diff = np.abs(e.astype(np.float64) - g.astype(np.float64))
            worst_abs = max(worst_abs, float(diff.max(initial=0.0)))
            rel = diff / (np.abs(e) + ATOL)
            worst_rel = max(worst_rel, float(rel.max(initial=0.0)))
            if not np.allclose(g, e, rtol=RTOL, atol=ATOL):
                raise RunError(
                    f"parity failed for output {name!r} at batch {b}: max |onnx - torch| = "
                    f"{float(diff.max()):.3g} beyond rtol={RTOL}, atol={ATOL}"
                )
    return {"batches": list(batches), "max_abs": worst_abs, "max_rel": worst_rel,
            "rtol": RTOL, "atol": ATOL, "passed": True}  # fmt: skip


def export_model(
    model: nn.Module,
    path: str | os.PathLike[str],
    image_size: Sequence[int] | None = None,
    opset: int = 18,
    batches: Sequence[int] = (1, 3),
) -> dict[str, Any]:
    """Export one model to a self-contained ``.onnx`` and check its parity.

    Returns:
        The model's manifest entry (inputs, outputs, dynamic axes, parity, sha256).

    Raises:
        RunError: No adapter, an op the exporter cannot convert (naming the module), or
            failed parity; nothing is left at `path` then.
    """
    import onnxruntime as ort

    from fieldvision.models.registry import model_record

    path = Path(path)
    model = model.eval().cpu()
    spec = export_spec(model, image_size)
    wrapper = _Graph if len(spec.inputs) == 1 else _Graph2
    # The exporter sees an export-friendly copy (`export_form`); parity is checked against
    # the model itself, so a rewrite that changed the outputs would fail the export.
    graph = wrapper(export_form(model), spec).eval()
    reference = wrapper(model, spec).eval()
    tmp = path.with_name(f".{path.name}.tmp")
    dims = {}
    dynamic_shapes = []
    for _, shape in spec.inputs:
        axes = {}
        for i, d in enumerate(shape):
            if isinstance(d, str):
                axes[i] = dims.setdefault(d, torch.export.Dim(d, min=1))
        dynamic_shapes.append(axes)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")  # the exporter's progress and tracer chatter
            torch.onnx.export(
                graph,
                spec.example(2),
                str(tmp),
                input_names=[n for n, _ in spec.inputs],
                output_names=spec.outputs,
                dynamic_shapes=tuple(dynamic_shapes),
                opset_version=opset,
                dynamo=True,
                external_data=False,  # one self-contained file (fine below 2 GB)
                optimize=True,
            )
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        parity = _parity(session, reference, spec, batches)
    except RunError:
        tmp.unlink(missing_ok=True)
        raise
    except Exception as exc:  # the exporter raises many types; name the module
        tmp.unlink(missing_ok=True)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise RunError(
            f"cannot export {type(model).__name__} to ONNX ({exc.__class__.__name__}: {first})"
        ) from None
    os.replace(tmp, path)
    record = model_record(model)
    return {
        "file": path.name,
        "sha256": _sha256(path),
        "bytes": path.stat().st_size,
        "registry_name": record["name"],
        "config": record["config"],
        "dims": record["dims"],
        "inputs": [{"name": n, "shape": s} for n, s in spec.inputs],
        "outputs": spec.outputs,
        "dynamic_axes": {
            k: {str(i): d for i, d in v.items()} for k, v in spec.dynamic_axes.items()
        },
        "normalisation": NORMALISATION,
        "opset": opset,
        "parity": parity,
    }


def _image_size(kind: str, cfg: Any, relpath: str) -> tuple[int, int] | None:
    """The example image size of a run's model (what its pipeline feeds it)."""
    if kind == "biomass":
        return tuple(cfg.data.clean.size)
    if kind == "reid":
        return tuple(cfg.data.image_size)
    if kind == "mil" and relpath.startswith("scouter"):
        return tuple(cfg.scouter.input_size)
    return None


def export_run(
    run: str | os.PathLike[str],
    out: str | os.PathLike[str],
    opset: int = 18,
    extend: Callable[[Path, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Export every model of a finished run into `out` with a ``manifest.json``.

    `out` must be absent, empty, or a previous export (it is then replaced); the export is
    built in a temporary folder beside it and renamed into place only when every model
    passed parity.

    `extend(staging, manifest)` runs after every model passed parity and before the
    manifest is written: it may add files to the staging folder and fields to the manifest
    (``--int8`` adds the quantized copies); if it raises, nothing is left behind.

    Raises:
        RunError: Not a finished run, a model that cannot be exported, failed parity, or an
            `out` folder holding other files.
    """
    from fieldvision import __version__
    from fieldvision.runs import RunDir

    run = Path(run)
    kind = RunDir.kind_of(run)
    config_cls = _config_class(kind)
    run_dir, cfg = RunDir.open(run, kind, config_cls)
    weights = sorted(run.rglob("model.safetensors"))
    if not weights:
        raise RunError(f"{run}: holds no model.safetensors to export")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise RunError(f"{out}: exists and is not an export folder", hint="choose a new --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        models = {}
        for w in weights:
            rel = w.parent.relative_to(run).as_posix()
            name = rel.replace("/", "_")
            model = run_dir.load_model(w.relative_to(run))
            entry = export_model(
                model, staging / f"{name}.onnx", _image_size(kind, cfg, rel), opset
            )
            entry["source"] = f"{rel}/model.safetensors"
            entry["source_sha256"] = _sha256(w)  # ties the export to these very weights
            # What parity was checked on; `check_real_parity` turns it to "real".
            entry["parity_inputs"], entry["parity_source"] = "random", None
            models[name] = entry
        manifest = {
            "fieldvision": __version__,
            "run": {"path": str(run.resolve()), "kind": kind, "fingerprint": run_dir.fingerprint},
            "opset": opset,
            "models": models,
            "inference": _inference(cfg, config_cls),
        }
        if extend is not None:
            extend(staging, manifest)
        write_json(staging / MANIFEST, manifest)
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _inference(cfg: Any, config_cls: type) -> dict[str, Any]:
    """What `fieldvision.deploy` needs to predict without the torch-importing config classes:
    the resolved config (defaults filled in) and what each runtime field accepts (which
    ``--set`` keys a finished run takes, and the keys left out of its fingerprint)."""
    from fieldvision.config import config_to_dict, runtime_field_specs

    return {
        "format": INFERENCE_FORMAT,
        "config": config_to_dict(cfg),
        "runtime_fields": runtime_field_specs(config_cls),
    }


def _config_class(kind: str) -> type:
    if kind == "biomass":
        from fieldvision.pipelines.biomass.config import BiomassConfig

        return BiomassConfig
    if kind == "reid":
        from fieldvision.pipelines.reid.config import ReIDPipelineConfig

        return ReIDPipelineConfig
    if kind == "mil":
        from fieldvision.pipelines.mil.config import MILConfig

        return MILConfig
    raise RunError(f"runs of kind {kind!r} have no exporter")
