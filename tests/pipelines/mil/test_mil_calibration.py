"""Scouter calibration: the Platt fit, its folding into the scouter, and the run's record."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from fieldvision.models.mil import Scouter, ScouterConfig
from fieldvision.models.registry import load_model
from fieldvision.pipelines.mil import train
from fieldvision.pipelines.mil.calibration import fit_platt, fold_platt
from fieldvision.pipelines.mil.fit import expert_tile_maps
from fieldvision.pipelines.mil.inputs import load_training_data


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def test_fit_recovers_a_known_affine_map_of_the_logit():
    z = np.random.default_rng(0).normal(0, 2, 4000)
    fit = fit_platt(z, _sigmoid(1.7 * z - 2.0))  # soft targets from a known map
    assert fit["scale"] == pytest.approx(1.7, abs=2e-3)
    assert fit["shift"] == pytest.approx(-2.0, abs=2e-3)
    assert fit["fitted"] and fit["tiles"] == 4000 and fit["bce_after"] < fit["bce_before"]


def test_refitting_calibrated_logits_gives_the_identity():
    rng = np.random.default_rng(1)
    z = rng.normal(-1, 1.5, 3000)
    evidence = (rng.random(3000) < _sigmoid(0.6 * z + 0.4)).astype(float)  # hard, noisy
    first = fit_platt(z, evidence)
    again = fit_platt(first["scale"] * z + first["shift"], evidence)
    assert again["scale"] == pytest.approx(1.0, abs=1e-3)
    assert again["shift"] == pytest.approx(0.0, abs=1e-3)


def test_shrunk_scores_of_sparse_evidence_are_scaled_up():
    # The failure calibration exists for: an MSE-regressed scouter ranks the evidence tiles
    # first but scores them ~0.1, which the stop rule reads as confidently healthy.
    rng = np.random.default_rng(2)
    evidence = (rng.random(5000) < 0.05).astype(float)
    raw = np.where(evidence > 0, 0.1, 0.01) * np.exp(rng.normal(0, 0.1, 5000))
    z = np.log(raw / (1 - raw))
    fit = fit_platt(z, evidence)
    calibrated = _sigmoid(fit["scale"] * z + fit["shift"])
    assert calibrated[evidence > 0].mean() > 0.9 and calibrated[evidence == 0].mean() < 0.05


def test_an_anti_correlated_scouter_keeps_its_ranking_and_gets_the_base_rate():
    z = np.random.default_rng(3).normal(0, 1, 500)
    t = _sigmoid(-2 * z)
    fit = fit_platt(z, t)
    assert fit["fitted"] and fit["scale"] == 1.0
    assert _sigmoid(z + fit["shift"]).mean() == pytest.approx(t.mean(), abs=1e-9)


@pytest.mark.parametrize(
    ("logits", "target"),
    [
        (np.linspace(-2, 2, 50), np.zeros(50)),
        (np.linspace(-2, 2, 50), np.ones(50)),
        (np.full(50, 0.3), np.linspace(0, 1, 50)),
    ],
    ids=["no-evidence", "all-evidence", "constant-logits"],
)
def test_targets_without_information_leave_the_scouter_as_it_is(logits, target):
    fit = fit_platt(logits, target)
    assert not fit["fitted"] and (fit["scale"], fit["shift"]) == (1.0, 0.0)


@pytest.mark.parametrize(
    ("logits", "evidence", "match"),
    [
        ([], [], "non-empty"),
        ([0.0, 1.0], [0.5], "equal non-empty"),
        ([0.0, float("nan")], [0.5, 0.5], "finite"),
        ([0.0, 1.0], [0.5, 1.5], r"\[0, 1\]"),
    ],
    ids=["empty", "mismatched", "nan-logit", "evidence-above-one"],
)
def test_bad_fit_inputs_are_refused(logits, evidence, match):
    with pytest.raises(ValueError, match=match):
        fit_platt(np.array(logits), np.array(evidence))


def test_folding_applies_the_map_to_every_tile_logit_exactly():
    torch.manual_seed(0)
    scouter = Scouter(ScouterConfig(input_size=(32, 32)), grid=(4, 4)).eval()
    image = torch.rand(2, 3, 48, 64)
    with torch.no_grad():
        before = scouter(image)["logits"]
        after = fold_platt(scouter, 2.5, -1.25)(image)["logits"]
    torch.testing.assert_close(after, 2.5 * before - 1.25, rtol=1e-5, atol=1e-5)


def test_training_saves_the_calibrated_scouter_and_its_fit(spots, tmp_path, mil_cfg):
    # Same seed with and without calibration: the raw scouter is the same network, so
    # the saved calibrated scouter must give exactly a·raw + b on every image.
    raw_run, run = tmp_path / "raw", tmp_path / "calibrated"
    train(spots, raw_run, mil_cfg("scouter.calibrate=false"))
    summary = train(spots, run, mil_cfg())
    assert not (raw_run / "scouter" / "train" / "calibration.json").exists()
    fit = json.loads((run / "scouter" / "train" / "calibration.json").read_text())
    assert summary["scouter_calibration"]["train"] == fit
    val = np.flatnonzero(pd.read_csv(run / "splits.csv")["train"] == "val")
    assert fit["tiles"] == len(val) * 16  # the validation images' tiles, 4×4 each
    data = load_training_data(spots, mil_cfg())
    expert = load_model(run / "expert" / "train" / "model.safetensors")
    evidence = expert_tile_maps(expert, data, mil_cfg(), val)
    # The target is whether the expert calls a tile evidence, not its soft score.
    assert fit["target_mean"] == pytest.approx(float((evidence >= 0.5).mean()))
    images = torch.stack([data.store.bag(i).image for i in range(4)]).float() / 255
    with torch.no_grad():
        raw = load_model(raw_run / "scouter" / "train" / "model.safetensors")(images)
        cal = load_model(run / "scouter" / "train" / "model.safetensors")(images)
    torch.testing.assert_close(
        cal["logits"], fit["scale"] * raw["logits"] + fit["shift"], rtol=1e-4, atol=1e-4
    )
