"""Test-time training: it updates in-memory copies only, mixes in the training data, and is
deterministic."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from fieldvision.data.loaders import batch_loader
from fieldvision.errors import ConfigError, DataError
from fieldvision.pipelines.biomass import load_run, predict
from fieldvision.pipelines.biomass.inputs import load_test_data, load_training_data
from fieldvision.pipelines.biomass.ttt import (
    TTTSettings,
    _training_dir,
    finetune,
    predict_ttt,
    ttt_dataset,
)
from fieldvision.schemas.biomass import submission_for


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def ttt_once(pasture, biomass_run, tmp_path_factory):
    """One TTT prediction (1 epoch) with the run's files hashed before and after."""
    before = _digests(biomass_run)
    out = tmp_path_factory.mktemp("ttt") / "sub.csv"
    result = predict_ttt(biomass_run, pasture, out, TTTSettings(epochs=1))
    return before, _digests(biomass_run), result, out


def test_ttt_changes_predictions_but_leaves_the_run_byte_identical(
    pasture, biomass_run, tmp_path, ttt_once
):
    before, after, result, out = ttt_once
    assert after == before and any(k.endswith("model.safetensors") for k in before)
    plain = predict(biomass_run, pasture, tmp_path / "plain.csv")
    _, cfg, _ = load_run(biomass_run)
    test = load_test_data(pasture, cfg)
    # The pseudo-labels are the ordinary fold-ensemble submission.
    teacher = submission_for(test.table, test.images["image_id"], result.teacher)
    np.testing.assert_allclose(teacher["target"], plain["target"], rtol=1e-6)
    written = pd.read_csv(out)
    assert written["sample_id"].tolist() == plain["sample_id"].tolist()
    assert not np.allclose(written["target"], plain["target"], rtol=1e-5, atol=1e-6)
    assert (written["target"] >= 0).all()
    assert result.n_test == 3 and len(result.n_train) == 2 and min(result.n_train) > 0
    assert result.minutes > 0


def test_two_ttt_predictions_with_the_same_seed_are_equal(pasture, biomass_run, tmp_path, ttt_once):
    again = predict_ttt(biomass_run, pasture, tmp_path / "again.csv", TTTSettings(epochs=1))
    np.testing.assert_array_equal(again.preds, ttt_once[2].preds)


def test_ttt_mixes_the_folds_training_rows_with_pseudo_labelled_test_images(pasture, biomass_run):
    _, cfg, _ = load_run(biomass_run)
    train, test = load_training_data(pasture, cfg), load_test_data(pasture, cfg)
    rows = np.array([0, 2, 5])
    pseudo = np.arange(15, dtype=np.float32).reshape(3, 5)
    meta = {"meta": np.zeros((len(train.paths), 4), np.float32)}
    test_meta = {"meta": np.ones((3, 4), np.float32)}
    dataset = ttt_dataset(train, rows, meta, test, test_meta, pseudo, cfg, seed=0)
    assert len(dataset) == 3 + 3
    targets = np.stack([dataset[i]["targets"].numpy() for i in range(6)])
    np.testing.assert_array_equal(targets[:3], train.targets[rows])  # true labels
    np.testing.assert_array_equal(targets[3:], pseudo)  # pseudo-labels
    assert [float(dataset[i]["meta"][0]) for i in range(6)] == [0, 0, 0, 1, 1, 1]
    # Training augmentation is on for both parts.
    assert all(part.augment for part in dataset.datasets)


def test_finetune_updates_the_weights_of_the_copy(pasture, biomass_run):
    run, cfg, _ = load_run(biomass_run)
    train, test = load_training_data(pasture, cfg), load_test_data(pasture, cfg)
    meta = pd.read_csv(biomass_run / "phase1" / "oof_meta.csv").to_numpy(np.float32)
    dataset = ttt_dataset(
        train, np.arange(len(train.paths)), {"meta": meta}, test,
        {"meta": np.zeros((3, 4), np.float32)}, np.full((3, 5), 20.0, np.float32), cfg, seed=0,
    )  # fmt: skip
    model = run.load_model("phase2/fold0/model.safetensors")
    start = {k: v.clone() for k, v in model.named_parameters()}
    loader = batch_loader(dataset, cfg.data.batch_size, train=True, seed=0)
    tuned = finetune(model, loader, cfg, TTTSettings(epochs=1), seed=0)
    moved = [k for k, v in tuned.named_parameters() if not torch.equal(v, start[k])]
    assert len(moved) > len(start) // 2
    assert not tuned.training


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 0}, "--ttt-epochs 0"),
        ({"epochs": -2}, "--ttt-epochs -2"),
        ({"epochs": 1.5}, "--ttt-epochs 1.5"),
        ({"lr": 0.0}, "--ttt-lr 0.0"),
        ({"lr": -1e-3}, "--ttt-lr -0.001"),
        ({"lr": float("nan")}, "--ttt-lr nan"),
    ],
    ids=["zero-epochs", "negative-epochs", "fractional-epochs", "zero-lr", "negative-lr", "nan-lr"],
)
def test_bad_ttt_settings_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        TTTSettings(**kwargs)


def _other_table(data: Path) -> None:
    frame = pd.read_csv(data / "train.csv")
    frame.loc[0, "target"] += 1.0
    frame.to_csv(data / "train.csv", index=False)


@pytest.mark.parametrize(
    ("edit", "error", "message"),
    [
        (_other_table, DataError, "differs from the table the run was trained on"),
        (lambda d: (d / "train.csv").unlink(), DataError, "train.csv"),
    ],
    ids=["other-training-table", "no-training-table"],
)
def test_ttt_refuses_training_data_other_than_the_runs(
    pasture, biomass_run, tmp_path, edit, error, message
):
    data = tmp_path / "data"
    shutil.copytree(pasture, data, ignore=shutil.ignore_patterns(".fieldvision_cache"))
    edit(data)
    out = tmp_path / "sub.csv"
    with pytest.raises(error, match=message):
        predict_ttt(biomass_run, pasture, out, TTTSettings(epochs=1), train_dir=data)
    assert not out.exists()


@pytest.mark.parametrize(
    ("explicit", "recorded", "expected"),
    [
        ("given", "trained", "given"),
        (None, "trained", "trained"),
        (None, "trained/train.csv", "trained"),
        (None, "moved_away", "data"),
        (None, None, "data"),
    ],
    ids=["explicit-wins", "recorded-folder", "recorded-csv", "recorded-gone", "not-recorded"],
)
def test_ttt_finds_the_training_data(tmp_path, explicit, recorded, expected):
    (tmp_path / "trained").mkdir()
    (tmp_path / "trained" / "train.csv").write_text("x\n")
    run = SimpleNamespace(data=None if recorded is None else {"path": str(tmp_path / recorded)})
    given = None if explicit is None else tmp_path / explicit
    assert _training_dir(run, tmp_path / "data", given) == tmp_path / expected
