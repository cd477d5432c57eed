"""The typer options every command shares, declared once.

``--config`` (a YAML file or a packaged recipe name), ``--set key=value`` (repeatable),
``--device`` and ``--progress/--no-progress`` mean the same on every command that takes
them. On commands that use a finished run, ``--set`` may only change runtime fields.
``--runtime`` and ``--onnx`` choose how the predict / embed commands run a finished run's
models: PyTorch, or its ONNX export with ONNX Runtime (no torch import, see
`fieldvision.deploy`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = [
    "ConfigOpt",
    "DeviceOpt",
    "OnnxOpt",
    "ProgressOpt",
    "RuntimeOpt",
    "SetOpt",
    "export_folder",
    "runtime_flags",
]

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="YAML config file, or a packaged recipe (e.g. reid_demo)."),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config value, e.g. --set train.epochs=20 (repeatable)."),
]
DeviceOpt = Annotated[
    str | None, typer.Option("--device", help="auto, cpu or cuda (default: the config's).")
]
ProgressOpt = Annotated[
    bool, typer.Option("--progress/--no-progress", help="Progress bars on stderr.")
]
RuntimeOpt = Annotated[
    str,
    typer.Option(
        "--runtime",
        help="torch, onnx (the run's ONNX export, FP32) or onnx-int8 (its INT8 copies); "
        "the onnx runtimes need only onnxruntime, no torch.",
    ),
]
OnnxOpt = Annotated[
    Path | None,
    typer.Option(
        "--onnx",
        help="Export folder of the run (from fieldvision export); default: RUN/export.",
    ),
]


def export_folder(run: Path, onnx: Path | None) -> Path:
    """The export folder an ONNX runtime reads (``--onnx``, else ``RUN/export``)."""
    return onnx if onnx is not None else run / "export"


def runtime_flags(section: str, device: str | None, progress: bool | None) -> list[str]:
    """``--set`` strings for the shared runtime flags of a config whose runtime knobs live in
    `section` (``train``)."""
    flags = []
    if device is not None:
        flags.append(f"{section}.device={device}")
    if progress is not None:
        flags.append(f"{section}.progress={str(progress).lower()}")
    return flags
