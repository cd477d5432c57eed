"""ReIDSystem: losses, mixup, triplet, retrieval validation, fit + checkpoint reload."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from fieldvision.data.samplers import PKSampler
from fieldvision.errors import RunError
from fieldvision.models.reid import ReIDModel
from fieldvision.training.biomass import OptimConfig
from fieldvision.training.reid import ReIDSystem, load_model_weights, retrieval_scores
from fieldvision.training.trainer import build_trainer, fit_resumable


class _Blobs(Dataset):
    """Images whose colour identifies the class (learnable in a few steps)."""

    def __init__(self, n_per: int = 6, n_cls: int = 4, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.arange(n_cls).repeat_interleave(n_per)
        base = torch.rand(n_cls, 3, 1, 1, generator=g)
        noise = 0.1 * torch.randn(len(self.labels), 3, 16, 16, generator=g)
        self.images = base[self.labels] + noise

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "label": self.labels[i], "index": i}


def _batch(n_per: int = 4, n_cls: int = 3) -> dict:
    ds = _Blobs(n_per, n_cls)
    return {"image": ds.images, "label": ds.labels, "index": torch.arange(len(ds))}


@pytest.mark.parametrize(
    ("kwargs", "has_triplet"),
    [
        ({"loss": "arcface"}, False),
        ({"loss": "cosface", "triplet_weight": 1.0}, True),
        ({"loss": "softmax", "mixup_alpha": 0.4, "mixup_prob": 1.0, "triplet_weight": 1.0}, False),
    ],
)
def test_shared_step_losses_and_gradients(kwargs, has_triplet):
    system = ReIDSystem(ReIDModel("fv_tiny_cnn", embedding_dim=8), num_classes=3, **kwargs)
    out = system._shared_step(_batch(), train=True)
    assert torch.isfinite(out["loss"]) and 0 <= out["acc"] <= 1
    assert ("loss_triplet" in out) is has_triplet  # triplet is skipped on mixed batches
    out["loss"].backward()
    assert system.head.weight.grad is not None
    assert next(system.model.backbone.parameters()).grad is not None


def test_retrieval_scores_reference():
    # Two tight clusters: every query finds its match first.
    emb = np.array([[1, 0], [0.99, 0.14], [0, 1], [0.14, 0.99]], np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    labels = np.array([0, 0, 1, 1])
    s = retrieval_scores(emb, labels, np.array([True, False, True, False]))
    assert s["map"] == pytest.approx(1.0) and s["rank1"] == 1.0 and s["n_queries"] == 2
    # Crossed labels: the true match is never the nearest.
    s = retrieval_scores(emb, np.array([0, 1, 1, 0]), np.ones(4, bool))
    assert s["rank1"] == 0.0 and s["map"] == pytest.approx(5 / 12)  # matches at ranks 2, 3, 2, 3
    empty = retrieval_scores(emb, labels, np.zeros(4, bool))
    assert np.isnan(empty["map"]) and empty["n_queries"] == 0


def test_fit_logs_val_map_and_checkpoint_reloads(tmp_path):
    train = _Blobs(6, 4, seed=0)
    val = _Blobs(3, 4, seed=1)
    loader = DataLoader(train, batch_sampler=PKSampler(train.labels.numpy(), 4, 3, seed=0))
    val_loader = DataLoader(val, batch_size=8)
    model = ReIDModel("fv_tiny_cnn", embedding_dim=8)
    system = ReIDSystem(
        model, num_classes=4, loss="cosface", optim=OptimConfig(lr=1e-2, warmup_epochs=0.5)
    )
    trainer = build_trainer(
        tmp_path, max_epochs=3, device="cpu", monitor="val_map", patience=None, progress=False
    )
    result = fit_resumable(trainer, system, loader, val_loader, tmp_path)
    assert (tmp_path / "best.ckpt").is_file() and result.epochs_run == 3
    assert 0.0 < result.best_score <= 1.0
    assert set(system.last_val_metrics) == {"map", "rank1", "minp", "n_queries"}
    fresh = ReIDModel("fv_tiny_cnn", embedding_dim=8)
    load_model_weights(fresh, tmp_path / "best.ckpt")
    saved = torch.load(tmp_path / "best.ckpt", weights_only=True)["state_dict"]
    for key, value in fresh.state_dict().items():
        torch.testing.assert_close(value, saved[f"model.{key}"])


def test_load_model_weights_errors(tmp_path):
    with pytest.raises(RunError, match="not found"):
        load_model_weights(ReIDModel("fv_tiny_cnn"), tmp_path / "none.ckpt")
    bad = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"model.x": torch.zeros(1)}}, bad)
    with pytest.raises(RunError, match="does not match"):
        load_model_weights(ReIDModel("fv_tiny_cnn"), bad)
