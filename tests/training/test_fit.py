"""fit_splits: k-fold splits, one folder per split, resumable, best epoch exported."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torch.utils.data import DataLoader, Dataset

from fieldvision.models.registry import load_model, load_state
from fieldvision.models.reid import ReIDModel, ReIDModelConfig
from fieldvision.training.fit import (
    MODEL_FILE,
    FitTask,
    ScheduleConfig,
    Split,
    TrainerConfig,
    fit_splits,
    kfold_splits,
)
from fieldvision.training.optim import OptimConfig
from fieldvision.training.system import StepOutput, TaskSystem

N = 12
E = 4  # embedding size


# --------------------------------------------------------------------------- kfold_splits


@pytest.mark.parametrize(
    "folds",
    [
        [0, 1, 0, 1],
        [2, 0, 1, 1, 0, 2, 2],
        [0, 0, 0, 1],
        [1, 0, 2, 2, 1, 0, 0, 1, 2, 2],
    ],
)
def test_kfold_splits_partition_the_rows(folds):
    folds = np.asarray(folds)
    splits = kfold_splits(folds)
    assert [s.name for s in splits] == [f"fold{k}" for k in range(folds.max() + 1)]
    rows = np.arange(len(folds))
    for k, split in enumerate(splits):
        np.testing.assert_array_equal(split.val, np.flatnonzero(folds == k))
        assert np.intersect1d(split.train, split.val).size == 0
        np.testing.assert_array_equal(np.union1d(split.train, split.val), rows)
        assert split.train.dtype.kind == split.val.dtype.kind == "i"
    # Every row is validated exactly once across the splits.
    np.testing.assert_array_equal(np.sort(np.concatenate([s.val for s in splits])), rows)


# --------------------------------------------------------------------------- fit_splits


class _Data(Dataset):
    def __init__(self, rows: np.ndarray) -> None:
        g = torch.Generator().manual_seed(0)
        images = torch.rand(N, 3, 16, 16, generator=g)
        targets = torch.randn(N, E, generator=g)
        self.images, self.targets = images[rows], targets[rows]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "target": self.targets[i]}


class _Regress(TaskSystem):
    """Regress the embedding network's features on random targets."""

    monitor = "val_loss"
    mode = "min"

    def _shared_step(self, batch, stage):
        pred = self.model(batch["image"])["features"]
        loss = (pred - batch["target"]).square().mean()
        return StepOutput(loss, {}, {"err": (pred - batch["target"]).abs()})


class _PeaksFirst(_Regress):
    """Its monitor is best at epoch 0 and worse after, while the weights keep moving."""

    monitor = "val_score"
    mode = "max"

    def epoch_metrics(self, collected):
        return {"score": 1.0 if self.current_epoch == 0 else 0.0}


class _Builder:
    """`build` callback counting its calls."""

    def __init__(self, system_cls: type[TaskSystem] = _Regress, lr: float = 1e-2) -> None:
        self.system_cls, self.lr = system_cls, lr
        self.calls: list[str] = []

    def __call__(self, split: Split) -> FitTask:
        self.calls.append(split.name)
        model = ReIDModel(ReIDModelConfig(backbone="fv_tiny_cnn", embedding_dim=E))
        system = self.system_cls(model, OptimConfig(lr=self.lr, warmup_epochs=0))
        return FitTask(
            model,
            system,
            DataLoader(_Data(split.train), batch_size=4, shuffle=True),
            DataLoader(_Data(split.val), batch_size=4),
        )


def _fit(out, builder, epochs=2, splits=None, seed=0):
    splits = kfold_splits(np.arange(N) % 2) if splits is None else splits
    return fit_splits(
        out,
        splits,
        builder,
        ScheduleConfig(epochs=epochs, patience=None),
        TrainerConfig(device="cpu", progress=False),
        seed=seed,
    )


def _probe() -> torch.Tensor:
    return torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(5))


def _embed(model) -> torch.Tensor:
    with torch.no_grad():
        return model(_probe())["embedding"]


def test_fit_splits_trains_exports_and_skips_finished_splits(tmp_path):
    builder = _Builder()
    fitted = _fit(tmp_path, builder)
    assert builder.calls == ["fold0", "fold1"]
    assert [f.split.name for f in fitted] == ["fold0", "fold1"]
    for f in fitted:
        split_dir = tmp_path / f.split.name
        for name in (MODEL_FILE, "best.ckpt", "last.ckpt", "done.json", "metrics.csv"):
            assert (split_dir / name).is_file(), (f.split.name, name)
        assert f.result is not None and f.result.epochs_run == 2 and not f.result.resumed
        assert not f.model.training and next(f.model.parameters()).device.type == "cpu"
        loaded = load_model(split_dir / MODEL_FILE)
        assert isinstance(loaded, ReIDModel) and loaded.cfg.embedding_dim == E
        torch.testing.assert_close(_embed(loaded), _embed(f.model), rtol=0, atol=0)
    # Different training rows (and seeds) give different models.
    assert not torch.allclose(_embed(fitted[0].model), _embed(fitted[1].model))

    again = _Builder()
    refit = _fit(tmp_path, again)
    assert again.calls == []  # finished splits are loaded, never rebuilt
    assert [f.result for f in refit] == [None, None]
    for old, new in zip(fitted, refit, strict=True):
        assert new.split.name == old.split.name and not new.model.training
        torch.testing.assert_close(_embed(new.model), _embed(old.model), rtol=0, atol=0)


def test_lost_weights_file_is_reexported_from_best_checkpoint(tmp_path):
    fitted = _fit(tmp_path, _Builder())
    (tmp_path / "fold1" / MODEL_FILE).unlink()
    done = json.loads((tmp_path / "fold1" / "done.json").read_text())
    builder = _Builder()
    refit = _fit(tmp_path, builder)
    assert builder.calls == ["fold1"]  # only the split without weights is rebuilt
    assert refit[0].result is None and refit[1].result.resumed  # done.json: not retrained
    assert refit[1].result.epochs_run == done["epochs_run"]
    assert (tmp_path / "fold1" / MODEL_FILE).is_file()
    # The freshly built model received the best checkpoint's weights, not its random init.
    torch.testing.assert_close(_embed(refit[1].model), _embed(fitted[1].model), rtol=0, atol=0)


def test_exported_model_is_the_best_epoch_not_the_last(tmp_path):
    split = Split("only", np.arange(8), np.arange(8, N))
    fitted = _fit(tmp_path, _Builder(_PeaksFirst, lr=5e-2), epochs=3, splits=[split])
    result = fitted[0].result
    assert result.best_score == pytest.approx(1.0) and result.epochs_run == 3
    best = torch.load(tmp_path / "only" / "best.ckpt", map_location="cpu", weights_only=True)
    last = torch.load(tmp_path / "only" / "last.ckpt", map_location="cpu", weights_only=True)
    assert best["epoch"] == 0 and last["epoch"] == 2
    exported = load_state(tmp_path / "only" / MODEL_FILE)
    assert set(exported) == {
        k.removeprefix("model.") for k in best["state_dict"] if k.startswith("model.")
    }
    differs_from_last = False
    for key, value in exported.items():
        torch.testing.assert_close(value, best["state_dict"][f"model.{key}"], rtol=0, atol=0)
        differs_from_last |= not torch.equal(value, last["state_dict"][f"model.{key}"])
    assert differs_from_last  # the weights did move after epoch 0
    for key, value in fitted[0].model.state_dict().items():
        torch.testing.assert_close(value, exported[key], rtol=0, atol=0)


def test_same_seed_same_weights(tmp_path):
    split = [Split("s", np.arange(8), np.arange(8, N))]
    a = _fit(tmp_path / "a", _Builder(), epochs=1, splits=split, seed=3)[0].model
    b = _fit(tmp_path / "b", _Builder(), epochs=1, splits=split, seed=3)[0].model
    c = _fit(tmp_path / "c", _Builder(), epochs=1, splits=split, seed=4)[0].model
    torch.testing.assert_close(_embed(a), _embed(b), rtol=0, atol=0)
    assert not torch.allclose(_embed(a), _embed(c))


@pytest.mark.parametrize(
    ("cls", "kwargs", "error"),
    [
        (ScheduleConfig, {"epochs": 0}, "epochs"),
        (ScheduleConfig, {"patience": 0}, "patience"),
        (ScheduleConfig, {"val_every": 0}, "val_every"),
        (TrainerConfig, {"device": "tpu"}, "device"),
        (TrainerConfig, {"ema_decay": 1.0}, "ema_decay"),
        (TrainerConfig, {"gradient_clip_val": 0.0}, "gradient_clip_val"),
        (TrainerConfig, {"accumulate_grad_batches": 0}, "accumulate_grad_batches"),
        (ScheduleConfig, {"patience": None}, None),
        (TrainerConfig, {"device": "cuda", "ema_decay": 0.99}, None),
    ],
)
def test_schedule_and_trainer_config_validation(cls, kwargs, error):
    if error is None:
        assert cls(**kwargs).model_dump().items() >= kwargs.items()
    else:
        with pytest.raises(ValidationError, match=error):
            cls(**kwargs)


def test_moved_run_reexports_the_best_epoch(tmp_path):
    split = [Split("only", np.arange(8), np.arange(8, N))]
    _fit(tmp_path / "a", _Builder(_PeaksFirst, lr=5e-2), epochs=3, splits=split)
    (tmp_path / "a").rename(tmp_path / "b")
    (tmp_path / "b" / "only" / MODEL_FILE).unlink()
    _fit(tmp_path / "b", _Builder(_PeaksFirst, lr=5e-2), epochs=3, splits=split)
    best = torch.load(tmp_path / "b" / "only" / "best.ckpt", weights_only=True)["state_dict"]
    for key, value in load_state(tmp_path / "b" / "only" / MODEL_FILE).items():
        torch.testing.assert_close(value, best[f"model.{key}"], rtol=0, atol=0)
