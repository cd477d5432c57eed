"""Frozen-then-unfrozen backbone: weights, gradients, BN statistics, LR, modes."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from pydantic import ValidationError
from torch import nn
from torch.utils.data import DataLoader

from fieldvision.config import load_config
from fieldvision.errors import ConfigError
from fieldvision.pipelines.biomass.config import BiomassConfig
from fieldvision.training.freeze import BackboneFreeze
from fieldvision.training.optim import OptimConfig
from fieldvision.training.selection import PreciseBN
from fieldvision.training.system import StepOutput, TaskSystem
from fieldvision.training.trainer import build_trainer

BATCHES = 4  # training batches per epoch


class _Net(nn.Module):
    """A conv + BatchNorm + dropout `backbone` and a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 4, 3),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(4, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(image)).squeeze(-1)


class _System(TaskSystem):
    def __init__(self, optim: OptimConfig) -> None:
        torch.manual_seed(0)
        super().__init__(_Net(), optim)

    def _shared_step(self, batch, stage):
        pred = self.model(batch["image"])
        return StepOutput((pred - batch["y"]).square().mean())


def _loader(n: int, seed: int) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, 6, 6, generator=g) * 3 + 1  # far from BN's initial stats
    y = images.mean(dim=(1, 2, 3))
    return DataLoader([{"image": im, "y": t} for im, t in zip(images, y, strict=True)], 4)


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters *and* buffers (BN running statistics), copied."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


class _Probe(Callback):
    """Per optimiser step: weights before it, gradients and modes seen by it, backbone lr."""

    def __init__(self) -> None:
        self.backbone: list[dict[str, torch.Tensor]] = []  # state at each step's start
        self.head: list[dict[str, torch.Tensor]] = []
        self.steps: list[dict] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.backbone.append(_state(pl_module.model.backbone))
        self.head.append(_state(pl_module.model.head))

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        backbone = pl_module.model.backbone
        self.steps.append(
            {
                "grads": [p.grad is not None for p in backbone.parameters()],
                "head_grad": pl_module.model.head.weight.grad is not None,
                "training": [m.training for m in backbone.modules()],
                "lr": {g["name"]: g["lr"] for g in optimizer.param_groups},
                "frozen": pl_module.frozen_modules,
            }
        )

    def on_train_end(self, trainer, pl_module):
        self.backbone.append(_state(pl_module.model.backbone))
        self.head.append(_state(pl_module.model.head))


def _fit(tmp_path, freeze: float, epochs: int = 3, precise_bn: int | None = None):
    cfg = OptimConfig(lr=0.05, warmup_epochs=0, backbone_lr_ratio=0.5)
    system = _System(cfg.model_copy(update={"freeze_backbone_epochs": freeze}))
    probe = _Probe()
    callbacks: list[Callback] = [probe]
    if precise_bn is not None:
        callbacks.append(PreciseBN(precise_bn))
    trainer = build_trainer(
        tmp_path,
        epochs,
        device="cpu",
        progress=False,
        patience=None,
        monitor="val_loss",
        mode="min",
        log_every_n_steps=1,
        callbacks=callbacks,
    )
    trainer.fit(system, _loader(4 * BATCHES, 0), _loader(8, 1))
    return system, probe


@pytest.mark.parametrize(("freeze", "precise_bn"), [(1.0, None), (1.0, 2), (0.5, None)])
def test_backbone_is_frozen_then_trains(tmp_path, freeze, precise_bn):
    system, probe = _fit(tmp_path, freeze, precise_bn=precise_bn)
    frozen_steps = round(freeze * BATCHES)
    total = 3 * BATCHES
    assert len(probe.steps) == total
    start = probe.backbone[0]
    # Bit-identical weights and BN statistics through every frozen step (and through the
    # validation / precise-BN pass at the end of a frozen epoch).
    for step in range(frozen_steps + 1):
        assert _same(probe.backbone[step], start), step
    for step in range(frozen_steps):
        seen = probe.steps[step]
        assert not any(seen["grads"]) and seen["head_grad"], step  # no backbone gradients
        assert not any(seen["training"]), step  # BN (and dropout) in eval mode
        assert seen["lr"]["backbone"] == 0.0 and seen["lr"]["head"] > 0, step
        assert seen["frozen"] == (system.model.backbone,)
    assert not _same(probe.head[frozen_steps], probe.head[0])  # the head learned meanwhile
    for step in range(frozen_steps, total):
        seen = probe.steps[step]
        assert all(seen["grads"]) and all(seen["training"]), step
        assert seen["lr"]["backbone"] > 0 and seen["frozen"] == (), step
    assert not _same(probe.backbone[frozen_steps + 1], start)  # trains right after unfreezing
    assert all(p.requires_grad for p in system.parameters())


def test_no_freeze_is_the_plain_schedule(tmp_path):
    system, probe = _fit(tmp_path, 0.0, epochs=2)
    assert system.frozen_modules == ()
    for seen in probe.steps:
        assert all(seen["grads"]) and all(seen["training"]) and seen["frozen"] == ()
        assert seen["lr"]["backbone"] == pytest.approx(0.5 * seen["lr"]["head"])
    assert not _same(probe.backbone[1], probe.backbone[0])  # the first step moves it


def test_freezing_a_model_without_backbone_is_refused():
    class _Headless(TaskSystem):
        pass

    system = _Headless(nn.Linear(2, 1), OptimConfig(freeze_backbone_epochs=1))
    with pytest.raises(ConfigError, match="no submodule named 'backbone'"):
        BackboneFreeze(system, 3)
    BackboneFreeze(system, 0)  # nothing to freeze: fine


@pytest.mark.parametrize("value", ["-1", "-0.5", "inf", "nan", "soon"])
def test_bad_freeze_values_are_refused(value):
    with pytest.raises(ConfigError, match="freeze_backbone_epochs"):
        load_config(BiomassConfig, overrides=[f"phase2.freeze_backbone_epochs={value}"])
    with pytest.raises(ValidationError):
        OptimConfig(freeze_backbone_epochs=value)


def test_unfreeze_restores_only_what_it_froze():
    net = _Net()
    kept = net.backbone[1].bias.requires_grad_(False)  # frozen on purpose, before
    freeze = BackboneFreeze(net, 2)
    freeze.update(0, training=True)
    assert freeze.frozen and not any(p.requires_grad for p in net.backbone.parameters())
    assert not net.backbone.training and net.head.weight.requires_grad
    freeze.update(1, training=True)
    assert freeze.frozen  # still inside the frozen steps
    freeze.update(2, training=False)
    assert not freeze.frozen and freeze.frozen_modules == ()
    assert net.backbone[0].weight.requires_grad and not kept.requires_grad
    assert not net.backbone.training  # follows the owner's mode (here: eval)
    with pytest.raises(ValueError, match=">= 0"):
        BackboneFreeze(net, -1)
