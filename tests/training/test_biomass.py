"""Biomass Lightning systems, optimiser and warmup-cosine schedule (tiny CPU runs)."""

from __future__ import annotations

import itertools
import math

import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from fieldvision.errors import RunError
from fieldvision.models.biomass import Phase1Config, Phase1Model, Phase2Config, Phase2Model
from fieldvision.training.biomass import (
    OptimConfig,
    Phase1System,
    Phase2System,
    build_optimizer,
    load_biomass_model,
    phase1_metrics,
    warmup_cosine,
)
from fieldvision.training.trainer import build_trainer

H, W = 64, 128  # tiny 2:1 images: 2×4 tiles of 32×32 through fv_tiny_cnn


class _DictDataset(Dataset):
    def __init__(self, items: dict[str, torch.Tensor]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(next(iter(self.items.values())))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.items.items()}


def _biomass_data(n: int = 16) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    image = torch.rand(n, 3, H, W, generator=g)
    green = 20 * image[:, 1].mean(dim=(1, 2))  # a learnable relation to the pixels
    dead = 10 * image[:, 0].mean(dim=(1, 2))
    clover = 5 * image[:, 2].mean(dim=(1, 2))
    targets = torch.stack([green, dead, clover, green + clover, green + dead + clover], -1)
    return {"image": image, "targets": targets, "meta": torch.randn(n, 4, generator=g)}


def _phase2(**kw) -> Phase2Model:
    torch.manual_seed(0)
    cfg = {"global_size": (32, 64), "fusion_dim": 32, "hidden": 32, "dropout": 0.0}
    cfg["target_scale"] = (10.0, 5.0, 2.5, 12.5, 17.5)
    cfg.update(kw)
    return Phase2Model(Phase2Config(**cfg))


def _trainer(tmp_path, epochs: int, monitor: str = "val_r2", mode: str = "max"):
    return build_trainer(
        tmp_path,
        epochs,
        progress=False,
        patience=None,
        monitor=monitor,
        mode=mode,
        log_every_n_steps=1,
    )


# --------------------------------------------------------------------------- schedule


def test_warmup_cosine_values():
    total, warm, floor = 100, 10, 0.05
    assert warmup_cosine(0, total, warm, floor) == pytest.approx(0.1)  # step 0 already learns
    assert warmup_cosine(9, total, warm, floor) == pytest.approx(1.0)  # end of warmup
    assert warmup_cosine(10, total, warm, floor) == pytest.approx(1.0)  # cosine starts at 1
    assert warmup_cosine(55, total, warm, floor) == pytest.approx((1 + floor) / 2)  # halfway
    assert warmup_cosine(100, total, warm, floor) == pytest.approx(floor)  # end
    assert warmup_cosine(500, total, warm, floor) == pytest.approx(floor)  # flat after
    assert warmup_cosine(0, total, 0, floor) == pytest.approx(1.0)  # no warmup
    values = [warmup_cosine(s, total, warm, floor) for s in range(10, 101)]
    assert all(a >= b for a, b in itertools.pairwise(values))


def test_build_optimizer_groups_and_stepped_lr():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    cfg = OptimConfig(lr=1.0, weight_decay=0.1, min_lr_ratio=0.0)
    opt, sched = build_optimizer(model.parameters(), cfg, total_steps=6, warmup_steps=2)
    assert isinstance(opt, torch.optim.AdamW)
    decays = sorted((g["weight_decay"], len(g["params"])) for g in opt.param_groups)
    assert decays == [(0.0, 3), (0.1, 1)]  # only the Linear weight is decayed
    lrs = []
    for _ in range(7):
        lrs.append(opt.param_groups[0]["lr"])
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
    assert lrs == pytest.approx(expected, abs=1e-9)


# --------------------------------------------------------------------------- Phase 2


def test_phase2_overfits_a_tiny_batch_and_logs_val_r2(tmp_path):
    data = _biomass_data()
    loader = DataLoader(_DictDataset(data), batch_size=16)
    system = Phase2System(_phase2(), OptimConfig(lr=3e-3, warmup_epochs=0))
    trainer = _trainer(tmp_path, 30)
    trainer.fit(system, loader, loader)
    log = pd.read_csv(tmp_path / "metrics.csv")
    train = log["train_loss_step"].dropna().to_numpy()
    assert train[-1] < 0.5 * train[0]
    r2 = log["val_r2"].dropna().to_numpy()
    assert len(r2) == 30 and r2[-1] > r2[0]
    assert "val_loss" in trainer.callback_metrics
    assert system.hparams["model_config"]["tile_grid"] == (2, 4)
    assert "model" not in system.hparams

    preds = trainer.predict(system, DataLoader(_DictDataset(data), batch_size=5))
    assert [p["targets"].shape for p in preds] == [(5, 5), (5, 5), (5, 5), (1, 5)]
    assert all(p["tile_weights"].shape == (len(p["targets"]), 8) for p in preds)


def test_phase2_without_film_or_tiles_needs_no_meta(tmp_path):
    data = _biomass_data(8)
    del data["meta"]
    loader = DataLoader(_DictDataset(data), batch_size=4)
    system = Phase2System(_phase2(use_film=False, use_tiles=False), loss_kind="huber")
    trainer = _trainer(tmp_path, 1)
    trainer.fit(system, loader, loader)
    assert math.isfinite(float(trainer.callback_metrics["val_r2"]))
    preds = trainer.predict(system, loader)
    assert preds[0]["targets"].shape == (4, 5) and preds[0]["tile_weights"] is None

    # The checkpoint is plain data (weights_only) and rebuilds the same model.
    ckpt = torch.load(tmp_path / "best.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["optim"]["lr"] == OptimConfig().lr
    model = load_biomass_model(tmp_path / "best.ckpt")
    assert isinstance(model, Phase2Model) and not model.training
    assert not model.cfg.use_tiles and model.cfg.global_size == (32, 64)
    with torch.no_grad():
        expected = system.model.eval()(data["image"][:4])["targets"]
        torch.testing.assert_close(model(data["image"][:4])["targets"], expected)
    reloaded = Phase2System.load_from_checkpoint(tmp_path / "best.ckpt", model=model)
    assert reloaded.loss_kind == "huber" and reloaded.optim == OptimConfig()


@pytest.mark.parametrize(
    ("setup", "match"),
    [("missing", "not found"), ("garbage", "cannot read"), ("foreign", "not a biomass")],
)
def test_load_biomass_model_errors(tmp_path, setup, match):
    path = tmp_path / "x.ckpt"
    if setup == "garbage":
        path.write_bytes(b"not a checkpoint")
    elif setup == "foreign":
        torch.save({"state_dict": {}, "hyper_parameters": {"model_class": "Other"}}, path)
    with pytest.raises(RunError, match=match):
        load_biomass_model(path)


# --------------------------------------------------------------------------- Phase 1


def _phase1_data(n: int = 8) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    angle = torch.rand(n, generator=g) * 2 * math.pi
    return {
        "image": torch.rand(n, 3, H, W, generator=g),
        "month_sin": angle.sin(),
        "month_cos": angle.cos(),
        "ndvi_z": torch.randn(n, generator=g),
        "height_z": torch.randn(n, generator=g),
        "species": torch.randint(0, 3, (n,), generator=g),
        "state": torch.randint(0, 2, (n,), generator=g),
    }


@pytest.mark.parametrize("use_state", [True, False])
def test_phase1_system_logs_task_metrics(tmp_path, use_state):
    torch.manual_seed(0)
    cfg = Phase1Config(input_size=(32, 64), hidden=16, n_species=3, n_states=2, use_state=use_state)
    system = Phase1System(Phase1Model(cfg), OptimConfig(), {"species": 0.5})
    loader = DataLoader(_DictDataset(_phase1_data()), batch_size=4)
    trainer = _trainer(tmp_path, 2, monitor="val_loss", mode="min")
    trainer.fit(system, loader, loader)
    metrics = trainer.callback_metrics
    for key in ("val_loss", "val_month_err", "val_ndvi_rmse", "val_height_rmse", "val_species_acc"):
        assert key in metrics and math.isfinite(float(metrics[key])), key
    assert ("val_state_acc" in metrics) == use_state
    assert 0 <= float(metrics["val_month_err"]) <= 6
    preds = trainer.predict(system, loader)
    assert set(preds[0]) == {"month", "ndvi", "height", "species"} | (
        {"state"} if use_state else set()
    )


def test_phase1_metrics_hand_values():
    deg = math.pi / 180
    true_angle = torch.tensor([0.0, 350 * deg])
    pred_angle = torch.tensor([30 * deg, 10 * deg])  # 1 month off; 20° across the wrap
    rec = {
        "month": torch.stack([2 * pred_angle.sin(), 2 * pred_angle.cos()], -1),  # scale-free
        "true_month_sin": true_angle.sin(),
        "true_month_cos": true_angle.cos(),
        "ndvi": torch.tensor([1.0, 1.0]),
        "true_ndvi_z": torch.tensor([0.0, 2.0]),
        "height": torch.tensor([0.0, 0.0]),
        "true_height_z": torch.tensor([3.0, 4.0]),
        "species": torch.tensor([[2.0, 1.0], [0.0, 1.0]]),
        "true_species": torch.tensor([0, 0]),
    }
    m = phase1_metrics(rec)
    assert m["month_err"] == pytest.approx((1 + 20 / 30) / 2, abs=1e-5)
    assert m["ndvi_rmse"] == pytest.approx(1.0)
    assert m["height_rmse"] == pytest.approx(math.sqrt(12.5))
    assert m["species_acc"] == pytest.approx(0.5)
    assert "state_acc" not in m
