"""ReIDModel: output contract, shapes, normalisation, gradients, config adapter."""

from __future__ import annotations

import pytest
import torch

from fieldvision.models.backbone import BACKBONES
from fieldvision.models.reid import ReIDConfig, ReIDModel

KEYS = {"embedding", "neck", "features", "pooled"}


@pytest.mark.parametrize("name", [*BACKBONES.names(), "resnet10t"])
def test_output_contract_in_train_and_eval(name):
    model = ReIDModel(name, embedding_dim=24)
    x = torch.randn(3, 3, 64, 64)
    out_train = model.train()(x)
    out_eval = model.eval()(x)
    assert set(out_train) == set(out_eval) == KEYS  # independent of self.training
    for out in (out_train, out_eval):
        assert out["embedding"].shape == (3, 24)
        assert out["neck"].shape == out["features"].shape == (3, 24)
        assert out["pooled"].shape == (3, model.num_features)
        torch.testing.assert_close(out["embedding"].norm(dim=1), torch.ones(3))


def test_gradients_reach_backbone_and_gem():
    model = ReIDModel("fv_tiny_cnn", embedding_dim=16)
    out = model(torch.randn(4, 3, 48, 48))
    (out["neck"].square().sum() + out["features"].sum()).backward()
    assert model.pool.p.grad is not None and model.pool.p.grad.abs() > 0
    first_conv = next(p for p in model.backbone.parameters() if p.ndim == 4)
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0
    assert model.bnneck.bias.grad is None  # frozen BNNeck shift


def test_from_config_and_fixed_gem():
    cfg = ReIDConfig(backbone="fv_tiny_cnn", embedding_dim=8, gem_p=2.0, gem_learnable=False)
    model = ReIDModel.from_config(cfg)
    assert model.embedding_dim == 8
    assert float(model.pool.p) == 2.0
    assert "pool.p" not in dict(model.named_parameters())
    assert cfg.to_dict()["embedding_dim"] == 8


def test_eval_is_deterministic_and_batch_independent():
    model = ReIDModel("fv_tiny_cnn", embedding_dim=8).eval()
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        full = model(x)["embedding"]
        single = model(x[2:3])["embedding"]
    torch.testing.assert_close(full[2:3], single, rtol=1e-4, atol=1e-5)
