"""Trainer builder and resumable fit: skip when done, resume after interruption."""

from __future__ import annotations

import json

import lightning as L
import pandas as pd
import pytest
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint, RichProgressBar
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fieldvision.errors import RunError
from fieldvision.training.trainer import FitResult, build_trainer, fit_resumable


class _Regressor(L.LightningModule):
    """y = 2x + 1 with a linear layer; logs val_r2 (the default monitor)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Linear(1, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        pred = self.net(x)
        r2 = 1 - (pred - y).square().sum() / (y - y.mean()).square().sum()
        self.log("val_r2", r2)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _loaders():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(32, 1, generator=g)
    ds = TensorDataset(x, 2 * x + 1)
    return DataLoader(ds, batch_size=8), DataLoader(ds, batch_size=16)


class _EpochRecorder(Callback):
    def __init__(self, fail_at: int | None = None) -> None:
        self.epochs: list[int] = []
        self.fail_at = fail_at

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.fail_at:
            raise RuntimeError("simulated crash")
        self.epochs.append(trainer.current_epoch)


def _fit(out, max_epochs, recorder=None, **kw):
    trainer = build_trainer(
        out,
        max_epochs,
        progress=False,
        patience=None,
        callbacks=[recorder] if recorder else [],
        **kw,
    )
    return fit_resumable(trainer, _Regressor(), *_loaders(), out)


def test_build_trainer_settings(tmp_path):
    trainer = build_trainer(tmp_path, 3, patience=2, progress=True, monitor="val_loss", mode="min")
    ckpt = trainer.checkpoint_callback
    assert isinstance(ckpt, ModelCheckpoint) and ckpt.monitor == "val_loss"
    last = [cb for cb in trainer.checkpoint_callbacks if cb.monitor is None]
    assert len(last) == 1 and last[0].filename == "last"  # the unmonitored resume point
    stops = [cb for cb in trainer.callbacks if isinstance(cb, EarlyStopping)]
    assert len(stops) == 1 and stops[0].patience == 2 and stops[0].mode == "min"
    assert any(isinstance(cb, RichProgressBar) for cb in trainer.callbacks)
    assert trainer.num_sanity_val_steps == 0 and trainer.max_epochs == 3
    assert trainer.precision == "32-true"  # CPU
    quiet = build_trainer(tmp_path / "q", 1, patience=None, progress=False)
    assert not any(isinstance(cb, EarlyStopping | RichProgressBar) for cb in quiet.callbacks)


def test_fresh_run_writes_checkpoints_and_done(tmp_path):
    result = _fit(tmp_path, 2)
    assert isinstance(result, FitResult)
    assert (result.epochs_run, result.resumed, result.stopped_early) == (2, False, False)
    for name in ("best.ckpt", "last.ckpt", "metrics.csv", "done.json"):
        assert (tmp_path / name).is_file(), name
    assert result.best_path == str(tmp_path / "best.ckpt")
    record = json.loads((tmp_path / "done.json").read_text())
    assert record["best_score"] == pytest.approx(result.best_score)
    assert not list(tmp_path.glob(".*"))  # no temp files left behind

    # Done: a second call trains nothing and returns the recorded result.
    rec = _EpochRecorder()
    again = _fit(tmp_path, 2, rec)
    assert rec.epochs == [] and again.resumed and again.best_score == result.best_score


def test_larger_budget_resumes_from_last(tmp_path):
    first = _fit(tmp_path, 2)
    rec = _EpochRecorder()
    more = _fit(tmp_path, 3, rec)
    assert rec.epochs == [2]  # continues, does not start over
    assert (more.epochs_run, more.resumed) == (3, True)
    assert more.best_score >= first.best_score
    log = pd.read_csv(tmp_path / "metrics.csv")
    assert sorted(log["epoch"].dropna().unique().tolist()) == [0, 1, 2]  # log kept across resume


def test_interrupted_run_resumes(tmp_path):
    with pytest.raises(RuntimeError, match="simulated crash"):
        _fit(tmp_path, 3, _EpochRecorder(fail_at=1))
    assert (tmp_path / "last.ckpt").is_file() and not (tmp_path / "done.json").exists()
    rec = _EpochRecorder()
    result = _fit(tmp_path, 3, rec)
    assert rec.epochs == [1, 2]
    assert (result.epochs_run, result.resumed) == (3, True)
    assert (tmp_path / "done.json").is_file()


def test_early_stopping_is_recorded(tmp_path):
    class _Flat(_Regressor):
        def validation_step(self, batch, batch_idx):
            self.log("val_r2", torch.tensor(0.5))

    trainer = build_trainer(tmp_path, 10, progress=False, patience=1)
    result = fit_resumable(trainer, _Flat(), *_loaders(), tmp_path)
    assert result.stopped_early and result.epochs_run < 10
    # A run that stopped early is done even if asked for more epochs later.
    rec = _EpochRecorder()
    again = _fit(tmp_path, 20, rec)
    assert rec.epochs == [] and again.stopped_early


def test_corrupt_done_record(tmp_path):
    (tmp_path / "done.json").write_text("{not json")
    with pytest.raises(RunError, match="done.json"):
        _fit(tmp_path, 1)


class _PeaksFirst(L.LightningModule):
    """val_r2 is best in epoch 0 and worse afterwards."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val_r2", torch.tensor(1.0 if self.current_epoch == 0 else 0.0))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_last_checkpoint_is_the_latest_epoch_even_when_best_does_not_improve(tmp_path):
    from torch.utils.data import DataLoader, TensorDataset

    loader = DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=4)
    trainer = build_trainer(tmp_path, max_epochs=3, device="cpu", patience=None, progress=False)
    result = fit_resumable(trainer, _PeaksFirst(), loader, loader, tmp_path)
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["epoch"] == 2
    assert torch.load(tmp_path / "best.ckpt", weights_only=True)["epoch"] == 0
    assert result.best_path.endswith("best.ckpt")


def test_gradient_accumulation_matches_the_larger_batch(tmp_path):
    # Lightning divides each loss by the accumulation count: 2 batches of 8 accumulated are
    # one step on the mean loss of 16, so both runs take the same SGD steps.
    g = torch.Generator().manual_seed(0)
    x = torch.rand(32, 1, generator=g)
    ds = TensorDataset(x, 2 * x + 1)
    weights, steps = [], []
    for batch_size, accumulate in ((8, 2), (16, 1)):
        model = _Regressor()
        trainer = build_trainer(
            tmp_path / f"acc{accumulate}",
            2,
            device="cpu",
            progress=False,
            patience=None,
            accumulate_grad_batches=accumulate,
        )
        trainer.fit(model, DataLoader(ds, batch_size=batch_size), DataLoader(ds, batch_size=16))
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
        steps.append(trainer.global_step)
    assert steps == [4, 4]  # 2 optimiser steps per epoch in both
    torch.testing.assert_close(weights[0], weights[1])
    start = torch.cat([p.detach().flatten() for p in _Regressor().parameters()])
    assert not torch.allclose(weights[0], start)  # it did train
