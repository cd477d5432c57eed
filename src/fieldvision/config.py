"""Typed configs: pydantic models loaded from YAML with ``--set key=value`` overrides.

Every pipeline defines its config as a tree of pydantic models with commented defaults.
`load_config` merges, in order: the model's defaults, a YAML file, then ``--set`` overrides
(dotted keys, values parsed as YAML scalars so ``--set train.lr=1e-3`` is a float). Any
validation problem becomes one `ConfigError` naming the dotted field and the source.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fieldvision.errors import ConfigError
from fieldvision.io import read_yaml

__all__ = [
    "StrictModel",
    "apply_overrides",
    "apply_runtime_overrides",
    "config_fingerprint",
    "config_to_dict",
    "fingerprint_of",
    "fingerprint_without",
    "load_config",
    "recipe_path",
    "runtime_field",
    "runtime_field_specs",
    "runtime_keys",
    "validate_runtime_value",
]

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for config sections: unknown keys are errors (catches typos like `lr_rate`)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @classmethod
    def narrow(cls: type[M], section: BaseModel | Mapping[str, Any]) -> M:
        """This config built from the fields of `section` that it declares.

        Pipeline sections inherit the configs of the pieces they drive (a model config plus
        training fields, say); this picks one piece back out, e.g. to record the model's
        own config in its weights file. A mapping (what a checkpoint hands back) works too.
        """
        if type(section) is cls:
            return section  # type: ignore[return-value]
        if isinstance(section, Mapping):
            return cls.model_validate({k: v for k, v in section.items() if k in cls.model_fields})
        return cls.model_validate(section.model_dump(include=set(cls.model_fields)))


def runtime_field(default: Any, **kwargs: Any) -> Any:
    """A config field that changes how a run executes, not what it computes.

    Runtime fields (device, precision, progress bars, workers, cache folder) are left out of
    the run fingerprint, so changing them resumes a run instead of refusing it, and they are
    the only fields a command may override on a finished run.
    """
    extra = dict(kwargs.pop("json_schema_extra", None) or {})
    extra["runtime"] = True
    return Field(default, json_schema_extra=extra, **kwargs)


def _is_runtime(info: Any) -> bool:
    extra = info.json_schema_extra
    return isinstance(extra, dict) and bool(extra.get("runtime"))


def runtime_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Dotted names of every runtime field of a config class (nested sections included)."""
    keys: list[str] = []
    for name, info in model.model_fields.items():
        dotted = f"{prefix}{name}"
        if _is_runtime(info):
            keys.append(dotted)
            continue
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.extend(runtime_keys(annotation, dotted + "."))
    return keys


def runtime_field_specs(model: type[BaseModel], prefix: str = "") -> dict[str, dict[str, Any]]:
    """What each runtime field accepts, as JSON-able data (for `validate_runtime_value`).

    Returns:
        ``{dotted key: spec}``; a spec has ``types`` (names among ``bool``, ``int``,
        ``float``, ``str``), ``nullable``, and where declared ``choices`` (a ``Literal``),
        ``pattern`` and the bounds ``gt`` / ``ge`` / ``lt`` / ``le``.
    """
    specs: dict[str, dict[str, Any]] = {}
    for name, info in model.model_fields.items():
        dotted = f"{prefix}{name}"
        annotation = info.annotation
        if _is_runtime(info):
            specs[dotted] = _field_spec(info)
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            specs.update(runtime_field_specs(annotation, dotted + "."))
    return specs


def _field_spec(info: Any) -> dict[str, Any]:
    from types import NoneType, UnionType
    from typing import Literal, Union, get_args, get_origin

    annotation = info.annotation
    union = get_origin(annotation) in (Union, UnionType)
    members = get_args(annotation) if union else (annotation,)
    spec: dict[str, Any] = {"types": [], "nullable": False}
    for member in members:
        if member is NoneType or member is None:
            spec["nullable"] = True
        elif get_origin(member) is Literal:
            spec["choices"] = list(get_args(member))
        elif member in (bool, int, float, str):
            spec["types"].append(member.__name__)
    for meta in info.metadata:
        for bound in ("gt", "ge", "lt", "le", "pattern"):
            value = getattr(meta, bound, None)
            if value is not None:
                spec[bound] = value
    return spec


def validate_runtime_value(key: str, spec: dict[str, Any], value: Any) -> Any:
    """Check a ``--set`` value against a `runtime_field_specs` entry (as pydantic would).

    Returns:
        The value (an int given for a float field becomes a float).

    Raises:
        ConfigError: The value has the wrong type, is not among the choices, breaks a
            bound or the pattern.
    """
    import re

    given = value

    def bad(why: str) -> ConfigError:
        return ConfigError(f"--set {key}={given!r}: {why}")

    if value is None:
        if spec.get("nullable"):
            return None
        raise bad("may not be null")
    if "choices" in spec and value in spec["choices"]:
        return value
    types = spec.get("types", [])
    is_bool = isinstance(value, bool)
    if "bool" in types and is_bool:
        return value
    if "int" in types and isinstance(value, int) and not is_bool:
        pass
    elif "float" in types and isinstance(value, int | float) and not is_bool:
        value = float(value)
    elif "str" in types and isinstance(value, str):
        pattern = spec.get("pattern")
        if pattern is not None and not re.search(pattern, value):
            raise bad(f"does not match {pattern}")
        return value
    else:
        wanted = [*types, *(repr(c) for c in spec.get("choices", []))]
        raise bad(f"expected {' or '.join(wanted) or 'null'}")
    for bound, ok, word in (
        ("gt", lambda v, b: v > b, ">"),
        ("ge", lambda v, b: v >= b, ">="),
        ("lt", lambda v, b: v < b, "<"),
        ("le", lambda v, b: v <= b, "<="),
    ):
        if bound in spec and not ok(value, spec[bound]):
            raise bad(f"must be {word} {spec[bound]}")
    return value


def config_fingerprint(cfg: BaseModel) -> str:
    """Stable 16-hex-digit hash of everything in `cfg` except its runtime fields.

    Two configs with the same fingerprint train the same weights from the same data.
    """
    return fingerprint_of(config_to_dict(cfg), type(cfg))


def fingerprint_of(data: dict[str, Any], model: type[BaseModel]) -> str:
    """`config_fingerprint` of a config recorded as a plain dict (e.g. a ``config.yaml``).

    Hashing what was recorded, rather than the file re-validated with today's defaults,
    keeps a run readable after a release adds a config field with a default.
    """
    return fingerprint_without(data, runtime_keys(model))


def fingerprint_without(data: dict[str, Any], keys: Iterable[str]) -> str:
    """`fingerprint_of` given the runtime `keys` instead of the config class.

    The ONNX deploy path checks a run's ``config.yaml`` with the runtime keys its export
    recorded, without importing the pipeline's config classes (they import torch).
    """
    data = _deep_copy(data)
    for key in keys:
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(leaf, None)
    blob = json.dumps(data, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def recipe_path(name: str | os.PathLike[str]) -> Path:
    """A config file path, or the packaged recipe of that name (``reid_demo``).

    ``--config FILE`` accepts a YAML path; when no such file exists and `name` names a recipe
    shipped in ``fieldvision/configs/`` (with or without ``.yaml``), that recipe is used.

    Raises:
        ConfigError: Neither a file nor a packaged recipe.
    """
    path = Path(name)
    if path.is_file():
        return path
    stem = path.name.removesuffix(".yaml")
    packaged = resources.files("fieldvision") / "configs" / f"{stem}.yaml"
    if str(path) in (stem, f"{stem}.yaml") and packaged.is_file():
        return Path(str(packaged))
    recipes = sorted(
        p.name.removesuffix(".yaml")
        for p in (resources.files("fieldvision") / "configs").iterdir()
        if p.name.endswith(".yaml")
    )
    raise ConfigError(
        f"{path}: config file not found", hint=f"packaged recipes: {', '.join(recipes)}"
    )


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
        path = recipe_path(path)
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


def apply_runtime_overrides(cfg: M, overrides: Iterable[str]) -> M:
    """`cfg` with ``--set`` overrides of its runtime fields only (for finished runs).

    A finished run's weights were trained with its config; only fields that change how a
    command executes (device, precision, workers, progress, ...) may differ at prediction.

    Raises:
        ConfigError: An override names a non-runtime field, or has a bad value.
    """
    overrides = list(overrides)
    if not overrides:
        return cfg
    allowed = set(runtime_keys(type(cfg)))
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        if key not in allowed:
            raise ConfigError(
                f"--set {key}: a finished run's config can only be changed in its runtime "
                "fields (its weights were trained with the rest)",
                hint=f"runtime fields: {', '.join(sorted(allowed))}",
            )
    return load_config(type(cfg), overrides=overrides, base=config_to_dict(cfg))


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
