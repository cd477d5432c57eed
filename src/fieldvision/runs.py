"""Run directories: one format for every pipeline, with a validate-then-write policy.

A run directory holds::

    run.json       kind, config fingerprint, input fingerprint, status, fieldvision version,
                   and where the training data was (``data.path``, not part of the identity)
    config.yaml    the resolved config (what the run was trained with)
    metrics.json   one section per stage ("fit", "evaluate", ...), replaced atomically
    ...            the pipeline's own files; weights via `save_model` (registry records)

Status is ``running`` from the moment the directory is made, ``done`` when the pipeline
finishes and ``failed`` when it raised. `RunDir.start` decides what an existing ``--out``
means, so that a failed run never blocks a corrected re-run:

==========================  ======================================================
what ``--out`` holds        what `start` does
==========================  ======================================================
nothing / an empty folder   creates the run
same kind, config, inputs   resumes it (``running``/``failed``) or re-opens it (``done``)
a ``failed`` run otherwise  replaces it, without asking: nothing of value is lost
another run otherwise       refuses (`RunError` naming what differs)
files that are not a run    refuses (never deletes a user's folder)
==========================  ======================================================

Callers validate every input *before* `start`, so a bad input leaves no directory at all.

"Same config" survives upgrades: a run recorded before a release added config fields
(whose defaults keep the old behaviour) is the same run when its intact ``config.yaml``,
completed with today's defaults, equals the new config; `start` then keeps the run's own
``config.yaml`` and fingerprint, so its exports stay valid.

The data location (``"data": {"path": ...}``, the resolved folder or CSV the run was trained
on) is recorded for later steps that want the run's own images (``fieldvision export``
checks ONNX parity on them) but is deliberately not part of the resume identity: a data
folder that was moved or copied elsewhere still resumes the run, and the location is then
updated to where the data is now. Runs written before it was recorded have no ``data``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from fieldvision.config import config_fingerprint, config_to_dict, fingerprint_of, load_config
from fieldvision.console import console
from fieldvision.errors import FieldVisionError, RunError
from fieldvision.io import read_yaml, write_json, write_yaml

__all__ = ["CONFIG_FILE", "METRICS_FILE", "RUN_FILE", "STATUSES", "RunDir"]

RUN_FILE = "run.json"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
STATUSES = ("running", "done", "failed")


def config_edited(path: str | os.PathLike[str]) -> RunError:
    """The error for a run whose ``config.yaml`` was edited since training."""
    return RunError(
        f"{Path(path) / CONFIG_FILE}: differs from the config the run was trained with",
        hint="restore the original config.yaml or retrain",
    )


C = TypeVar("C", bound=BaseModel)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _predates_new_fields(
    path: Path, info: Mapping[str, Any], cfg: BaseModel, fingerprint: str
) -> bool:
    """Is the run at `path` the same config as `cfg`, recorded before fields were added?

    A release that adds a config field (with a default that keeps the old behaviour)
    changes every config's fingerprint, though an old run trained exactly what today's
    config would. True when the recorded ``config.yaml`` is intact (it still hashes to the
    run's fingerprint) and, completed with today's defaults, hashes like `cfg`.
    """
    recorded = read_yaml(path / CONFIG_FILE)
    if not isinstance(recorded, dict):
        return False
    if fingerprint_of(recorded, type(cfg)) != info.get("fingerprint"):
        return False  # edited since training (or another schema): not this run's record
    try:
        today = load_config(type(cfg), path / CONFIG_FILE)
    except FieldVisionError:  # a field was removed or changed type: genuinely different
        return False
    return config_fingerprint(today) == fingerprint


def _changed_keys(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            keys.extend(_changed_keys(a, b, f"{prefix}{key}."))
        elif a != b:
            keys.append(f"{prefix}{key}")
    return keys


@dataclass
class RunDir:
    """A run directory of one pipeline (`kind`)."""

    path: Path
    kind: str
    fingerprint: str
    inputs: dict[str, Any]
    data: dict[str, Any] | None = None

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def start(
        cls,
        path: str | os.PathLike[str],
        kind: str,
        cfg: BaseModel,
        inputs: Mapping[str, Any] | None = None,
        data: str | os.PathLike[str] | None = None,
    ) -> RunDir:
        """Create, resume or replace the run at `path` (see the module table).

        Args:
            path: The ``--out`` folder.
            kind: Pipeline name (``biomass``, ``reid``, ...).
            cfg: The validated config; its fingerprint excludes runtime fields.
            inputs: JSON-able fingerprint of the inputs (e.g. a hash of the label table);
                a run is resumed only on the same inputs.
            data: The training data folder or CSV as given by the user; recorded resolved
                in ``run.json`` as ``data.path``, outside the resume identity.

        Raises:
            RunError: `path` holds a different live run, or files that are not a run.
        """
        path = Path(path)
        fingerprint = config_fingerprint(cfg)
        inputs = json.loads(json.dumps(dict(inputs or {}), default=str))
        if path.is_file():
            raise RunError(f"{path}: is a file, not a run directory")
        info = _read_json(path / RUN_FILE) if path.is_dir() else None
        if path.is_dir() and info is None and any(path.iterdir()):
            raise RunError(
                f"{path}: exists and is not a fieldvision run directory (no {RUN_FILE})",
                hint="choose a new --out, or empty the folder",
            )
        upgraded = False
        if info is not None:
            same = (
                info.get("kind") == kind
                and info.get("fingerprint") == fingerprint
                and info.get("inputs", {}) == inputs
            )
            if not same and info.get("kind") == kind and info.get("inputs", {}) == inputs:
                upgraded = same = _predates_new_fields(path, info, cfg, fingerprint)
            if same:
                if info.get("status") != "done":
                    console.print(f"[yellow]resuming the {kind} run in {path}[/]")
            elif info.get("status") == "failed":
                console.print(f"[yellow]replacing the failed run in {path}[/]")
                _clear(path)
            else:
                raise RunError(cls._difference(path, info, kind, cfg, fingerprint, inputs))
        path.mkdir(parents=True, exist_ok=True)
        # Absolute, so a later step run from another working directory still finds it; a
        # resume that names no data keeps what the run recorded.
        located = None if data is None else {"path": str(Path(data).resolve())}
        if located is None and info is not None and same and isinstance(info.get("data"), dict):
            located = info["data"]
        if upgraded:
            # Keep the run's own record: rewriting config.yaml with today's new fields would
            # change its fingerprint and orphan the exports that name the old one.
            assert info is not None
            run = cls(path, kind, str(info["fingerprint"]), inputs, located)
        else:
            run = cls(path, kind, fingerprint, inputs, located)
            write_yaml(path / CONFIG_FILE, config_to_dict(cfg))
        if info is None or info.get("status") != "done" or not same:
            run._write_status("running")
        return run

    @staticmethod
    def _difference(
        path: Path,
        info: Mapping[str, Any],
        kind: str,
        cfg: BaseModel,
        fingerprint: str,
        inputs: Mapping[str, Any],
    ) -> str:
        if info.get("kind") != kind:
            return f"{path}: holds a {info.get('kind')!r} run, not a {kind} run"
        if info.get("fingerprint") != fingerprint:
            changed: list[str] = []
            with contextlib.suppress(FieldVisionError):
                old = load_config(type(cfg), path / CONFIG_FILE)
                changed = _changed_keys(config_to_dict(old), config_to_dict(cfg))
            what = f" ({', '.join(changed)})" if changed else ""
            return (
                f"{path}: holds a {info.get('status', 'running')} run with a different "
                f"config{what}; use a new --out, or the same config to resume"
            )
        changed = _changed_keys(dict(info.get("inputs", {})), dict(inputs))
        return (
            f"{path}: holds a run trained on different input data ({', '.join(changed)}); "
            "use a new --out, or the same data to resume"
        )

    @classmethod
    def open(cls, path: str | os.PathLike[str], kind: str, config: type[C]) -> tuple[RunDir, C]:
        """Open a finished run and its config for prediction or evaluation.

        Raises:
            RunError: Not a run, another pipeline's run, an unfinished or failed run, or a
                ``config.yaml`` edited since training.
        """
        path = Path(path)
        info = cls.finished(path, kind)
        cfg = load_config(config, path / CONFIG_FILE)
        recorded = read_yaml(path / CONFIG_FILE) or {}
        if fingerprint_of(recorded, config) != info.get("fingerprint"):
            raise config_edited(path)
        data = info.get("data") if isinstance(info.get("data"), dict) else None
        run = cls(path, kind, str(info["fingerprint"]), dict(info.get("inputs", {})), data)
        return run, cfg

    @staticmethod
    def finished(path: str | os.PathLike[str], kind: str) -> dict[str, Any]:
        """``run.json`` of a finished run of `kind` (what `open` checks before the config).

        Raises:
            RunError: Not a run, another pipeline's run, an unfinished or failed run.
        """
        path = Path(path)
        info = _read_json(path / RUN_FILE)
        if info is None:
            raise RunError(f"{path}: not a run directory (no readable {RUN_FILE})")
        if info.get("kind") != kind:
            raise RunError(f"{path}: holds a {info.get('kind')!r} run, not a {kind} run")
        status = info.get("status")
        if status != "done":
            detail = f": {info['error']}" if status == "failed" and info.get("error") else ""
            raise RunError(
                f"{path}: the run is {'failed' if status == 'failed' else 'unfinished'}{detail}",
                hint="run train again with the same --out to resume or replace it",
            )
        return info

    @staticmethod
    def kind_of(path: str | os.PathLike[str]) -> str:
        """The pipeline a run directory belongs to (``biomass``, ``reid``, ``mil``).

        Raises:
            RunError: `path` holds no readable ``run.json``.
        """
        info = _read_json(Path(path) / RUN_FILE)
        if info is None or not isinstance(info.get("kind"), str):
            raise RunError(f"{path}: not a run directory (no readable {RUN_FILE})")
        return info["kind"]

    @property
    def data_path(self) -> Path | None:
        """The training data folder or CSV recorded in ``run.json`` (None for old runs)."""
        path = (self.data or {}).get("path")
        return Path(path) if isinstance(path, str) and path else None

    @property
    def status(self) -> str:
        """``running``, ``done`` or ``failed`` as recorded in ``run.json``."""
        info = _read_json(self.path / RUN_FILE) or {}
        return str(info.get("status", "running"))

    def _write_status(self, status: str, **extra: Any) -> None:
        from fieldvision import __version__

        record = {
            "kind": self.kind,
            "fingerprint": self.fingerprint,
            "inputs": self.inputs,
            "status": status,
            "fieldvision": __version__,
            **({} if self.data is None else {"data": self.data}),
            **extra,
        }
        write_json(self.path / RUN_FILE, record)

    def done(self) -> None:
        """Mark the run finished (written last, atomically)."""
        self._write_status("done")

    def fail(self, error: BaseException) -> None:
        """Mark the run failed, recording the error message."""
        self._write_status("failed", error=f"{error.__class__.__name__}: {error}")

    @contextlib.contextmanager
    def running(self) -> Iterator[RunDir]:
        """Context for the work of a run: marks it ``done`` on success, ``failed`` on an
        error; an interruption (Ctrl+C) leaves it ``running`` so a re-run resumes it."""
        try:
            yield self
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            self.fail(exc)
            raise
        self.done()

    # ------------------------------------------------------------------ metrics
    def read_metrics(self) -> dict[str, Any]:
        """``metrics.json`` ({} when absent).

        Raises:
            RunError: The file exists but is not valid JSON.
        """
        path = self.path / METRICS_FILE
        if not path.is_file():
            return {}
        data = _read_json(path)
        if data is None:
            raise RunError(f"{path}: not valid JSON", hint="delete it; it is rewritten")
        return data

    def update_metrics(self, section: str, values: Mapping[str, Any]) -> Path:
        """Replace one section of ``metrics.json`` atomically, keeping the others."""
        merged = self.read_metrics()
        merged[section] = dict(values)
        return write_json(self.path / METRICS_FILE, merged)

    # ------------------------------------------------------------------ weights
    def save_model(self, relpath: str | os.PathLike[str], model: Any) -> Path:
        """Write a registered model under the run (weights + registry record)."""
        from fieldvision.models.registry import save_model

        return save_model(model, self.path / relpath)

    def load_model(self, relpath: str | os.PathLike[str], map_location: str = "cpu") -> Any:
        """Rebuild a model saved with `save_model` (needs no config file).

        Raises:
            RunError: Missing or damaged weights.
        """
        from fieldvision.models.registry import load_model

        return load_model(self.path / relpath, map_location)


def _clear(path: Path) -> None:
    """Empty a run directory (only called on a directory holding a failed run)."""
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
