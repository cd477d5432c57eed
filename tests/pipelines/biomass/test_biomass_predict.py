"""Biomass prediction wiring: fold averaging, flip-TTA averaging, clipping, test-time meta."""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from fieldvision.inference import flip_views, mean_views, predict_views
from fieldvision.models.registry import load_model
from fieldvision.pipelines.biomass import evaluate, load_run, predict
from fieldvision.pipelines.biomass.fit import phase1_call
from fieldvision.pipelines.biomass.inputs import load_test_data, make_dataset
from fieldvision.pipelines.biomass.meta import film_meta
from fieldvision.runs import RunDir
from fieldvision.schemas.biomass import TARGETS

# The package re-exports the `predict` function under the submodule's name.
predict_module = importlib.import_module("fieldvision.pipelines.biomass.predict")


def _asymmetry(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(left - right, top - bottom) mean brightness: flips change their signs."""
    h, w = image.shape[-2:]
    lr = image[..., : w // 2].mean((1, 2, 3)) - image[..., w // 2 :].mean((1, 2, 3))
    tb = image[..., : h // 2, :].mean((1, 2, 3)) - image[..., h // 2 :, :].mean((1, 2, 3))
    return lr, tb


class _FakePhase1(nn.Module):
    """Fold k predicts month (k, lr), ndvi tb, height 1: different per fold and per view."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def forward(self, image):
        lr, tb = _asymmetry(image)
        b = image.shape[0]
        return {
            "month": torch.stack([torch.full((b,), float(self.k)), lr], dim=1),
            "ndvi": tb,
            "height": torch.ones(b),
        }


class _FakePhase2(nn.Module):
    """Fold k predicts targets[j] = 10 k + 100 lr + 50 tb + meta[:, 0] - 3 j: some are < 0."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def forward(self, image, meta=None):
        lr, tb = _asymmetry(image)
        base = 10.0 * self.k + 100.0 * lr + 50.0 * tb + meta[:, 0]
        targets = torch.stack([base - 3.0 * j for j in range(len(TARGETS))], dim=1)
        return {"targets": targets, "tile_weights": None}


def _fake_loader(self, relpath, map_location="cpu"):
    phase, fold = str(relpath).split("/")[:2]
    k = int(fold.removeprefix("fold"))
    return _FakePhase1(k) if phase == "phase1" else _FakePhase2(k)


@pytest.mark.parametrize("tta", [True, False])
def test_predict_averages_views_then_folds_and_clips(
    pasture, biomass_run, tmp_path, monkeypatch, tta
):
    monkeypatch.setattr(RunDir, "load_model", _fake_loader)
    sub = predict(biomass_run, pasture, tmp_path / "sub.csv", tta=tta)
    _, cfg, _ = load_run(biomass_run)
    test = load_test_data(pasture, cfg)
    images = torch.stack([make_dataset(test.paths, test.cache, {}, cfg)[i]["image"]
                          for i in range(len(test.paths))])  # fmt: skip
    views = [images, images.flip(-1), images.flip(-2)]
    # Phase-1 meta: the run's TTA (on), mean over views, then over the two folds.
    meta = np.mean(
        [np.mean([_FakePhase1(k)(v)["month"][:, 0].numpy() for v in views], axis=0)
         for k in (0, 1)], axis=0,
    )  # fmt: skip
    meta_t = torch.tensor(meta)[:, None].float()
    p2_views = views if tta else views[:1]
    expected = np.mean(
        [np.mean([_FakePhase2(k)(v, meta_t)["targets"].numpy() for v in p2_views], axis=0)
         for k in (0, 1)], axis=0,
    )  # fmt: skip
    expected = np.clip(expected, 0.0, None)
    assert (expected == 0).any() and (expected > 0).any()  # the clip is exercised
    wide = {(i, t): expected[r, j] for r, i in enumerate(test.images["image_id"])
            for j, t in enumerate(TARGETS)}  # fmt: skip
    want = [wide[(s.rsplit("__", 1)[0], s.rsplit("__", 1)[1])] for s in sub["sample_id"]]
    np.testing.assert_allclose(sub["target"].to_numpy(), want, rtol=1e-5, atol=1e-5)


def test_test_time_metadata_is_the_mean_of_the_phase1_fold_models(
    pasture, biomass_run, tmp_path, monkeypatch
):
    seen = []
    real = predict_module.make_dataset

    def spy(paths, cache, arrays, cfg, **kw):
        if "meta" in arrays:
            seen.append(np.array(arrays["meta"]))
        return real(paths, cache, arrays, cfg, **kw)

    monkeypatch.setattr(predict_module, "make_dataset", spy)
    predict(biomass_run, pasture, tmp_path / "sub.csv", tta=False)
    _, cfg, _ = load_run(biomass_run)
    test = load_test_data(pasture, cfg)
    dataset = real(test.paths, test.cache, {}, cfg)
    per_fold = []
    for k in (0, 1):
        model = load_model(biomass_run / "phase1" / f"fold{k}" / "model.safetensors")
        views = predict_views(model, dataset, phase1_call, flip_views(cfg.train.tta), device="cpu")
        per_fold.append(film_meta(mean_views(views)))
    assert len(seen) == 1
    # --no-tta only changes Phase 2: the metadata is computed exactly as in training.
    np.testing.assert_allclose(seen[0], np.mean(per_fold, axis=0), rtol=1e-5, atol=1e-6)
    assert not np.allclose(per_fold[0], per_fold[1])  # the mean is over different models


def test_submission_scores_and_evaluate(pasture, biomass_run, tmp_path):
    sub = predict(biomass_run, pasture, tmp_path / "sub.csv")
    assert list(sub.columns) == ["sample_id", "target"] and (sub["target"] >= 0).all()
    assert sub["sample_id"].tolist() == pd.read_csv(pasture / "test.csv")["sample_id"].tolist()
    result = evaluate(tmp_path / "sub.csv", pasture / "test_truth.csv")
    assert np.isfinite(result.weighted_r2) and set(result.per_target) == set(TARGETS)
    oof = evaluate(biomass_run / "oof.csv", pasture / "train.csv")
    assert oof.n_images == 12
