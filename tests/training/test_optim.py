"""The optimiser recipe: warmup-cosine factor, AdamW parameter groups, per-group LR."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from fieldvision.training.optim import (
    OptimConfig,
    backbone_modules,
    build_optimizer,
    param_groups,
    warmup_cosine,
)


class _Net(nn.Module):
    """A `backbone` (conv + BN) and a head (Linear + LayerNorm)."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.head = nn.Sequential(nn.Linear(4, 2), nn.LayerNorm(2))


def _groups_by_name(groups: list[dict]) -> dict[str, dict]:
    return {g["name"]: g for g in groups}


def _ids(params) -> set[int]:
    return {id(p) for p in params}


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({}, None),
        ({"lr": 1e-2, "warmup_epochs": 0, "min_lr_ratio": 1.0, "backbone_lr_ratio": 0.1}, None),
        ({"lr": 0.0}, "lr"),
        ({"weight_decay": -1e-4}, "weight_decay"),
        ({"warmup_epochs": -1}, "warmup_epochs"),
        ({"min_lr_ratio": 1.5}, "min_lr_ratio"),
        ({"backbone_lr_ratio": 0.0}, "backbone_lr_ratio"),
        ({"freeze_backbone_epochs": 1.5}, None),
        ({"freeze_backbone_epochs": -1}, "freeze_backbone_epochs"),
        ({"freeze_backbone_epochs": -0.5}, "freeze_backbone_epochs"),
        ({"freeze_backbone_epochs": float("inf")}, "freeze_backbone_epochs"),  # never unfreezes
        ({"freeze_backbone_epochs": float("nan")}, "freeze_backbone_epochs"),
        ({"learning_rate": 1e-3}, "learning_rate"),  # typo: unknown field
    ],
)
def test_optim_config_validation(kwargs, error):
    if error is None:
        cfg = OptimConfig(**kwargs)
        assert cfg.model_dump() == {**OptimConfig().model_dump(), **kwargs}
    else:
        with pytest.raises(ValidationError, match=error):
            OptimConfig(**kwargs)


# --------------------------------------------------------------------------- schedule


@pytest.mark.parametrize(
    ("step", "total", "warmup", "expected"),
    [
        (0, 100, 10, 0.1),  # step 0 already learns
        (4, 100, 10, 0.5),
        (9, 100, 10, 1.0),  # end of warmup
        (10, 100, 10, 1.0),  # cosine starts at 1
        (55, 100, 10, (1 + 0.05) / 2),  # halfway through the cosine
        (100, 100, 10, 0.05),  # end
        (500, 100, 10, 0.05),  # flat after the end
        (0, 100, 0, 1.0),  # no warmup
        (50, 100, 0, (1 + 0.05) / 2),
        (0, 1, 5, 0.2),  # warmup longer than the run: still a linear ramp
    ],
)
def test_warmup_cosine_values(step, total, warmup, expected):
    assert warmup_cosine(step, total, warmup, 0.05) == pytest.approx(expected)


def test_warmup_cosine_is_monotone_in_each_phase():
    total, warm, floor = 100, 10, 0.05
    ramp = [warmup_cosine(s, total, warm, floor) for s in range(warm)]
    decay = [warmup_cosine(s, total, warm, floor) for s in range(warm, total + 5)]
    assert all(a < b for a, b in itertools.pairwise(ramp))
    assert all(a >= b for a, b in itertools.pairwise(decay))
    assert min(decay) == pytest.approx(floor)


def test_build_optimizer_groups_and_stepped_lr():
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    cfg = OptimConfig(lr=1.0, weight_decay=0.1, min_lr_ratio=0.0)
    opt, sched = build_optimizer(model, cfg, total_steps=6, warmup_steps=2)
    assert isinstance(opt, torch.optim.AdamW)
    decays = sorted((g["weight_decay"], len(g["params"])) for g in opt.param_groups)
    assert decays == [(0.0, 3), (0.1, 1)]  # only the Linear weight is decayed
    lrs = []
    for _ in range(7):
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    expected = [
        0.5,
        1.0,
        1.0,
        0.5 + 0.5 * math.cos(math.pi / 4),
        0.5,
        0.5 - 0.5 * math.cos(math.pi / 4),
        0,
    ]
    for group_lrs, want in zip(lrs, expected, strict=True):
        assert group_lrs == pytest.approx([want] * len(group_lrs), abs=1e-9)


# --------------------------------------------------------------------------- groups


def test_param_groups_split_backbone_and_decay():
    net = _Net()
    cfg = OptimConfig(lr=0.1, weight_decay=0.01, backbone_lr_ratio=0.25)
    groups = _groups_by_name(param_groups(net, cfg))
    assert set(groups) == {"backbone", "backbone_no_decay", "head", "head_no_decay"}
    conv, bn = net.backbone
    linear, norm = net.head
    assert _ids(groups["backbone"]["params"]) == {id(conv.weight)}
    assert _ids(groups["backbone_no_decay"]["params"]) == _ids(
        [conv.bias, bn.weight, bn.bias]
    )  # biases and norm scales are not decayed
    assert _ids(groups["head"]["params"]) == {id(linear.weight)}
    assert _ids(groups["head_no_decay"]["params"]) == _ids([linear.bias, norm.weight, norm.bias])
    for name, group in groups.items():
        assert group["lr"] == pytest.approx(0.025 if name.startswith("backbone") else 0.1)
        assert group["weight_decay"] == (0.0 if name.endswith("no_decay") else 0.01)


def test_backbone_group_keeps_its_ratio_through_the_schedule():
    cfg = OptimConfig(lr=1.0, backbone_lr_ratio=0.1, min_lr_ratio=0.0)
    opt, sched = build_optimizer(_Net(), cfg, total_steps=10, warmup_steps=4)
    for step in range(12):
        factor = warmup_cosine(step, 10, 4, 0.0)
        for group in opt.param_groups:
            want = factor * (0.1 if group["name"].startswith("backbone") else 1.0)
            assert group["lr"] == pytest.approx(want, abs=1e-12), (step, group["name"])
        opt.step()
        sched.step()


def test_nested_backbone_is_found_and_frozen_params_skipped():
    # A training system wraps the model: the backbone is `model.backbone`.
    outer = nn.ModuleDict({"model": _Net(), "loss_head": nn.Linear(2, 3, bias=False)})
    frozen = outer["model"].head[1].bias
    frozen.requires_grad_(False)
    groups = _groups_by_name(param_groups(outer, OptimConfig(backbone_lr_ratio=0.5)))
    backbone = outer["model"].backbone
    assert _ids(groups["backbone"]["params"]) | _ids(groups["backbone_no_decay"]["params"]) == _ids(
        backbone.parameters()
    )
    assert id(outer["loss_head"].weight) in _ids(groups["head"]["params"])
    everything = set().union(*(_ids(g["params"]) for g in groups.values()))
    assert id(frozen) not in everything
    assert everything == {id(p) for p in outer.parameters() if p.requires_grad}


def test_module_without_backbone_has_only_head_groups():
    groups = param_groups(nn.Linear(2, 2), OptimConfig(backbone_lr_ratio=0.1))
    assert [g["name"] for g in groups] == ["head_no_decay", "head"]
    assert all(g["lr"] == OptimConfig().lr for g in groups)


def test_fully_frozen_module_gives_no_groups():
    net = nn.Linear(2, 2).requires_grad_(False)
    assert param_groups(net, OptimConfig()) == []


def test_shared_params_are_counted_once():
    shared = nn.Linear(3, 3)
    a = nn.Sequential(shared, nn.ReLU())
    b = nn.Sequential(nn.Linear(3, 1), shared)  # `shared` appears in both modules
    groups = param_groups([a, b], OptimConfig())
    params = [p for g in groups for p in g["params"]]
    assert len(params) == len({id(p) for p in params}) == 4  # shared.w/b + b[0].w/b
    # AdamW itself refuses a parameter listed in two groups: building must work.
    opt, _ = build_optimizer([a, b], OptimConfig(), total_steps=2, warmup_steps=0)
    assert sum(len(g["params"]) for g in opt.param_groups) == 4


def test_tied_weights_inside_one_module_are_counted_once():
    net = nn.Sequential(nn.Embedding(5, 3), nn.Linear(3, 5, bias=False))
    net[1].weight = net[0].weight  # weight tying
    groups = param_groups(net, OptimConfig())
    assert [len(g["params"]) for g in groups] == [1]


# --------------------------------------------------------------------------- freezing


def test_backbone_modules_are_the_backbone_lr_groups():
    outer = nn.ModuleDict({"model": _Net(), "loss_head": nn.Linear(2, 3)})
    found = backbone_modules(outer)
    assert found == [outer["model"].backbone]
    groups = param_groups(outer, OptimConfig())
    in_backbone_groups = {id(p) for g in groups if g["backbone"] for p in g["params"]}
    assert in_backbone_groups == _ids(outer["model"].backbone.parameters())
    assert backbone_modules(nn.Linear(2, 2)) == []


@pytest.mark.parametrize(("freeze", "warmup"), [(0, 3), (4, 3), (4, 0), (20, 3)])
def test_freeze_steps_zero_the_backbone_then_rewarm_it(freeze, warmup):
    total = 16
    cfg = OptimConfig(lr=1.0, backbone_lr_ratio=0.1, min_lr_ratio=0.0)
    opt, sched = build_optimizer(_Net(), cfg, total, warmup, freeze_steps=freeze)
    for step in range(total):
        factor = warmup_cosine(step, total, warmup, 0.0)
        if step < freeze:
            backbone = 0.0
        elif freeze and warmup:  # its own linear ramp, on top of the shared schedule
            backbone = factor * min(1.0, (step - freeze + 1) / warmup)
        else:
            backbone = factor
        for group in opt.param_groups:
            want = 0.1 * backbone if group["backbone"] else factor
            assert group["lr"] == pytest.approx(want, abs=1e-12), (step, group["name"])
        opt.step()
        sched.step()
