"""TaskSystem: logging, validation collection, epoch hook, optimiser wiring, hparams."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from pydantic import ValidationError
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from fieldvision.config import StrictModel
from fieldvision.models.reid import ReIDModel, ReIDModelConfig
from fieldvision.training.optim import OptimConfig, warmup_cosine
from fieldvision.training.system import StepOutput, TaskSystem
from fieldvision.training.trainer import build_trainer


class _Net(nn.Module):
    """Image -> one number; the first layer is a `backbone` (its own LR group)."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 4))
        self.head = nn.Linear(4, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(image)).squeeze(-1)


class _System(TaskSystem):
    """Regression on random tensors; validation metrics from the collected epoch."""

    monitor = "val_mae"
    mode = "min"

    def __init__(self, optim=None, **hparams) -> None:
        torch.manual_seed(0)
        super().__init__(_Net(), optim, **hparams)
        self.collected_sizes: list[int] = []

    def _shared_step(self, batch, stage):
        pred = self.model(batch["image"])
        loss = (pred - batch["y"]).square().mean()
        collect = {"pred": pred, "y": batch["y"]} if stage == "val" else {}
        return StepOutput(loss, {"abs": (pred - batch["y"]).abs().mean()}, collect)

    def epoch_metrics(self, collected):
        self.collected_sizes.append(len(collected["pred"]))
        return {
            "mae": float((collected["pred"] - collected["y"]).abs().mean()),
            "count": float(len(collected["pred"])),
        }


class _Data(Dataset):
    """Random images and targets; records the epoch it was told for every item drawn."""

    def __init__(self, n: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.images = torch.rand(n, 3, 4, 4, generator=g)
        self.y = self.images.mean(dim=(1, 2, 3)) * 4
        self.epoch = -1
        self.set_epoch_calls: list[int] = []
        self.drawn_in: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.set_epoch_calls.append(epoch)
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict:
        self.drawn_in.append(self.epoch)
        return {"image": self.images[i], "y": self.y[i]}


class _BatchSampler(Sampler[list[int]]):
    def __init__(self, n: int, batch_size: int) -> None:
        self.n, self.batch_size = n, batch_size
        self.set_epoch_calls: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.set_epoch_calls.append(epoch)

    def __iter__(self):
        idx = list(range(self.n))
        return iter([idx[i : i + self.batch_size] for i in range(0, self.n, self.batch_size)])

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)


class _LRRecorder(Callback):
    """The learning rate of every parameter group when each training batch starts."""

    def __init__(self) -> None:
        self.lrs: list[dict[str, float]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        opt = trainer.optimizers[0]
        self.lrs.append({g["name"]: g["lr"] for g in opt.param_groups})


def _trainer(tmp_path, epochs, callbacks=(), monitor="val_mae"):
    return build_trainer(
        tmp_path,
        epochs,
        device="cpu",
        progress=False,
        patience=None,
        monitor=monitor,
        mode="min",
        log_every_n_steps=1,
        callbacks=list(callbacks),
    )


def test_fit_logs_train_loss_and_epoch_metrics(tmp_path):
    system = _System(OptimConfig(lr=1e-2, warmup_epochs=0))
    train = DataLoader(_Data(12), batch_size=4)
    val = DataLoader(_Data(10, seed=1), batch_size=4)  # 4 + 4 + 2: collected over batches
    trainer = _trainer(tmp_path, 2)
    trainer.fit(system, train, val)

    metrics = trainer.callback_metrics
    for key in ("train_loss", "train_abs", "val_loss", "val_abs", "val_mae", "val_count"):
        assert key in metrics and math.isfinite(float(metrics[key])), key
    assert float(metrics["val_count"]) == 10  # the whole epoch, not the last batch
    assert system.collected_sizes == [10, 10]  # one call per validation epoch
    log = pd.read_csv(tmp_path / "metrics.csv")
    assert log["train_loss_step"].notna().sum() == 6  # 3 steps x 2 epochs
    assert log["val_mae"].notna().sum() == 2
    # val_mae is the epoch's mean absolute error of the final weights.
    system.eval()
    data = val.dataset
    with torch.no_grad():
        mae = (system(data.images) - data.y).abs().mean()
    assert float(metrics["val_mae"]) == pytest.approx(float(mae), rel=1e-5)
    assert trainer.checkpoint_callback.monitor == system.monitor


def test_validation_without_collect_logs_no_epoch_metrics(tmp_path):
    class _NoCollect(_System):
        def _shared_step(self, batch, stage):
            out = super()._shared_step(batch, stage)
            return StepOutput(out.loss, out.logs)

    system = _NoCollect()
    trainer = _trainer(tmp_path, 1, monitor="val_loss")
    trainer.fit(system, DataLoader(_Data(8), batch_size=4), DataLoader(_Data(4), batch_size=4))
    assert "val_loss" in trainer.callback_metrics
    assert "val_mae" not in trainer.callback_metrics and system.collected_sizes == []


def test_set_epoch_reaches_dataset_and_batch_sampler_every_epoch(tmp_path):
    data = _Data(8)
    sampler = _BatchSampler(len(data), 3)
    train = DataLoader(data, batch_sampler=sampler)
    trainer = _trainer(tmp_path, 3)
    trainer.fit(_System(), train, DataLoader(_Data(4, seed=1), batch_size=4))
    assert data.set_epoch_calls == [0, 1, 2]
    # Lightning's loop also calls the batch sampler; every epoch must be announced, in order.
    assert sorted(set(sampler.set_epoch_calls)) == [0, 1, 2]
    assert sampler.set_epoch_calls == sorted(sampler.set_epoch_calls)
    # Every item of epoch e was drawn after the dataset heard of epoch e.
    assert data.drawn_in == [e for e in range(3) for _ in range(len(data))]


def test_configure_optimizers_follows_warmup_cosine_per_group(tmp_path):
    epochs, batches = 3, 4
    cfg = OptimConfig(lr=0.1, warmup_epochs=1, min_lr_ratio=0.2, backbone_lr_ratio=0.5)
    recorder = _LRRecorder()
    system = _System(cfg)
    trainer = _trainer(tmp_path, epochs, [recorder])
    trainer.fit(
        system, DataLoader(_Data(16), batch_size=4), DataLoader(_Data(4, seed=1), batch_size=4)
    )
    total, warmup = epochs * batches, batches  # warmup_epochs=1 -> one epoch of steps
    assert len(recorder.lrs) == total
    for step, lrs in enumerate(recorder.lrs):
        factor = warmup_cosine(step, total, warmup, 0.2)
        assert lrs["head"] == pytest.approx(0.1 * factor), step
        assert lrs["head_no_decay"] == pytest.approx(0.1 * factor), step
        assert lrs["backbone"] == pytest.approx(0.05 * factor), step
    opt = trainer.optimizers[0]
    assert isinstance(opt, torch.optim.AdamW)
    assert {g["name"]: g["weight_decay"] for g in opt.param_groups} == {
        "backbone": cfg.weight_decay,
        "backbone_no_decay": 0.0,
        "head": cfg.weight_decay,
        "head_no_decay": 0.0,
    }


def test_training_step_without_loss_raises():
    class _NoLoss(_System):
        def _shared_step(self, batch, stage):
            return StepOutput(None)

    batch = {"image": torch.rand(2, 3, 4, 4), "y": torch.zeros(2)}
    with pytest.raises(RuntimeError, match="_NoLoss._shared_step gave no training loss"):
        _NoLoss().training_step(batch, 0)


def test_base_shared_step_is_abstract():
    system = TaskSystem(_Net())
    with pytest.raises(NotImplementedError):
        system.training_step({"image": torch.rand(2, 3, 4, 4)}, 0)
    assert system.epoch_metrics({}) == {}


class _TrainSection(OptimConfig):
    """A pipeline section extending the optimiser recipe with its own fields."""

    epochs: int = 7


class _Unrelated(StrictModel):
    lr: float = 0.5
    momentum: float = 0.9


@pytest.mark.parametrize(
    ("optim", "expected", "error"),
    [
        (None, OptimConfig(), None),
        (OptimConfig(lr=0.01), OptimConfig(lr=0.01), None),
        ({"lr": 0.02, "warmup_epochs": 0}, OptimConfig(lr=0.02, warmup_epochs=0), None),
        (_TrainSection(lr=0.03, epochs=2), OptimConfig(lr=0.03), None),  # narrowed
        (_Unrelated(), OptimConfig(lr=0.5), None),  # only the declared fields are read
        ({"lr": -1.0}, None, ValidationError),
        ({"lr_rate": 0.1}, None, ValidationError),
    ],
)
def test_optim_argument_forms(optim, expected, error):
    if error is not None:
        with pytest.raises(error):
            TaskSystem(_Net(), optim)
        return
    system = TaskSystem(_Net(), optim)
    assert system.optim == expected and type(system.optim) is OptimConfig
    assert system.hparams["optim"] == expected.model_dump()


def test_hparams_are_plain_and_record_registered_models():
    plain = _System(OptimConfig(lr=0.01), loss=OptimConfig(lr=0.2), sizes=(2, 3), tag="x")
    assert plain.hparams["model_record"] is None  # not a registered model
    assert plain.hparams["loss"] == OptimConfig(lr=0.2).model_dump(mode="json")  # config -> dict
    assert plain.hparams["sizes"] == [2, 3] and plain.hparams["tag"] == "x"
    assert "model" not in plain.hparams

    model = ReIDModel(ReIDModelConfig(backbone="fv_tiny_cnn", embedding_dim=8))
    record = TaskSystem(model).hparams["model_record"]
    assert record["name"] == "reid_embedder"
    assert record["config"]["backbone"] == "fv_tiny_cnn"
    assert record["config"]["embedding_dim"] == 8


def test_checkpoint_hparams_load_with_weights_only(tmp_path):
    model = ReIDModel(ReIDModelConfig(backbone="fv_tiny_cnn", embedding_dim=8))

    class _Embed(TaskSystem):
        monitor = "val_loss"

        def _shared_step(self, batch, stage):
            return StepOutput(self.model(batch["image"])["features"].square().mean())

    system = _Embed(model, {"lr": 1e-3}, loss=OptimConfig(), mask=[True, False])
    images = torch.rand(4, 3, 16, 16)
    loader = DataLoader([{"image": im} for im in images], batch_size=2)
    trainer = _trainer(tmp_path, 1, monitor="val_loss")
    trainer.fit(system, loader, loader)
    ckpt = torch.load(tmp_path / "best.ckpt", map_location="cpu", weights_only=True)
    hp = ckpt["hyper_parameters"]
    assert hp["optim"]["lr"] == pytest.approx(1e-3)
    assert hp["model_record"]["name"] == "reid_embedder" and hp["mask"] == [True, False]
    # forward() is the model's forward.
    system.eval()
    with torch.no_grad():
        torch.testing.assert_close(system(images)["embedding"], model(images)["embedding"])


_HOLDERS = ("dataset", "sampler", "batch_sampler")


class _Epochs:
    def __init__(self) -> None:
        self.calls: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.calls.append(epoch)


@pytest.mark.parametrize("holders", [("dataset",), ("sampler",), ("batch_sampler",), ()])
def test_epoch_hook_calls_each_holder_once(holders):
    # The hook alone (Lightning's loop also notifies samplers, which would hide a gap).
    loader = SimpleNamespace(
        **{name: _Epochs() if name in holders else object() for name in _HOLDERS}
    )
    system = _System()
    system._trainer = SimpleNamespace(train_dataloader=loader, current_epoch=4)
    system.on_train_epoch_start()
    for name in _HOLDERS:
        calls = getattr(getattr(loader, name), "calls", None)
        assert calls == ([4] if name in holders else None), name
