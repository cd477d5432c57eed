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
        (ScheduleConfig, {"min_epochs": -1}, "min_epochs"),
        (ScheduleConfig, {"epochs": 3, "min_epochs": 4}, "exceeds epochs"),
        (ScheduleConfig, {"epochs": 3, "min_epochs": 3}, None),
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


# --------------------------------------------------------------------------- selection modes


class _PeaksAt(_Regress):
    """Its monitor peaks at epoch count ``self.peak`` (set by the builder per split)."""

    monitor = "val_score"
    mode = "max"
    peak = 1

    def epoch_metrics(self, collected):
        return {"score": 1.0 if self.current_epoch + 1 == self.peak else 0.0}


class _PeakBuilder(_Builder):
    def __init__(self, peaks: dict[str, int]) -> None:
        super().__init__(_PeaksAt, lr=5e-2)
        self.peaks = peaks

    def __call__(self, split: Split) -> FitTask:
        task = super().__call__(split)
        task.system.peak = self.peaks[split.name]
        return task


def _fit_selected(out, builder, epochs, **schedule):
    splits = kfold_splits(np.arange(N) % 3)
    return fit_splits(
        out,
        splits,
        builder,
        ScheduleConfig(epochs=epochs, patience=1, **schedule),
        TrainerConfig(device="cpu", progress=False),
    )


def _assert_state_equal(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def _differs(a: dict, b: dict) -> bool:
    return any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())


def test_fixed_epochs_uses_the_median_best_epoch_of_the_other_folds(tmp_path):
    peaks = {"fold0": 1, "fold1": 4, "fold2": 5}
    fitted = _fit_selected(tmp_path, _PeakBuilder(peaks), epochs=5, selection="fixed_epochs")
    # fold0: median(4, 5) = 4.5 -> 5; fold1: median(1, 5) = 3; fold2: median(1, 4) = 2.5 -> 3
    expected = {"fold0": 5, "fold1": 3, "fold2": 3}
    for f in fitted:
        split_dir = tmp_path / f.split.name
        record = json.loads((split_dir / "selection.json").read_text())
        assert record == f.selection
        assert record["mode"] == "fixed_epochs"
        assert record["fold_best_epoch"] == peaks[f.split.name]
        assert sorted(record["other_best_epochs"]) == sorted(
            v for k, v in peaks.items() if k != f.split.name
        )
        assert record["epochs"] == [expected[f.split.name]]
        # Honest modes train the whole schedule: patience=1 would have stopped at peak + 1.
        assert f.result.epochs_run == 5
        exported = load_state(split_dir / MODEL_FILE)
        _assert_state_equal(exported, f.model.state_dict())
        _assert_state_equal(
            exported,
            load_state(split_dir / "epochs" / f"epoch{expected[f.split.name]}.safetensors"),
        )
        # The biased model is the fold's own best epoch = best.ckpt.
        best = torch.load(split_dir / "best.ckpt", weights_only=True)
        assert best["epoch"] + 1 == peaks[f.split.name]
        best_state = {
            k.removeprefix("model."): v
            for k, v in best["state_dict"].items()
            if k.startswith("model.")
        }
        _assert_state_equal(f.fold_best.state_dict(), best_state)
        _assert_state_equal(load_state(split_dir / "fold_best.safetensors"), best_state)
        assert _differs(exported, best_state)
    # Re-running loads everything; nothing is rebuilt and the selection is kept.
    again = _PeakBuilder(peaks)
    refit = _fit_selected(tmp_path, again, epochs=5, selection="fixed_epochs")
    assert again.calls == []
    for old, new in zip(fitted, refit, strict=True):
        assert new.selection == old.selection
        _assert_state_equal(new.model.state_dict(), old.model.state_dict())
        _assert_state_equal(new.fold_best.state_dict(), old.fold_best.state_dict())


def test_fixed_epochs_given_count(tmp_path):
    peaks = {"fold0": 1, "fold1": 3, "fold2": 4}
    fitted = _fit_selected(
        tmp_path, _PeakBuilder(peaks), epochs=4, selection="fixed_epochs", selection_epochs=2
    )
    assert [f.selection["epochs"] for f in fitted] == [[2], [2], [2]]


def test_last_k_average_is_the_mean_of_the_last_k_epoch_weights(tmp_path):
    peaks = {"fold0": 1, "fold1": 2, "fold2": 1}
    fitted = _fit_selected(
        tmp_path, _PeakBuilder(peaks), epochs=4, selection="last_k_average", selection_k=3
    )
    for f in fitted:
        split_dir = tmp_path / f.split.name
        assert f.selection["epochs"] == [2, 3, 4]
        files = sorted(p.name for p in (split_dir / "epochs").iterdir())
        assert files == ["epoch2.safetensors", "epoch3.safetensors", "epoch4.safetensors"]
        states = [load_state(split_dir / "epochs" / name) for name in files]
        # The saved epoch-4 weights are the trained ones (independent of our own files).
        last = torch.load(split_dir / "last.ckpt", weights_only=True)["state_dict"]
        _assert_state_equal(
            states[-1],
            {k.removeprefix("model."): v for k, v in last.items() if k.startswith("model.")},
        )
        exported = load_state(split_dir / MODEL_FILE)
        for key, value in exported.items():
            if value.is_floating_point():
                mean = torch.stack([s[key] for s in states]).mean(dim=0)
                torch.testing.assert_close(value, mean, rtol=1e-6, atol=1e-7)
        assert _differs(exported, states[-1])
        _assert_state_equal(exported, f.model.state_dict())


def test_best_mode_keeps_its_behaviour_and_records_the_selection(tmp_path):
    peaks = {"fold0": 1, "fold1": 2, "fold2": 1}
    fitted = _fit_selected(tmp_path, _PeakBuilder(peaks), epochs=4)
    for f in fitted:
        assert f.selection == {"mode": "best", "epochs": [peaks[f.split.name]],
                               "fold_best_epoch": peaks[f.split.name]}  # fmt: skip
        assert f.fold_best is f.model
        assert not (tmp_path / f.split.name / "epochs").exists()
        # patience=1 stops one validation after the peak
        assert f.result.epochs_run == peaks[f.split.name] + 1


def test_min_epochs_keeps_early_stopping_from_ending_a_plateau(tmp_path):
    """Peak at epoch 1, patience 1: stops at 2 epochs, at 4 with min_epochs=4."""
    peaks = {"fold0": 1, "fold1": 1, "fold2": 1}
    plain = _fit_selected(tmp_path / "plain", _PeakBuilder(peaks), epochs=6)
    held = _fit_selected(tmp_path / "held", _PeakBuilder(peaks), epochs=6, min_epochs=4)
    assert [f.result.epochs_run for f in plain] == [2, 2, 2]
    assert [f.result.epochs_run for f in held] == [4, 4, 4]
    assert all(f.selection["fold_best_epoch"] == 1 for f in held)  # still the best epoch


def test_split_exported_before_selection_modes_loads_as_best(tmp_path):
    fitted = _fit(tmp_path, _Builder())
    for f in fitted:
        (tmp_path / f.split.name / "selection.json").unlink()
    refit = _fit(tmp_path, _Builder())
    assert [f.selection for f in refit] == [{"mode": "best", "legacy": True}] * 2
    assert all(f.fold_best is f.model for f in refit)


def test_selection_config_validation():
    with pytest.raises(ValidationError, match="selection"):
        ScheduleConfig(selection="oracle")
    with pytest.raises(ValidationError, match="selection_k"):
        ScheduleConfig(selection_k=0)
    assert not ScheduleConfig().honest and ScheduleConfig(selection="last_k_average").honest


def test_epoch_weights_are_the_validated_ones_under_ema(tmp_path):
    """With EMA, the recorded epoch weights are the averaged weights validation scored (and
    best.ckpt holds), not the raw training weights."""
    peaks = {"fold0": 2, "fold1": 1, "fold2": 2}
    fitted = fit_splits(
        tmp_path,
        kfold_splits(np.arange(N) % 3),
        _PeakBuilder(peaks),
        ScheduleConfig(epochs=3, patience=None, selection="last_k_average", selection_k=3),
        TrainerConfig(device="cpu", progress=False, ema_decay=0.5),
    )
    for f in fitted:
        split_dir = tmp_path / f.split.name
        peak = load_state(split_dir / "epochs" / f"epoch{peaks[f.split.name]}.safetensors")
        _assert_state_equal(
            {k: v for k, v in peak.items() if v.is_floating_point()},
            {k: v for k, v in f.fold_best.state_dict().items() if v.is_floating_point()},
        )


def _bn_buffers(model) -> dict:
    return {k: v for k, v in model.state_dict().items() if "running_" in k}


def test_precise_bn_recomputes_statistics_for_the_current_weights(tmp_path):
    from fieldvision.training.fit import recompute_bn

    split = Split("only", np.arange(8), np.arange(8, N))
    fitted = fit_splits(
        tmp_path,
        [split],
        _Builder(lr=5e-2),
        ScheduleConfig(epochs=2, patience=None, precise_bn_batches=50),
        TrainerConfig(device="cpu", progress=False),
    )
    model = fitted[0].model
    assert _bn_buffers(model)
    # Recomputing over the same training rows reproduces the exported statistics of the
    # first layer's mean (an average over all rows, whatever the batch order; deeper layers
    # depend on which rows shared a shuffled batch) ...
    probe = load_model(tmp_path / "only" / MODEL_FILE)
    system = _Regress(probe, OptimConfig(lr=1e-2, warmup_epochs=0))
    loader = DataLoader(_Data(split.train), batch_size=4)
    assert recompute_bn(system, loader, 50) == 2
    first = next(k for k in _bn_buffers(model) if k.endswith("running_mean"))
    torch.testing.assert_close(_bn_buffers(probe)[first], _bn_buffers(model)[first])
    # ... which the running averages of plain training do not.
    plain = fit_splits(
        tmp_path / "plain",
        [split],
        _Builder(lr=5e-2),
        ScheduleConfig(epochs=2, patience=None),
        TrainerConfig(device="cpu", progress=False),
    )[0].model
    probe = load_model(tmp_path / "plain" / "only" / MODEL_FILE)
    recompute_bn(_Regress(probe, OptimConfig(lr=1e-2, warmup_epochs=0)).eval(), loader, 50)
    assert not torch.allclose(_bn_buffers(probe)[first], _bn_buffers(plain)[first], atol=1e-3)
    assert not probe.training  # recompute_bn restores the mode


class _InOrderBuilder(_PeakBuilder):
    """Unshuffled training batches, so BN statistics can be recomputed identically."""

    def __call__(self, split: Split) -> FitTask:
        task = super().__call__(split)
        task.train_loader = DataLoader(_Data(split.train), batch_size=4)
        return task


def test_averaged_weights_get_their_own_bn_statistics(tmp_path):
    from fieldvision.training.fit import recompute_bn

    peaks = {"fold0": 1, "fold1": 2, "fold2": 1}
    fitted = _fit_selected(
        tmp_path,
        _InOrderBuilder(peaks),
        epochs=3,
        selection="last_k_average",
        selection_k=2,
        precise_bn_batches=50,
    )
    for f in fitted:
        split_dir = tmp_path / f.split.name
        assert f.selection["bn_batches"] == 2
        states = [load_state(split_dir / "epochs" / f"epoch{e}.safetensors") for e in (2, 3)]
        exported = load_state(split_dir / MODEL_FILE)
        for key, value in exported.items():
            if value.is_floating_point() and "running_" not in key:  # weights: the mean
                mean = torch.stack([s[key] for s in states]).mean(dim=0)
                torch.testing.assert_close(value, mean, rtol=1e-6, atol=1e-7)
        probe = load_model(split_dir / MODEL_FILE)
        recompute_bn(_Regress(probe, OptimConfig(lr=1e-2)), DataLoader(_Data(f.split.train), 4), 50)
        _assert_state_equal(_bn_buffers(probe), _bn_buffers(load_model(split_dir / MODEL_FILE)))
        last = [k for k in exported if k.endswith("running_var")][-1]
        mean_of_stats = torch.stack([s[last] for s in states]).mean(dim=0)
        assert not torch.allclose(exported[last], mean_of_stats, atol=1e-4)
