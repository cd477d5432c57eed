"""The model registry: every full model has a name, a config class and a weights format.

In the style of timm's registry, a model class is registered with the pydantic config that
builds it::

    @register_model("reid_embedder", ReIDModelConfig)
    class ReIDModel(nn.Module):
        def __init__(self, cfg: ReIDModelConfig) -> None: ...

``create_model(name, cfg, **dims)`` builds one from its config (a config object or a plain
mapping) plus *data-derived dimensions* (numbers of classes, target scales: things the user
does not set but the data decides). `save_model` writes a ``.safetensors`` file whose
metadata records the registry name, the config and the dimensions, so `load_model` rebuilds
the model from the file alone, without the run's YAML.

Every registered model takes images in ``[0, 1]`` and normalises them itself, so training,
TTA, export and ONNX inference all feed the same thing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from pydantic import BaseModel, ValidationError
from torch import nn

from fieldvision.errors import ConfigError, RunError
from fieldvision.io import atomic_path
from fieldvision.registry import Registry

__all__ = [
    "MODELS",
    "ModelSpec",
    "create_model",
    "load_model",
    "model_record",
    "register_model",
    "save_model",
]

M = TypeVar("M", bound=type[nn.Module])

_META_NAME = "fieldvision.model"
_META_CONFIG = "fieldvision.config"
_META_DIMS = "fieldvision.dims"


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its class and the config class its constructor takes."""

    name: str
    cls: type[nn.Module]
    config: type[BaseModel]


MODELS: Registry[ModelSpec] = Registry("model")


def _builtin_models() -> None:
    """Import the modules that register fieldvision's own models (lazily: they pull in
    timm), so a weights file can be loaded in a process that imported nothing else."""
    import fieldvision.models.biomass
    import fieldvision.models.mil
    import fieldvision.models.reid  # noqa: F401


def register_model(name: str, config: type[BaseModel]) -> Callable[[M], M]:
    """Class decorator registering a model under `name` with its config class.

    The class must accept ``(cfg, **dims)``, keep ``self.cfg`` (the config) and
    ``self.dims`` (a dict of the data-derived dimensions it was built with).
    """

    def deco(cls: M) -> M:
        MODELS.register(name)(ModelSpec(name, cls, config))
        cls.registry_name = name  # type: ignore[attr-defined]
        return cls

    return deco


def create_model(name: str, cfg: BaseModel | Mapping[str, Any], **dims: Any) -> nn.Module:
    """Build the registered model `name`.

    Args:
        name: Registry name (see ``MODELS.names()``).
        cfg: Its config object, or a mapping validated into one.
        **dims: Data-derived dimensions (e.g. ``n_species=4``).

    Raises:
        ConfigError: Unknown name, or a config that does not validate.
    """
    _builtin_models()
    spec = MODELS.get(name)
    if not isinstance(cfg, BaseModel):
        try:
            cfg = spec.config.model_validate(dict(cfg))
        except ValidationError as exc:
            raise ConfigError(f"model {name!r}: invalid config: {exc}") from None
    return spec.cls(cfg, **dims)


def model_record(model: nn.Module) -> dict[str, Any]:
    """``{"name", "config", "dims"}`` of a registered model (JSON-safe)."""
    _builtin_models()
    name = getattr(model, "registry_name", None)
    if name is None or name not in MODELS:
        raise TypeError(f"{type(model).__name__} is not a registered model")
    spec = MODELS.get(name)
    cfg = spec.config.model_validate(model.cfg.model_dump(include=set(spec.config.model_fields)))
    return {
        "name": name,
        "config": cfg.model_dump(mode="json"),
        "dims": json.loads(json.dumps(getattr(model, "dims", {}))),
    }


def save_model(model: nn.Module, path: str | os.PathLike[str]) -> Path:
    """Write a registered model's weights and record as ``.safetensors``, atomically."""
    from safetensors.torch import save_file

    record = model_record(model)
    metadata = {
        _META_NAME: record["name"],
        _META_CONFIG: json.dumps(record["config"], sort_keys=True),
        _META_DIMS: json.dumps(record["dims"], sort_keys=True),
    }
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)
    return path


def load_model(path: str | os.PathLike[str], map_location: str = "cpu") -> nn.Module:
    """Rebuild a model from a `save_model` file (strict weights, eval mode).

    The recorded ``pretrained`` file is never re-read: the saved weights replace it.

    Raises:
        RunError: Missing or unreadable file, not a fieldvision model file, or weights that
            do not fit the recorded architecture.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path}: model file not found", hint="the run may be unfinished")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        state = load_file(str(path), device=map_location)
    except Exception as exc:  # safetensors raises several types for damaged files
        raise RunError(f"{path}: unreadable model file ({exc.__class__.__name__}: {exc})") from None
    if _META_NAME not in meta:
        raise RunError(f"{path}: not a fieldvision model file (no registry record)")
    try:
        config = json.loads(meta[_META_CONFIG])
        dims = json.loads(meta.get(_META_DIMS, "{}"))
    except ValueError:
        raise RunError(f"{path}: damaged model record") from None
    if "pretrained" in config:
        config["pretrained"] = False
    try:
        model = create_model(meta[_META_NAME], config, **dims)
    except (ConfigError, TypeError) as exc:
        raise RunError(f"{path}: damaged or incompatible model record ({exc})") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise RunError(f"{path}: weights do not fit the recorded model ({first})") from None
    return model.to(map_location).eval()


def load_state(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The raw tensors of a model file (for tests and tools)."""
    from safetensors.torch import load_file

    return load_file(str(path))
