"""Biomass Lightning systems: Phase-1 / Phase-2 losses, metrics and checkpoints (tiny CPU runs)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from fieldvision.inference import predict_views
from fieldvision.models.biomass import Phase1Config, Phase1Model, Phase2Config, Phase2Model
from fieldvision.models.registry import create_model
from fieldvision.training.biomass import Phase1System, Phase2System, phase1_metrics
from fieldvision.training.optim import OptimConfig
from fieldvision.training.trainer import build_trainer

H, W = 64, 128  # tiny 2:1 images: 2×4 tiles of 32×32 through fv_tiny_cnn
SCALE = (10.0, 5.0, 2.5, 12.5, 17.5)


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
    cfg.update(kw)
    return Phase2Model(Phase2Config(**cfg), meta_dim=4, target_scale=SCALE)


def _phase2_call(model, batch):
    return model(batch["image"], batch.get("meta"))


def _trainer(tmp_path, epochs: int, monitor: str = "val_r2", mode: str = "max"):
    return build_trainer(
        tmp_path,
        epochs,
        device="cpu",
        progress=False,
        patience=None,
        monitor=monitor,
        mode=mode,
        log_every_n_steps=1,
    )


# --------------------------------------------------------------------------- Phase 2


def test_phase2_overfits_a_tiny_batch_and_logs_val_r2(tmp_path):
    data = _biomass_data(8)
    loader = DataLoader(_DictDataset(data), batch_size=8)
    system = Phase2System(_phase2(), OptimConfig(lr=1e-2, warmup_epochs=0))
    assert (system.monitor, system.mode) == ("val_r2", "max")
    trainer = _trainer(tmp_path, 10)
    trainer.fit(system, loader, loader)
    log = pd.read_csv(tmp_path / "metrics.csv")
    train = log["train_loss_step"].dropna().to_numpy()
    assert train[-1] < 0.5 * train[0]
    r2 = log["val_r2"].dropna().to_numpy()
    assert len(r2) == 10 and r2[-1] > r2[0]
    assert "val_loss" in trainer.callback_metrics
    record = system.hparams["model_record"]
    assert record["name"] == "biomass_phase2"
    assert record["config"]["tile_grid"] == [2, 4]
    assert record["dims"] == {"meta_dim": 4, "target_scale": list(SCALE)}
    assert "model" not in system.hparams

    (preds,) = predict_views(system.model, _DictDataset(data), _phase2_call, batch_size=3)
    assert preds["targets"].shape == (8, 5) and preds["tile_weights"].shape == (8, 8)


def test_phase2_without_film_or_tiles_needs_no_meta(tmp_path):
    data = _biomass_data(8)
    del data["meta"]
    loader = DataLoader(_DictDataset(data), batch_size=4)
    system = Phase2System(_phase2(use_film=False, use_tiles=False), loss_kind="huber")
    trainer = _trainer(tmp_path, 1)
    trainer.fit(system, loader, loader)
    assert math.isfinite(float(trainer.callback_metrics["val_r2"]))
    with torch.no_grad():
        out = system.model.eval()(data["image"][:4])
    assert out["targets"].shape == (4, 5) and out["tile_weights"] is None

    # The checkpoint is plain data (weights_only); its model record rebuilds the model.
    ckpt = torch.load(tmp_path / "best.ckpt", map_location="cpu", weights_only=True)
    hp = ckpt["hyper_parameters"]
    assert hp["optim"] == OptimConfig().model_dump() and hp["loss_kind"] == "huber"
    record = hp["model_record"]
    model = create_model(record["name"], record["config"], **record["dims"])
    assert isinstance(model, Phase2Model)
    assert not model.cfg.use_tiles and model.cfg.global_size == (32, 64)
    state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items()}
    model.load_state_dict(state, strict=True)
    torch.testing.assert_close(model.target_scale, torch.tensor(SCALE))
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(data["image"][:4])["targets"], out["targets"])

    reloaded = Phase2System.load_from_checkpoint(
        tmp_path / "best.ckpt", model=_phase2(use_film=False, use_tiles=False)
    )
    assert reloaded.loss_kind == "huber" and reloaded.optim == OptimConfig()
    for key, value in system.model.state_dict().items():
        torch.testing.assert_close(reloaded.model.state_dict()[key], value)


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ({"meta": None}, "needs meta"),  # FiLM on, no meta in the batch
        ({"meta": torch.zeros(2, 3)}, "meta must be"),
        ({"image": torch.zeros(2, 1, H, W)}, "expected image"),
    ],
)
def test_phase2_step_rejects_bad_batches(bad, error):
    data = _biomass_data(2)
    batch = {**data, **bad}
    if batch["meta"] is None:
        del batch["meta"]
    with pytest.raises(ValueError, match=error):
        Phase2System(_phase2())._shared_step(batch, "train")


def test_phase2_val_step_collects_and_diverged_predictions_give_nan():
    system = Phase2System(_phase2())
    data = _biomass_data(4)
    out = system._shared_step(data, "val")
    assert set(out.collect) == {"pred", "true"} and out.collect["pred"].shape == (4, 5)
    assert system._shared_step(data, "train").collect == {}
    perfect = system.epoch_metrics({"pred": data["targets"], "true": data["targets"]})
    assert perfect == {"r2": pytest.approx(1.0)}
    diverged = data["targets"].clone()
    diverged[0, 0] = float("nan")
    assert math.isnan(system.epoch_metrics({"pred": diverged, "true": data["targets"]})["r2"])


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
    cfg = Phase1Config(input_size=(32, 64), hidden=16, use_state=use_state)
    model = Phase1Model(cfg, n_species=3, n_states=2)
    system = Phase1System(model, OptimConfig(), {"species": 0.5})
    assert (system.monitor, system.mode) == ("val_loss", "min")
    loader = DataLoader(_DictDataset(_phase1_data()), batch_size=4)
    trainer = _trainer(tmp_path, 2, monitor="val_loss", mode="min")
    trainer.fit(system, loader, loader)
    metrics = trainer.callback_metrics
    for key in ("val_loss", "val_month_err", "val_ndvi_rmse", "val_height_rmse", "val_species_acc"):
        assert key in metrics and math.isfinite(float(metrics[key])), key
    assert ("val_state_acc" in metrics) == use_state
    assert 0 <= float(metrics["val_month_err"]) <= 6
    assert system.hparams["task_weights"] == {"species": 0.5}
    assert system.hparams["model_record"]["dims"] == {"n_species": 3, "n_states": 2}
    with torch.no_grad():
        out = model.eval()(_phase1_data(2)["image"])
    assert set(out) == {"month", "ndvi", "height", "species"} | ({"state"} if use_state else set())


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


def _binned(**kw) -> Phase2Model:
    torch.manual_seed(0)
    cfg = {"global_size": (32, 64), "fusion_dim": 32, "hidden": 32, "dropout": 0.0, "bins": 3}
    cfg.update(kw)
    edges = [[0.0, 8.0, 12.0, 20.0], [0.0, 4.0, 6.0, 10.0], [0.0, 2.0, 3.0, 5.0]]
    centres = [[4.0, 10.0, 16.0], [2.0, 5.0, 8.0], [1.0, 2.5, 4.0]]
    return Phase2Model(
        Phase2Config(**cfg), meta_dim=4, target_scale=SCALE, bin_edges=edges, bin_centres=centres
    )


def test_bin_cross_entropy_enters_the_loss_only_with_a_positive_weight():
    from fieldvision.models.biomass import weighted_biomass_loss
    from fieldvision.models.biomass_heads import bin_cross_entropy
    from fieldvision.schemas.biomass import WEIGHTS

    batch = {k: v[:4] for k, v in _biomass_data(4).items()}
    model = _binned().eval()
    with torch.no_grad():
        out = model(batch["image"], batch["meta"])
        regression = weighted_biomass_loss(
            out["targets"], batch["targets"], WEIGHTS, scale=model.target_scale
        )
        ce = bin_cross_entropy(out["bin_logits"], batch["targets"][:, :3], model.bin_edges)
        losses = {
            w: Phase2System(model, bin_loss_weight=w)._shared_step(batch, "train")
            for w in (0.0, 0.5)
        }
    assert ce > 0
    assert torch.equal(losses[0.0].loss, regression)  # weight 0: today's loss, bit for bit
    torch.testing.assert_close(losses[0.5].loss, regression + 0.5 * ce)
    torch.testing.assert_close(losses[0.5].logs["bin_ce"], ce)
    # A model without bins has no CE term whatever the weight.
    plain = Phase2System(_phase2().eval(), bin_loss_weight=0.5)._shared_step(batch, "train")
    assert "bin_ce" not in plain.logs


def test_binned_projection_model_trains_and_checkpoints_its_bins(tmp_path):
    data = _biomass_data(8)
    loader = DataLoader(_DictDataset(data), batch_size=4)
    system = Phase2System(
        _binned(head="projection"), OptimConfig(lr=1e-2, warmup_epochs=0), bin_loss_weight=0.3
    )
    trainer = _trainer(tmp_path, 1)
    trainer.fit(system, loader, loader)
    assert math.isfinite(float(trainer.callback_metrics["val_r2"]))
    assert math.isfinite(float(trainer.callback_metrics["train_bin_ce"]))
    ckpt = torch.load(tmp_path / "best.ckpt", map_location="cpu", weights_only=True)
    hp = ckpt["hyper_parameters"]
    assert hp["bin_loss_weight"] == 0.3
    record = hp["model_record"]
    model = create_model(record["name"], record["config"], **record["dims"])
    state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items()}
    model.load_state_dict(state, strict=True)
    torch.testing.assert_close(model.bin_centres, system.model.bin_centres)
    assert model.cfg.head == "projection" and model.cfg.bins == 3
