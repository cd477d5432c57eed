"""MIL config: every packaged recipe validates; schedule fields reach the expert section."""

from __future__ import annotations

from importlib import resources

import pytest

from fieldvision.config import load_config
from fieldvision.errors import ConfigError
from fieldvision.pipelines.mil import MILConfig

RECIPES = sorted(
    p.name.removesuffix(".yaml")
    for p in (resources.files("fieldvision") / "configs").iterdir()
    if p.name.startswith("mil_") and p.name.endswith(".yaml")
)


def test_the_mil_recipes_are_found():
    assert {"mil_demo", "mil_deeppcb_tinycnn_8x8", "mil_deeppcb_small_resnet"} <= set(RECIPES)


@pytest.mark.parametrize("name", RECIPES)
def test_every_packaged_mil_recipe_validates(name):
    cfg = load_config(MILConfig, name)
    assert cfg.expert.min_epochs <= cfg.expert.epochs


def test_the_deeppcb_recipe_keeps_training_through_the_plateau():
    # Validation stayed at chance until epoch ~16 on DeepPCB: early stopping must not fire
    # before epoch 20.
    cfg = load_config(MILConfig, "mil_deeppcb_small_resnet")
    assert cfg.expert.min_epochs >= 20 and cfg.expert.epochs >= cfg.expert.min_epochs


def test_min_epochs_beyond_the_budget_is_refused():
    with pytest.raises(ConfigError, match="min_epochs"):
        load_config(MILConfig, "mil_demo", ["expert.min_epochs=99"])
