"""Phase-1 / Phase-2 biomass models and their losses (tiny sizes, fv_tiny_cnn)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from fieldvision.errors import ConfigError
from fieldvision.models.biomass import (
    Phase1Config,
    Phase1Model,
    Phase2Config,
    Phase2Model,
    phase1_loss,
    weighted_biomass_loss,
)

H, W = 64, 128  # tiny 2:1 images; 2×4 tiles are 32×32


def _p2(target_scale=None, meta_dim=4, **kw) -> Phase2Model:
    torch.manual_seed(0)
    kw.setdefault("global_size", (32, 64))
    kw.setdefault("fusion_dim", 32)
    kw.setdefault("hidden", 16)
    return Phase2Model(Phase2Config(**kw), meta_dim=meta_dim, target_scale=target_scale)


def _p1(n_species=3, n_states=4, **kw) -> Phase1Model:
    torch.manual_seed(0)
    kw.setdefault("input_size", (32, 64))
    kw.setdefault("hidden", 16)
    return Phase1Model(Phase1Config(**kw), n_species=n_species, n_states=n_states)


# --------------------------------------------------------------------------- Phase 1


@pytest.mark.parametrize(
    ("use_species", "use_state", "keys"),
    [
        (True, True, {"month", "ndvi", "height", "species", "state"}),
        (False, True, {"month", "ndvi", "height", "state"}),
        (False, False, {"month", "ndvi", "height"}),
    ],
)
def test_phase1_keys_follow_config_not_mode(use_species, use_state, keys):
    model = _p1(use_species=use_species, use_state=use_state)
    x = torch.rand(2, 3, H, W)
    for train in (True, False):
        model.train(train)
        out = model(x)
        assert set(out) == keys
    assert out["month"].shape == (2, 2)
    assert out["ndvi"].shape == out["height"].shape == (2,)
    if use_species:
        assert out["species"].shape == (2, 3)
    if use_state:
        assert out["state"].shape == (2, 4)


def test_phase1_averages_two_halves_through_one_backbone():
    model = _p1().eval()
    x = torch.rand(2, 3, H, W)
    swapped = torch.cat([x[..., W // 2 :], x[..., : W // 2]], dim=-1)
    calls = []
    model.backbone.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    with torch.no_grad():
        a, b = model(x), model(swapped)
    assert calls == [4, 4]  # one batched call per forward: B × 2 halves
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"use_species": True, "n_species": 0}, "species"),
        ({"use_state": True, "n_states": 1}, "state"),
        ({"input_size": (32, 63)}, "even"),
        ({"input_size": (0, 64)}, "input_size"),
    ],
)
def test_phase1_config_errors(kw, match):
    with pytest.raises(ConfigError, match=match):
        _p1(**kw)


def _phase1_batch(b: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    angle = torch.rand(b, generator=g) * 2 * math.pi
    return {
        "image": torch.rand(b, 3, H, W, generator=g),
        "month_sin": angle.sin(),
        "month_cos": angle.cos(),
        "ndvi_z": torch.randn(b, generator=g),
        "height_z": torch.randn(b, generator=g),
        "species": torch.randint(0, 3, (b,), generator=g),
        "state": torch.randint(0, 4, (b,), generator=g),
    }


def test_phase1_loss_matches_hand_sum_and_weights():
    model = _p1()
    batch = _phase1_batch()
    out = model(batch["image"])
    weights = {"month": 2.0, "species": 0.5, "state": 0.0}
    loss, parts = phase1_loss(out, batch, weights)
    month_true = torch.stack([batch["month_sin"], batch["month_cos"]], -1)
    expected = {
        "month": F.mse_loss(out["month"], month_true),
        "ndvi": F.mse_loss(out["ndvi"], batch["ndvi_z"]),
        "height": F.mse_loss(out["height"], batch["height_z"]),
        "species": F.cross_entropy(out["species"], batch["species"]),
        "state": F.cross_entropy(out["state"], batch["state"]),
    }
    assert set(parts) == set(expected)
    for k, v in expected.items():
        torch.testing.assert_close(parts[k], v.detach())
    total = (
        2 * expected["month"] + expected["ndvi"] + expected["height"] + 0.5 * expected["species"]
    )
    torch.testing.assert_close(loss, total)
    loss.backward()
    assert not parts["month"].requires_grad


def test_phase1_loss_skips_disabled_heads_and_rejects_unknown_tasks():
    model = _p1(use_species=False, use_state=False)
    batch = _phase1_batch()
    del batch["species"], batch["state"]  # not needed when not predicted
    _, parts = phase1_loss(model(batch["image"]), batch, None)
    assert set(parts) == {"month", "ndvi", "height"}
    with pytest.raises(ConfigError, match="hieght"):
        phase1_loss(model(batch["image"]), batch, {"hieght": 1.0})


# --------------------------------------------------------------------------- Phase 2


@pytest.mark.parametrize(
    ("kw", "n_tiles"),
    [
        ({}, 8),
        ({"aggregation": "mean"}, 8),
        ({"use_tiles": False}, 0),
        ({"use_film": False}, 8),
        ({"tile_grid": (1, 2)}, 2),
        ({"tile_input": (16, 16)}, 8),
        ({"channels_last": False}, 8),
    ],
)
def test_phase2_outputs(kw, n_tiles):
    model = _p2(**kw)
    x, meta = torch.rand(3, 3, H, W), torch.randn(3, 4)
    for train in (True, False):
        model.train(train)
        out = model(x, meta)
        assert set(out) == {"targets", "components", "tile_weights"}
    targets = out["targets"]
    assert targets.shape == (3, 5) and (targets >= 0).all()
    assert torch.equal(targets[:, :3], out["components"])
    assert torch.equal(targets[:, 3], targets[:, 0] + targets[:, 2])
    assert torch.equal(targets[:, 4], targets[:, 0] + targets[:, 2] + targets[:, 1])
    if n_tiles:
        assert out["tile_weights"].shape == (3, n_tiles)
        torch.testing.assert_close(out["tile_weights"].sum(-1), torch.ones(3))
    else:
        assert out["tile_weights"] is None


@pytest.mark.parametrize(
    ("global_size", "tile_input", "calls"),
    [((32, 32), None, [2 * 9]), ((32, 64), None, [2, 16]), ((16, 32), (16, 16), [2, 16])],
)
def test_phase2_batches_views_through_one_shared_backbone(global_size, tile_input, calls):
    model = _p2(global_size=global_size, tile_input=tile_input)
    seen: list[tuple[int, ...]] = []
    model.backbone.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape)))
    model(torch.rand(2, 3, H, W), torch.randn(2, 4))
    assert [s[0] for s in seen] == calls
    assert seen[-1][-2:] == (tile_input or (32, 32))


def test_phase2_film_is_identity_at_init_and_meta_rules():
    model = _p2().eval()
    x = torch.rand(2, 3, H, W)
    with torch.no_grad():
        a = model(x, torch.randn(2, 4))["targets"]
        b = model(x, 10 * torch.randn(2, 4))["targets"]
    assert torch.equal(a, b)  # zero-initialised FiLM: meta has no effect before training
    with pytest.raises(ValueError, match="meta"):
        model(x, None)
    with pytest.raises(ValueError, match="meta"):
        model(x, torch.randn(2, 3))
    no_film = _p2(use_film=False)
    assert set(no_film(x, None)) == {"targets", "components", "tile_weights"}
    with pytest.raises(ValueError, match="image"):
        model(torch.rand(2, H, W), torch.randn(2, 4))


def test_phase2_meta_dim_is_a_constructor_dim():
    model = _p2(meta_dim=6).eval()
    x = torch.rand(2, 3, H, W)
    assert model.dims["meta_dim"] == 6
    assert model(x, torch.randn(2, 6))["targets"].shape == (2, 5)
    with pytest.raises(ValueError, match=r"meta must be Tensor\[2, 6\]"):
        model(x, torch.randn(2, 4))


def test_models_narrow_a_section_that_extends_their_config():
    class Section(Phase2Config):
        epochs: int = 3

    model = Phase2Model(Section(global_size=(32, 64), fusion_dim=32, hidden=16, epochs=9))
    assert type(model.cfg) is Phase2Config
    assert model.cfg.global_size == (32, 64) and model.cfg.fusion_dim == 32


def test_phase2_target_scale_multiplies_components_and_is_saved():
    base = _p2().eval()
    scaled = _p2(target_scale=(10.0, 2.0, 4.0, 14.0, 16.0)).eval()
    assert "target_scale" in scaled.state_dict()
    state = dict(base.state_dict())
    state["target_scale"] = scaled.target_scale.clone()
    scaled.load_state_dict(state)
    x, meta = torch.rand(2, 3, H, W), torch.randn(2, 4)
    with torch.no_grad():
        c0, c1 = base(x, meta)["components"], scaled(x, meta)["components"]
    torch.testing.assert_close(c1, c0 * torch.tensor([10.0, 2.0, 4.0]))


def test_phase2_gradients_reach_every_part():
    model = _p2()
    out = model(torch.rand(2, 3, H, W), torch.randn(2, 4))
    weighted_biomass_loss(out["targets"], torch.rand(2, 5) * 3).backward()
    for name in ("backbone", "pool", "fusion", "film", "head"):
        grads = [p.grad for n, p in model.named_parameters() if n.startswith(name)]
        assert grads and any(g is not None and g.abs().sum() > 0 for g in grads), name


@pytest.mark.parametrize(
    ("kw", "error", "match"),
    [
        ({"aggregation": "max"}, ValidationError, "aggregation"),  # the pydantic config
        ({"num_heads": 0}, ValidationError, "num_heads"),
        ({"target_scale": (1.0, 2.0)}, ConfigError, "target_scale"),  # a data-derived dim
        ({"target_scale": (1.0, 1.0, 0.0, 1.0, 1.0)}, ConfigError, "target_scale"),
        ({"tile_grid": (0, 4)}, ConfigError, "tile_grid"),
        ({"num_heads": 5}, ConfigError, "num_heads"),  # 96 backbone channels / 5 heads
    ],
)
def test_phase2_config_errors(kw, error, match):
    with pytest.raises(error, match=match):
        _p2(**kw)


def test_phase2_image_not_divisible_by_grid():
    with pytest.raises(ValueError, match="divisible"):
        _p2()(torch.rand(1, 3, H, W - 2), torch.randn(1, 4))


# --------------------------------------------------------------------------- loss


def test_weighted_loss_hand_computed():
    pred = torch.tensor([[2.0, 0.0, 1.0, 3.0, 4.0]])
    target = torch.tensor([[1.0, 0.0, 1.0, 2.0, 2.0]])
    # squared errors 1, 0, 0, 1, 4 with weights .1 .1 .1 .2 .5 (sum 1): 0.1 + 0.2 + 2.0
    torch.testing.assert_close(weighted_biomass_loss(pred, target), torch.tensor(2.3))
    scale = torch.tensor([1.0, 1.0, 1.0, 1.0, 2.0])  # total error becomes 1 in scaled units
    torch.testing.assert_close(weighted_biomass_loss(pred, target, scale=scale), torch.tensor(0.8))
    assert weighted_biomass_loss(target, target) == 0


def test_weighted_loss_weights_matter_and_reductions():
    target = torch.zeros(2, 5)
    err_total = torch.zeros(2, 5)
    err_total[:, 4] = 1.0
    err_dead = torch.zeros(2, 5)
    err_dead[:, 1] = 1.0
    assert weighted_biomass_loss(err_total, target) > weighted_biomass_loss(err_dead, target)
    per = weighted_biomass_loss(err_total, target, reduction="none")
    torch.testing.assert_close(per, torch.full((2,), 0.5))
    torch.testing.assert_close(weighted_biomass_loss(err_total, target, reduction="sum"), per.sum())


def test_weighted_loss_huber_is_linear_for_large_errors():
    target = torch.zeros(1, 5)
    small, big = torch.full((1, 5), 0.5), torch.full((1, 5), 10.0)
    torch.testing.assert_close(
        weighted_biomass_loss(small, target, kind="huber"), torch.tensor(0.125)
    )
    torch.testing.assert_close(weighted_biomass_loss(big, target, kind="huber"), torch.tensor(9.5))


@pytest.mark.parametrize(
    ("pred_shape", "kw", "match"),
    [
        ((2, 4), {}, "pred and target"),
        ((2, 5), {"kind": "l1"}, "kind"),
        ((2, 5), {"reduction": "max"}, "reduction"),
        ((2, 5), {"weights": (1.0, 1.0)}, "weights"),
    ],
)
def test_weighted_loss_bad_input(pred_shape, kw, match):
    with pytest.raises(ValueError, match=match):
        weighted_biomass_loss(torch.zeros(pred_shape), torch.zeros(2, 5), **kw)


# --------------------------------------------------------------------------- head variants

EDGES = [[0.0, 5.0, 10.0, 20.0, 40.0], [0.0, 2.0, 4.0, 8.0, 16.0], [0.0, 0.0, 1.0, 2.0, 6.0]]
CENTRES = [[2.0, 7.0, 14.0, 30.0], [1.0, 3.0, 6.0, 12.0], [0.0, 0.4, 1.5, 4.0]]
SCALE5 = (10.0, 5.0, 2.0, 12.0, 17.0)


def _variant(head="components", bins=4, blend=0.5, **kw) -> Phase2Model:
    torch.manual_seed(0)
    cfg = Phase2Config(
        global_size=(32, 64), fusion_dim=32, hidden=16, head=head, bins=bins, bin_blend=blend
    )
    dims = {"bin_edges": EDGES, "bin_centres": CENTRES} if bins else {}
    return Phase2Model(cfg, meta_dim=4, target_scale=SCALE5, **{**dims, **kw})


@pytest.mark.parametrize(
    ("head", "bins"), [("components", 4), ("projection", 0), ("projection", 4)]
)
def test_phase2_variants_shapes_and_exact_mass_balance(head, bins):
    model = _variant(head, bins)
    with torch.no_grad():
        model.head.mlp.last.weight.mul_(20)  # spread predictions: projection clamps act
    x, meta = torch.rand(3, 3, H, W), torch.randn(3, 4)
    out = model.eval()(x, meta)
    keys = {"targets", "components", "tile_weights"} | ({"bin_logits"} if bins else set())
    assert set(out) == keys
    targets = out["targets"]
    assert targets.shape == (3, 5) and (targets >= 0).all()
    assert torch.equal(targets[:, :3], out["components"])
    assert torch.equal(targets[:, 3], targets[:, 0] + targets[:, 2])
    assert torch.equal(targets[:, 4], targets[:, 0] + targets[:, 2] + targets[:, 1])
    if bins:
        assert out["bin_logits"].shape == (3, 3, 4)


def test_phase2_bin_blend_mixes_regression_and_expectation():
    x, meta = torch.rand(2, 3, H, W), torch.randn(2, 4)
    with torch.no_grad():
        outs = {a: _variant(blend=a).eval()(x, meta) for a in (0.0, 0.5, 1.0)}
        plain = _p2(target_scale=SCALE5).eval()(x, meta)["components"]
    # Same seed, same parameters before the bin head: blend 0 is today's regression head.
    torch.testing.assert_close(outs[0.0]["components"], plain)
    expectation = (outs[1.0]["bin_logits"].softmax(-1) * torch.tensor(CENTRES)).sum(-1)
    torch.testing.assert_close(outs[1.0]["components"], expectation)
    torch.testing.assert_close(outs[0.5]["components"], 0.5 * (plain + expectation))


def test_phase2_bins_and_projection_survive_a_save_and_reload(tmp_path):
    from fieldvision.models.registry import load_model, save_model

    model = _variant("projection", 4).eval()
    state = model.state_dict()
    assert {"bin_edges", "bin_centres", "head.projection"} <= set(state)
    other = Phase2Model(
        model.cfg,
        meta_dim=4,
        target_scale=(1.0,) * 5,
        bin_edges=[[0.0, 1.0, 2.0, 3.0, 4.0]] * 3,
        bin_centres=[[0.5, 1.5, 2.5, 3.5]] * 3,
    )
    other.load_state_dict(state)  # buffers come back from the weights
    for key in ("bin_edges", "bin_centres", "head.projection", "target_scale"):
        torch.testing.assert_close(other.state_dict()[key], state[key])
    reloaded = load_model(save_model(model, tmp_path / "m.safetensors"))  # dims rebuild it
    assert reloaded.cfg.bins == 4 and reloaded.cfg.head == "projection"
    torch.testing.assert_close(reloaded.bin_edges, torch.tensor(EDGES))
    x, meta = torch.rand(2, 3, H, W), torch.randn(2, 4)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x, meta)["targets"], model(x, meta)["targets"])


def test_phase2_default_head_has_no_new_weights():
    assert not {"bin_edges", "bin_centres", "head.projection"} & set(_p2().state_dict())
    assert set(_p2().dims) == {"meta_dim", "target_scale"}


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"bins": 1}, "bins must be 0 .off. or at least 2"),
        ({"bins": -2}, "bins"),
        ({"bin_blend": 1.5}, "bin_blend"),
        ({"bin_blend": -0.1}, "bin_blend"),
        ({"head": "free"}, "head"),
    ],
)
def test_phase2_variant_config_errors(kw, match):
    with pytest.raises(ValidationError, match=match):
        Phase2Config(**kw)


@pytest.mark.parametrize(
    ("bins", "dims", "match"),
    [
        (4, {"bin_edges": None, "bin_centres": CENTRES}, "needs the data-derived bin_edges"),
        (4, {"bin_centres": None}, "needs the data-derived bin_edges"),
        (3, {}, r"bin_edges \[3, 4\] and bin_centres \[3, 3\]"),  # edges of 4 bins given
    ],
)
def test_phase2_bins_need_fitting_data_derived_edges(bins, dims, match):
    with pytest.raises(ConfigError, match=match):
        _variant(bins=bins, **{"bin_edges": EDGES, "bin_centres": CENTRES, **dims})
