from pathlib import Path
from typing import Literal

import pytest
from pydantic import ValidationError

from fieldvision.config import (
    StrictModel,
    apply_overrides,
    apply_runtime_overrides,
    config_fingerprint,
    config_to_dict,
    load_config,
    recipe_path,
    runtime_field,
    runtime_keys,
)
from fieldvision.errors import ConfigError


class Train(StrictModel):
    epochs: int = 3  # passes over the data
    lr: float = 1e-3
    aggregation: Literal["mean", "attention"] = "attention"


class Cfg(StrictModel):
    name: str = "run"
    train: Train = Train()


def test_defaults_when_no_file_or_overrides():
    cfg = load_config(Cfg)
    assert cfg.train.epochs == 3 and cfg.name == "run"


def test_file_then_overrides_in_order(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 7\n  lr: 0.5\n")
    cfg = load_config(Cfg, path, ["train.lr=1e-2", "name=x"], base={"train": {"epochs": 1}})
    assert cfg.train.epochs == 7  # the file wins over base
    assert cfg.train.lr == pytest.approx(1e-2)  # parsed as a float, not a string
    assert cfg.name == "x"


@pytest.mark.parametrize(
    ("overrides", "yaml_text", "message"),
    [
        (["train.epoch=3"], None, "train.epoch: unknown field"),
        (["train.epochs=many"], None, "train.epochs"),
        (["train.aggregation=max"], None, "train.aggregation"),
        (["noequals"], None, "expected key=value"),
        (["=3"], None, "empty key"),
        ([], "- a\n- b\n", "top level must be a mapping"),
        ([], "train: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_config_names_the_field(tmp_path, overrides, yaml_text, message):
    path = None
    if yaml_text is not None:
        path = tmp_path / "bad.yaml"
        path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=message):
        load_config(Cfg, path, overrides)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: config file not found") as info:
        load_config(Cfg, tmp_path / "nope.yaml")
    assert str(tmp_path / "nope.yaml") in str(info.value)


def test_apply_overrides_does_not_mutate_input():
    data = {"a": {"b": 1}}
    out = apply_overrides(data, ["a.b=2", "a.c.d=true"])
    assert data == {"a": {"b": 1}}
    assert out == {"a": {"b": 2, "c": {"d": True}}}


def test_config_roundtrip_through_dict():
    cfg = load_config(Cfg, overrides=["train.epochs=9"])
    assert load_config(Cfg, base=config_to_dict(cfg)) == cfg


# --------------------------------------------------------------------------- runtime fields


class Runtime(StrictModel):
    device: str = runtime_field("auto", pattern="^(auto|cpu|cuda)$")
    workers: int = runtime_field(0, ge=0)


class Section(StrictModel):
    lr: float = 1e-3
    progress: bool = runtime_field(True)
    runtime: Runtime = Runtime()


class RunCfg(StrictModel):
    seed: int = 0
    cache: str | None = runtime_field(None)
    train: Section = Section()
    optional: Train | None = None  # a section that may be absent


def test_runtime_keys_are_dotted_and_nested():
    assert runtime_keys(RunCfg) == [
        "cache",
        "train.progress",
        "train.runtime.device",
        "train.runtime.workers",
    ]
    assert runtime_keys(Cfg) == []
    assert runtime_keys(Runtime, "x.") == ["x.device", "x.workers"]


def test_runtime_field_keeps_validation():
    with pytest.raises(ValidationError, match="device"):
        Runtime(device="tpu")
    with pytest.raises(ValidationError, match="workers"):
        Runtime(workers=-1)


@pytest.mark.parametrize(
    ("overrides", "same"),
    [
        ([], True),
        (["cache=/tmp/c", "train.progress=false"], True),
        (["train.runtime.device=cpu", "train.runtime.workers=8"], True),
        (["seed=1"], False),
        (["train.lr=0.1"], False),
        (["optional.epochs=5"], False),
        (["cache=/tmp/c", "train.lr=0.1"], False),
    ],
)
def test_config_fingerprint_excludes_only_runtime_fields(overrides, same):
    base = config_fingerprint(RunCfg())
    fp = config_fingerprint(load_config(RunCfg, overrides=overrides))
    assert len(fp) == 16 and int(fp, 16) >= 0
    assert (fp == base) is same


def test_config_fingerprint_is_stable_and_leaves_the_config_alone():
    cfg = load_config(RunCfg, overrides=["cache=/c", "train.lr=0.5"])
    dumped = config_to_dict(cfg)
    assert config_fingerprint(cfg) == config_fingerprint(RunCfg.model_validate(dumped))
    assert config_to_dict(cfg) == dumped  # runtime fields removed from a copy only


# --------------------------------------------------------------------------- recipes


@pytest.mark.parametrize("name", ["reid_demo", "reid_demo.yaml", "biomass_demo"])
def test_recipe_path_finds_packaged_recipes(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)  # no local file of that name
    path = recipe_path(name)
    assert path.is_file() and path.name == name.removesuffix(".yaml") + ".yaml"
    assert path.parent.name == "configs" and path.parent.parent.name == "fieldvision"


def test_recipe_path_prefers_an_existing_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    local = tmp_path / "reid_demo.yaml"
    local.write_text("seed: 1\n")
    assert recipe_path("reid_demo.yaml") == Path("reid_demo.yaml")
    other = tmp_path / "mine.yml"
    other.write_text("seed: 2\n")
    assert recipe_path(other) == other


@pytest.mark.parametrize("name", ["no_such_recipe", "no_such_recipe.yaml", "sub/reid_demo.yaml"])
def test_recipe_path_unknown_names_list_the_recipes(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="config file not found") as info:
        recipe_path(name)
    from importlib import resources

    shipped = sorted(
        p.name.removesuffix(".yaml")
        for p in (resources.files("fieldvision") / "configs").iterdir()
        if p.name.endswith(".yaml")
    )
    assert {"biomass_demo", "reid_demo"} <= set(shipped)
    assert f"packaged recipes: {', '.join(shipped)}" in str(info.value)


def test_load_config_reads_a_packaged_recipe(tmp_path, monkeypatch):
    from fieldvision.pipelines.reid.config import ReIDPipelineConfig

    monkeypatch.chdir(tmp_path)
    cfg = load_config(ReIDPipelineConfig, "reid_demo", ["train.epochs=2"])
    assert cfg.model.backbone == "fv_tiny_cnn" and cfg.train.epochs == 2


# --------------------------------------------------------------------------- finished runs


@pytest.mark.parametrize(
    ("overrides", "expected", "error"),
    [
        (["cache=/c"], {"cache": "/c"}, None),
        (
            ["train.runtime.device=cpu", "train.progress=false"],
            {"train.runtime.device": "cpu", "train.progress": False},
            None,
        ),
        (["train.lr=0.1"], None, "--set train.lr: a finished run's config can only be changed"),
        (["seed=3"], None, "--set seed"),
        (["cache=/c", "train=x"], None, "--set train:"),
        (["train.runtime=cpu"], None, "--set train.runtime:"),  # a section, not a field
        (["train.runtime.device=tpu"], None, "train.runtime.device"),  # still validated
        (["train.runtime.workers"], None, "expected key=value"),
    ],
)
def test_apply_runtime_overrides(overrides, expected, error):
    cfg = load_config(RunCfg, overrides=["train.lr=0.5", "seed=7"])
    if error is not None:
        with pytest.raises(ConfigError, match=error) as info:
            apply_runtime_overrides(cfg, overrides)
        if "finished run" in error:
            assert "runtime fields: cache, train.progress" in str(info.value)
        return
    out = apply_runtime_overrides(cfg, overrides)
    flat = config_to_dict(out)
    for key, value in expected.items():
        node = flat
        for part in key.split("."):
            node = node[part]
        assert node == value, key
    assert out.train.lr == 0.5 and out.seed == 7  # the rest is kept
    assert config_fingerprint(out) == config_fingerprint(cfg)


def test_apply_runtime_overrides_without_overrides_returns_the_config():
    cfg = RunCfg()
    assert apply_runtime_overrides(cfg, []) is cfg


# --------------------------------------------------------------------------- narrow


class Lr(StrictModel):
    lr: float = 1e-3
    warmup: int = 0


class Combined(Lr, Train):
    extra: str = "x"


def test_narrow_picks_the_declared_fields():
    combined = Combined(lr=0.5, warmup=2, epochs=9, extra="y")
    lr = Lr.narrow(combined)
    assert type(lr) is Lr and lr == Lr(lr=0.5, warmup=2)
    train = Train.narrow(combined)
    assert type(train) is Train and train.epochs == 9 and train.lr == 0.5


def test_narrow_returns_the_same_object_for_its_own_type_and_validates():
    lr = Lr(lr=0.2)
    assert Lr.narrow(lr) is lr

    class Loose(StrictModel):
        lr: str = "fast"  # same name, incompatible type

    with pytest.raises(ValidationError, match="lr"):
        Lr.narrow(Loose())

    class Partial(StrictModel):
        warmup: int = 5

    assert Lr.narrow(Partial()) == Lr(warmup=5)  # missing fields take their defaults


# --- runtime fields without the config class (the ONNX deploy path) ----------------------


class Knobs(StrictModel):
    budget: float = runtime_field(0.3, gt=0, le=1)
    mode: Literal["fast", "exact"] = runtime_field("fast")
    alpha: float | None = runtime_field(None)
    epochs: int = 3


class KnobCfg(StrictModel):
    knobs: Knobs = Knobs()
    run: RunCfg = RunCfg()


def test_runtime_field_specs_record_types_bounds_and_choices():
    from fieldvision.config import runtime_field_specs

    specs = runtime_field_specs(KnobCfg)
    assert list(specs) == runtime_keys(KnobCfg)
    assert specs["knobs.budget"] == {"types": ["float"], "nullable": False, "gt": 0, "le": 1}
    assert specs["knobs.mode"] == {"types": [], "nullable": False, "choices": ["fast", "exact"]}
    assert specs["knobs.alpha"] == {"types": ["float"], "nullable": True}
    assert specs["run.cache"] == {"types": ["str"], "nullable": True}
    assert specs["run.train.runtime.device"]["pattern"] == "^(auto|cpu|cuda)$"
    assert specs["run.train.runtime.workers"] == {"types": ["int"], "nullable": False, "ge": 0}


@pytest.mark.parametrize(
    ("key", "value", "expected", "error"),
    [
        ("knobs.budget", 1, 1.0, None),
        ("knobs.budget", 0.5, 0.5, None),
        ("knobs.budget", 0, None, "must be > 0"),
        ("knobs.budget", 1.5, None, "knobs.budget=1.5: must be <= 1"),
        ("knobs.budget", True, None, "expected float"),
        ("knobs.budget", None, None, "may not be null"),
        ("knobs.mode", "exact", "exact", None),
        ("knobs.mode", "slow", None, "expected 'fast' or 'exact'"),
        ("knobs.alpha", None, None, None),
        ("run.cache", "/tmp/c", "/tmp/c", None),
        ("run.train.progress", False, False, None),
        ("run.train.progress", "no", None, "expected bool"),
        ("run.train.runtime.workers", -1, None, "must be >= 0"),
        ("run.train.runtime.workers", 2.5, None, "expected int"),
        ("run.train.runtime.device", "tpu", None, "does not match"),
    ],
)
def test_validate_runtime_value_agrees_with_the_model(key, value, expected, error):
    from fieldvision.config import runtime_field_specs, validate_runtime_value

    spec = runtime_field_specs(KnobCfg)[key]
    if error is None:
        assert validate_runtime_value(key, spec, value) == expected
        load_config(KnobCfg, overrides=[f"{key}={'null' if value is None else value}"])
    else:
        with pytest.raises(ConfigError, match=error):
            validate_runtime_value(key, spec, value)


def test_fingerprint_without_the_keys_is_fingerprint_of_the_class():
    from fieldvision.config import fingerprint_of, fingerprint_without

    data = config_to_dict(load_config(KnobCfg, overrides=["knobs.budget=0.9", "run.seed=4"]))
    assert fingerprint_without(data, runtime_keys(KnobCfg)) == fingerprint_of(data, KnobCfg)
    assert fingerprint_without(data, []) != fingerprint_of(data, KnobCfg)
