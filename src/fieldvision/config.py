"""Typed configs: pydantic models loaded from YAML with ``--set key=value`` overrides.

Every pipeline defines its config as a tree of pydantic models with commented defaults.
`load_config` merges, in order: the model's defaults, a YAML file, then ``--set`` overrides
(dotted keys, values parsed as YAML scalars so ``--set train.lr=1e-3`` is a float). Any
validation problem becomes one `ConfigError` naming the dotted field and the source.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from fieldvision.errors import ConfigError
from fieldvision.io import read_yaml

__all__ = ["StrictModel", "apply_overrides", "config_to_dict", "load_config"]

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for config sections: unknown keys are errors (catches typos like `lr_rate`)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides to a nested dict (returns a new dict).

    Raises:
        ConfigError: An override is not of the form ``key=value``.
    """
    out: dict[str, Any] = _deep_copy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. train.epochs=5")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"--set {item!r}: empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
    return out


def load_config(
    model: type[M],
    path: str | os.PathLike[str] | None = None,
    overrides: Iterable[str] = (),
    base: dict[str, Any] | None = None,
) -> M:
    """Build a config of type `model` from defaults, an optional YAML file and overrides.

    Args:
        model: The pydantic model class of the config.
        path: Optional YAML file whose keys mirror the model's fields.
        overrides: ``dotted.key=value`` strings applied after the file.
        base: Optional dict applied before the file (e.g. CLI flags like ``--epochs``).

    Raises:
        ConfigError: The file is unreadable, or a field is unknown or has a bad value.
    """
    data: dict[str, Any] = _deep_copy(base or {})
    source = "defaults"
    if path is not None:
        loaded = read_yaml(path)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: top level must be a mapping of config sections")
        data = _deep_merge(data, loaded)
        source = str(path)
    overrides = list(overrides)
    if overrides:
        data = apply_overrides(data, overrides)
        source += " + --set"
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation(exc, source)) from None


def config_to_dict(cfg: BaseModel) -> dict[str, Any]:
    """Plain, YAML-safe dict of a config (paths and enums as strings)."""
    return cfg.model_dump(mode="json")


def _format_validation(exc: ValidationError, source: str) -> str:
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (typo?)"
        problems.append(f"{loc}: {msg}")
    return f"invalid config ({source}): " + "; ".join(problems)


def _deep_copy(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in data.items()}


def _deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = _deep_copy(a)
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def resolve_path(value: str | os.PathLike[str]) -> Path:
    """Expand ``~`` and make a path absolute (for recording in run directories)."""
    return Path(value).expanduser().resolve()
