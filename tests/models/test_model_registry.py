"""The model registry: create from a config, save/load round trip, records, errors.

Every test is parametrised over ``MODELS.names()``, so a newly registered model is tested
for free; `DIMS` and `EXTRA_INPUTS` only hold what a model needs beyond ``model(images)``.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

import fieldvision.models.biomass
import fieldvision.models.mil
import fieldvision.models.reid  # noqa: F401  (registers the models)
from fieldvision.errors import ConfigError, RunError
from fieldvision.models.backbone import create_backbone
from fieldvision.models.registry import (
    MODELS,
    create_model,
    load_model,
    model_record,
    save_model,
)

NAMES = MODELS.names()
# Small data-derived dimensions (a model absent here is built without any).
DIMS: dict[str, dict] = {
    "biomass_phase1": {"n_species": 3, "n_states": 2},
    "biomass_phase2": {"meta_dim": 4, "target_scale": [10.0, 2.0, 4.0, 14.0, 16.0]},
    "mil_expert": {"num_classes": 3},
    "mil_scouter": {"grid": [4, 4]},
}
# Inputs besides the images (a model absent here is called as ``model(images)``).
EXTRA_INPUTS = {"biomass_phase2": lambda b: (torch.randn(b, 4),)}
# Models whose first input is not a batch of images (absent here: ``_images(b)``).
INPUTS = {
    "mil_expert": lambda b: torch.rand(
        b, 4, 3, 32, 32, generator=torch.Generator().manual_seed(b)
    ),  # bags of 4 tiles
}


def _images(b: int = 2) -> torch.Tensor:
    return torch.rand(b, 3, 32, 64, generator=torch.Generator().manual_seed(b))  # in [0, 1]


def _build(name: str, cfg=None) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name, {} if cfg is None else cfg, **DIMS.get(name, {}))


def _run(name: str, model: nn.Module, b: int = 2) -> dict:
    torch.manual_seed(1)
    extra = EXTRA_INPUTS[name](b) if name in EXTRA_INPUTS else ()
    with torch.no_grad():
        return model(INPUTS[name](b) if name in INPUTS else _images(b), *extra)


def _assert_same_outputs(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key, value in a.items():
        if value is None:
            assert b[key] is None, key
        else:
            assert torch.equal(value, b[key]), key


def _trained(name: str) -> nn.Module:
    """A model whose BatchNorm statistics differ from a fresh one's (train-mode passes)."""
    model = _build(name).train()
    for _ in range(2):
        _run(name, model, b=4)
    return model.eval()


def test_the_builtin_models_are_registered():
    assert {"biomass_phase1", "biomass_phase2", "reid_embedder"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_create_model_from_default_config(name):
    spec = MODELS.get(name)
    from_mapping = _build(name)
    from_object = _build(name, spec.config())
    for model in (from_mapping, from_object):
        assert isinstance(model, spec.cls) and model.registry_name == name
        assert model.cfg == spec.config()
    out = _run(name, from_mapping.eval())
    assert out and all(v is None or torch.isfinite(v).all() for v in out.values())
    _assert_same_outputs(out, _run(name, from_object.eval()))  # same seed, same model


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip_gives_identical_outputs(name, tmp_path):
    model = _trained(name)
    path = save_model(model, tmp_path / "model.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]  # atomic
    loaded = load_model(path)
    assert type(loaded) is type(model) and not loaded.training
    assert model_record(loaded) == model_record(model)
    assert loaded.state_dict().keys() == model.state_dict().keys()
    _assert_same_outputs(_run(name, model), _run(name, loaded))


@pytest.mark.parametrize("name", NAMES)
def test_model_record_is_json_safe_and_rebuilds_the_config(name):
    spec = MODELS.get(name)

    class Section(spec.config):  # a pipeline section that extends the model's config
        epochs: int = 3

    model = _build(name, Section(epochs=9))
    record = model_record(model)
    assert json.loads(json.dumps(record)) == record
    assert record["name"] == name
    assert set(record["config"]) == set(spec.config.model_fields)  # no "epochs"
    assert spec.config.model_validate(record["config"]) == model.cfg == spec.config()
    assert record["dims"] == json.loads(json.dumps(model.dims))


def test_model_record_of_an_unregistered_module():
    with pytest.raises(TypeError, match="not a registered model"):
        model_record(nn.Linear(2, 2))


def _tamper(kind: str, path):
    """Damage a saved model file in place; returns the path to load."""
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
    state = load_file(str(path))
    # (not a BatchNorm ``num_batches_tracked``: torch fills a missing one in on purpose)
    first = next(k for k in state if k.endswith(".weight"))
    if kind == "missing file":
        path.unlink()
    elif kind == "not a model file":
        save_file(state, str(path))  # the tensors, without the registry record
    elif kind == "garbage bytes":
        path.write_bytes(b"\x00" * 64)
    elif kind == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    elif kind == "damaged record":
        save_file(state, str(path), metadata={**meta, "fieldvision.config": "{not json"})
    elif kind == "reshaped tensor":
        state[first] = torch.zeros(*state[first].shape, 2)
        save_file(state, str(path), metadata=meta)
    elif kind == "missing tensor":
        del state[first]
        save_file(state, str(path), metadata=meta)
    elif kind == "extra tensor":
        state["stray.weight"] = torch.zeros(2)
        save_file(state, str(path), metadata=meta)
    return path


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    ("kind", "error", "match"),
    [
        ("missing file", RunError, "not found"),
        ("not a model file", RunError, "not a fieldvision model file"),
        ("garbage bytes", RunError, "unreadable"),
        ("truncated", RunError, "unreadable"),
        ("damaged record", RunError, "damaged model record"),
        ("reshaped tensor", RunError, "do not fit"),
        ("missing tensor", RunError, "do not fit"),
        ("extra tensor", RunError, "do not fit"),
    ],
)
def test_load_model_refuses_bad_files(name, kind, error, match, tmp_path):
    path = save_model(_build(name), tmp_path / "model.safetensors")
    with pytest.raises(error, match=match):
        load_model(_tamper(kind, path))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    ("cfg", "error", "match"),
    [
        ({"no_such_field": 1}, ConfigError, "no_such_field"),
        ({"backbone": 3}, ConfigError, "backbone"),
        ({"pretrained_strict": "sometimes"}, ConfigError, "pretrained_strict"),
        ({"pretrained": True}, ConfigError, "download"),
    ],
)
def test_create_model_invalid_config(name, cfg, error, match):
    if cfg.keys() - {"no_such_field"} - MODELS.get(name).config.model_fields.keys():
        pytest.skip(f"{name} has no such field")
    with pytest.raises(error, match=match):
        _build(name, cfg)


def test_create_model_unknown_name():
    with pytest.raises(ConfigError, match="unknown model 'no_such_model'"):
        create_model("no_such_model", {})


@pytest.mark.parametrize("name", NAMES)
def test_recorded_pretrained_file_is_not_reread_on_load(name, tmp_path):
    spec = MODELS.get(name)
    if "pretrained" not in spec.config.model_fields:
        pytest.skip(f"{name} has no pretrained weights")
    torch.manual_seed(5)
    backbone = create_backbone(spec.config().backbone)
    weights = tmp_path / "backbone.safetensors"
    save_file(backbone.state_dict(), str(weights))
    model = _build(name, {"pretrained": str(weights)}).eval()
    if hasattr(model, "backbone"):  # the file was read when the model was built
        for key, value in backbone.state_dict().items():
            assert torch.equal(model.backbone.state_dict()[key], value), key
    path = save_model(model, tmp_path / "model.safetensors")
    assert model_record(model)["config"]["pretrained"] == str(weights)
    weights.unlink()  # a run moved to another machine: the pretrained file is gone
    loaded = load_model(path)
    assert loaded.cfg.pretrained is False
    _assert_same_outputs(_run(name, model), _run(name, loaded))
