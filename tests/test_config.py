from pathlib import Path
from typing import Literal

import pytest

from fieldvision.config import StrictModel, apply_overrides, config_to_dict, load_config
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
    with pytest.raises(ConfigError, match="nope.yaml: file not found"):
        load_config(Cfg, tmp_path / "nope.yaml")


def test_apply_overrides_does_not_mutate_input():
    data = {"a": {"b": 1}}
    out = apply_overrides(data, ["a.b=2", "a.c.d=true"])
    assert data == {"a": {"b": 1}}
    assert out == {"a": {"b": 2, "c": {"d": True}}}


def test_config_roundtrip_through_dict():
    cfg = load_config(Cfg, overrides=["train.epochs=9"])
    assert load_config(Cfg, base=config_to_dict(cfg)) == cfg
