"""Helpers the CLI tests of several pipelines share."""

from __future__ import annotations

import shutil
from pathlib import Path


def perturbed_copy(run: Path, dest: Path, weights: str) -> Path:
    """Another run with the same config: a copy of `run` (without its export folder) whose
    `weights` file (relative to the run) holds slightly different weights."""
    import torch

    from fieldvision.models.registry import load_model, save_model

    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("export"))
    model = load_model(dest / weights)
    with torch.no_grad():
        next(model.parameters()).add_(0.01)
    save_model(model, dest / weights)
    return dest


def bad_export(
    problem: str, exported: Path, tmp_path: Path, *, graph: str, weights: str
) -> tuple[Path, list[str], str]:
    """``(run, extra CLI args, expected error fragment)`` for a ``--runtime onnx`` command
    given a bad export of the finished, exported run `exported`.

    Args:
        problem: ``missing`` (no export folder), ``edited`` (one ``.onnx`` byte changed) or
            ``another_run`` (the export of a run with the same config but other weights).
        graph: The ``.onnx`` file name to edit.
        weights: The weights file (relative to the run) the other run differs in.
    """
    if problem == "missing":
        run = tmp_path / "run"
        shutil.copytree(exported, run, ignore=shutil.ignore_patterns("export"))
        return run, [], f"run `fieldvision export --run {run} --out {run / 'export'}` first"
    if problem == "edited":
        onnx_dir = tmp_path / "onnx"
        shutil.copytree(exported / "export", onnx_dir)
        path = onnx_dir / graph
        data = path.read_bytes()
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
        return exported, ["--onnx", str(onnx_dir)], f"{graph}: checksum differs"
    run = perturbed_copy(exported, tmp_path / "other", weights)
    return (
        run,
        ["--onnx", str(exported / "export")],
        (f"is the export of another run ({exported.resolve()})"),
    )
