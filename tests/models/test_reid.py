"""ReIDModel: output contract, shapes, gradients, the pydantic config it is built from."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from fieldvision.errors import ConfigError
from fieldvision.models.backbone import BACKBONES
from fieldvision.models.reid import ReIDModel, ReIDModelConfig

KEYS = {"embedding", "neck", "features", "pooled"}


def _model(**kw) -> ReIDModel:
    torch.manual_seed(0)
    kw.setdefault("backbone", "fv_tiny_cnn")
    kw.setdefault("embedding_dim", 8)
    return ReIDModel(ReIDModelConfig(**kw))


@pytest.mark.parametrize("name", [*BACKBONES.names(), "resnet10t"])
def test_output_contract_in_train_and_eval(name):
    model = _model(backbone=name, embedding_dim=24)
    x = torch.rand(3, 3, 32, 32)  # images in [0, 1]: the model normalises itself
    out_train = model.train()(x)
    out_eval = model.eval()(x)
    assert set(out_train) == set(out_eval) == KEYS  # independent of self.training
    for out in (out_train, out_eval):
        assert out["embedding"].shape == (3, 24)
        assert out["neck"].shape == out["features"].shape == (3, 24)
        assert out["pooled"].shape == (3, model.num_features)
        torch.testing.assert_close(out["embedding"].norm(dim=1), torch.ones(3))


def test_gradients_reach_backbone_and_gem():
    model = _model(embedding_dim=16)
    out = model(torch.rand(4, 3, 48, 48))
    (out["neck"].square().sum() + out["features"].sum()).backward()
    assert model.pool.p.grad is not None and model.pool.p.grad.abs() > 0
    first_conv = next(p for p in model.backbone.parameters() if p.ndim == 4)
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0
    assert model.bnneck.bias.grad is None  # frozen BNNeck shift


def test_config_builds_the_model_and_fixed_gem():
    cfg = ReIDModelConfig(backbone="fv_tiny_cnn", embedding_dim=8, gem_p=2.0, gem_learnable=False)
    model = ReIDModel(cfg)
    assert model.cfg is cfg and model.dims == {}
    assert model.embedding_dim == 8 and model.proj.out_features == 8
    assert float(model.pool.p) == 2.0
    assert "pool.p" not in dict(model.named_parameters())
    assert ReIDModel().cfg == ReIDModelConfig()  # no config: the defaults


def test_dropout_only_in_training():
    model = _model(dropout=0.5)
    x = torch.rand(4, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        a, b = model(x)["features"], model(x)["features"]
    assert torch.equal(a, b)
    model.train()
    torch.manual_seed(1)
    with torch.no_grad():
        c, d = model(x)["features"], model(x)["features"]
    assert not torch.equal(c, d)


@pytest.mark.parametrize(
    ("kw", "error", "match"),
    [
        ({"embedding_dim": 1}, ValidationError, "embedding_dim"),
        ({"gem_p": 0.0}, ValidationError, "gem_p"),
        ({"dropout": 1.0}, ValidationError, "dropout"),
        ({"drop_path_rate": -0.1}, ValidationError, "drop_path_rate"),
        ({"in_chans": 0}, ValidationError, "in_chans"),
        ({"loss": "arcface"}, ValidationError, "loss"),  # loss settings: MarginLossConfig
        ({"backbone": "no_such_net"}, ConfigError, "no_such_net"),
        ({"pretrained": True}, ConfigError, "download"),
    ],
)
def test_bad_config(kw, error, match):
    with pytest.raises(error, match=match):
        _model(**kw)


def test_eval_is_deterministic_and_batch_independent():
    model = _model().eval()
    x = torch.rand(5, 3, 32, 32)
    with torch.no_grad():
        full = model(x)["embedding"]
        single = model(x[2:3])["embedding"]
        again = model(x)["embedding"]
    assert torch.equal(full, again)
    torch.testing.assert_close(full[2:3], single, rtol=1e-4, atol=1e-5)
