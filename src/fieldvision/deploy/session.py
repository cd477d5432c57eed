"""Opening a run's ONNX export for prediction: checks, settings and ONNX Runtime sessions.

`open_deployment` is the one entry of every ``--runtime onnx|onnx-int8`` command. Before any
input is read it checks, in this order, and raises `RunError` (exit 2, nothing written):

1. the run is a finished run of the pipeline (``run.json``, as `RunDir.open` checks);
2. the export folder exists: ``--onnx DIR``, by default ``RUN/export`` (where
   ``fieldvision export --run RUN --out RUN/export`` puts it);
3. every ``.onnx`` file matches its sha256 in ``manifest.json`` (`verify_export`): an edited
   or swapped file is refused;
4. the export belongs to this run: the manifest's run fingerprint is the run's, and each
   model's source weights (``RUN/<source>``) still have the sha256 recorded at export time
   (another run with the same config has other weights);
5. the run's ``config.yaml`` is the one it was trained with (its fingerprint, computed with
   the runtime keys the export recorded: the pipeline config classes import torch);
6. ``--runtime onnx-int8``: every model has its INT8 copy.

Settings are the export's resolved config (``manifest["inference"]["config"]``) under the
run's ``config.yaml``, with ``--set`` overrides of runtime fields only, each checked against
the field's recorded type and bounds (`validate_runtime_value`). Nothing here imports
torch.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fieldvision.config import (
    apply_overrides,
    fingerprint_without,
    validate_runtime_value,
)
from fieldvision.deploy.manifest import INFERENCE_FORMAT, MANIFEST, sha256, verify_export
from fieldvision.errors import ConfigError, RunError
from fieldvision.io import read_yaml
from fieldvision.runs import CONFIG_FILE, RunDir, config_edited

__all__ = ["DEFAULT_EXPORT", "RUNTIMES", "Deployment", "check_runtime", "open_deployment"]

#: What ``--runtime`` accepts.
RUNTIMES = ("torch", "onnx", "onnx-int8")
#: The export folder used when ``--onnx`` is not given, relative to the run.
DEFAULT_EXPORT = "export"


def check_runtime(runtime: str, onnx: str | os.PathLike[str] | None = None) -> None:
    """Validate ``--runtime`` (and that ``--onnx`` goes with an ONNX runtime).

    Raises:
        ConfigError: An unknown runtime, or ``--onnx`` with ``--runtime torch``.
    """
    if runtime not in RUNTIMES:
        raise ConfigError(f"--runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
    if runtime == "torch" and onnx is not None:
        raise ConfigError("--onnx is an option of --runtime onnx or onnx-int8")


@dataclass
class Deployment:
    """A verified export of a finished run, ready to predict.

    Attributes:
        run: The run directory.
        kind: Its pipeline.
        folder: The export folder.
        manifest: Its manifest (checksums verified).
        runtime: ``onnx`` or ``onnx-int8``.
        settings: The run's config as a dict (runtime overrides applied).
        providers: ONNX Runtime execution providers, in preference order.
    """

    run: Path
    kind: str
    folder: Path
    manifest: dict[str, Any]
    runtime: str
    settings: dict[str, Any]
    providers: list[str]
    _sessions: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def precision(self) -> str:
        """``fp32`` or ``int8``."""
        return "int8" if self.runtime == "onnx-int8" else "fp32"

    def setting(self, dotted: str) -> Any:
        """A config value by dotted key (``data.image_size``).

        Raises:
            RunError: The export's config has no such key (an export of an older format).
        """
        node: Any = self.settings
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                raise RunError(
                    f"{self.folder / MANIFEST}: the run's config has no {dotted}",
                    hint=f"re-export the run: fieldvision export --run {self.run} "
                    f"--out {self.folder}",
                )
            node = node[part]
        return node

    def entry(self, source: str) -> dict[str, Any]:
        """The manifest entry of the model saved at ``RUN/<source>/model.safetensors``.

        Raises:
            RunError: The export holds no such model.
        """
        want = f"{source.strip('/')}/model.safetensors"
        for entry in self.manifest["models"].values():
            if entry.get("source") == want:
                return entry
        raise RunError(
            f"{self.folder}: the export holds no model for {want}",
            hint=f"re-export the run: fieldvision export --run {self.run} --out {self.folder}",
        )

    def has(self, source: str) -> bool:
        """Whether the export holds the model saved under ``RUN/<source>``."""
        want = f"{source.strip('/')}/model.safetensors"
        return any(e.get("source") == want for e in self.manifest["models"].values())

    def session(self, source: str) -> Any:
        """The ONNX Runtime session of a model (FP32 or INT8 file by `runtime`), cached."""
        cached = self._sessions.get(source)
        if cached is not None:
            return cached
        import onnxruntime as ort

        entry = self.entry(source)
        record = entry["int8"] if self.precision == "int8" else entry
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: no per-node optimiser chatter
        session = ort.InferenceSession(
            str(self.folder / record["file"]), options, providers=self.providers
        )
        self._sessions[source] = session
        return session

    def describe(self) -> str:
        """``runtime onnx-int8, export RUN/export`` (for the command's summary line)."""
        return f"runtime {self.runtime}, export {self.folder}"


def _providers(device: str) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise ConfigError(
                "--device cuda: this onnxruntime has no CUDA provider "
                f"(available: {', '.join(available)})",
                hint="install onnxruntime-gpu, or use --device cpu",
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "auto" and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _apply_runtime_overrides(
    settings: dict[str, Any], specs: dict[str, dict[str, Any]], overrides: Sequence[str]
) -> dict[str, Any]:
    """`fieldvision.config.apply_runtime_overrides` on a dict, with the recorded specs.

    Raises:
        ConfigError: An override of a non-runtime field, or a value the field refuses.
    """
    keys = [item.split("=", 1)[0].strip() for item in overrides]
    for key in keys:
        if key not in specs:
            raise ConfigError(
                f"--set {key}: a finished run's config can only be changed in its runtime "
                "fields (its weights were trained with the rest)",
                hint=f"runtime fields: {', '.join(sorted(specs))}",
            )
    parsed = apply_overrides({}, overrides)  # the values, parsed as YAML scalars
    out = copy.deepcopy(settings)
    for key in dict.fromkeys(keys):
        *parents, leaf = key.split(".")
        source, target = parsed, out
        for part in parents:
            source = source[part]
            target = target.setdefault(part, {})
        target[leaf] = validate_runtime_value(key, specs[key], source[leaf])
    return out


def _check_weights(run: Path, manifest: dict[str, Any], folder: Path) -> None:
    """Each exported model's source weights are this run's (same sha256 as at export)."""
    exported_from = manifest.get("run", {}).get("path", "?")
    for entry in manifest["models"].values():
        source = entry.get("source")
        recorded = entry.get("source_sha256")
        if source is None or recorded is None:
            raise RunError(
                f"{folder}: the export does not record its source weights (an older export)",
                hint=f"re-export the run: fieldvision export --run {run} --out {folder}",
            )
        weights = run / source
        if not weights.is_file() or sha256(weights) != recorded:
            what = "has no" if not weights.is_file() else "has other weights for"
            raise RunError(
                f"{folder}: is the export of another run ({exported_from}); {run} {what} {source}",
                hint=f"export this run: fieldvision export --run {run} --out DIR",
            )


def open_deployment(
    run: str | os.PathLike[str],
    kind: str,
    runtime: str,
    onnx: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
) -> Deployment:
    """Open and verify the export of a finished run (see the module for the checks).

    Args:
        run: The run directory.
        kind: The pipeline the command belongs to (``biomass``, ``reid``, ``mil``).
        runtime: ``onnx`` or ``onnx-int8``.
        onnx: The export folder (default ``RUN/export``).
        overrides: ``--set`` values of runtime fields.

    Raises:
        RunError: Any failed check (the message names the run and the export).
        ConfigError: A bad runtime, or an override of a non-runtime field or a bad value.
    """
    check_runtime(runtime, onnx)
    if runtime == "torch":
        raise ConfigError("open_deployment is the ONNX path: runtime must be onnx or onnx-int8")
    run = Path(run)
    info = RunDir.finished(run, kind)
    folder = Path(onnx) if onnx is not None else run / DEFAULT_EXPORT
    if not (folder / MANIFEST).is_file():
        where = "given by --onnx" if onnx is not None else "(the default export folder)"
        int8 = " --int8 --calibration IMAGES" if runtime == "onnx-int8" else ""
        raise RunError(
            f"{folder}: no ONNX export {where}: no {MANIFEST}",
            hint=f"run `fieldvision export --run {run} --out {folder}{int8}` first",
        )
    manifest = verify_export(folder)
    recorded_run = manifest.get("run", {})
    if recorded_run.get("kind") != kind:
        raise RunError(
            f"{folder}: is the export of a {recorded_run.get('kind')!r} run "
            f"({recorded_run.get('path', '?')}), not of the {kind} run {run}"
        )
    if recorded_run.get("fingerprint") != info.get("fingerprint"):
        raise RunError(
            f"{folder}: is the export of another run ({recorded_run.get('path', '?')}, config "
            f"fingerprint {recorded_run.get('fingerprint')}), not of {run} (fingerprint "
            f"{info.get('fingerprint')})",
            hint=f"export this run: fieldvision export --run {run} --out DIR",
        )
    _check_weights(run, manifest, folder)
    inference = manifest.get("inference")
    if not isinstance(inference, dict) or inference.get("format") != INFERENCE_FORMAT:
        raise RunError(
            f"{folder / MANIFEST}: has no inference settings of format {INFERENCE_FORMAT} "
            "(an export older than the --runtime switch)",
            hint=f"re-export the run: fieldvision export --run {run} --out {folder}",
        )
    specs = dict(inference["runtime_fields"])
    recorded = read_yaml(run / CONFIG_FILE) or {}
    if fingerprint_without(recorded, specs) != info.get("fingerprint"):
        raise config_edited(run)
    if runtime == "onnx-int8":
        plain = [n for n, e in manifest["models"].items() if "int8" not in e]
        if plain:
            raise RunError(
                f"{folder}: has no INT8 copy of {', '.join(plain)}",
                hint=f"run `fieldvision export --run {run} --out {folder} --int8 "
                "--calibration IMAGES` first",
            )
    settings = _deep_merge(dict(inference["config"]), recorded)
    settings = _apply_runtime_overrides(settings, specs, list(overrides))
    device = settings.get("train", {}).get("device", "auto")
    return Deployment(run, kind, folder, manifest, runtime, settings, _providers(device))
