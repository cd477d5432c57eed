"""Glance-and-focus inference: budget, expert only on selected tiles, exact re-pooling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fieldvision.ops.glance import unseen_evidence
from fieldvision.pipelines.mil import load_run
from fieldvision.pipelines.mil.engine import Predictor
from fieldvision.pipelines.mil.inputs import bag_spec, read_samples


@pytest.fixture(scope="module")
def setup(mil_run, spots):
    loaded = load_run(mil_run)
    from fieldvision.data.mil import BagStore

    store = BagStore(read_samples(spots, loaded.cfg).subset(range(6)), bag_spec(loaded.cfg))
    return loaded, store, Predictor(loaded.experts, loaded.scouters, loaded.negative, "cpu")


def test_full_budget_glance_equals_full_tiling(setup):
    _, store, predictor = setup
    full = predictor.run(store, "full")
    everything = predictor.run(store, "glance", budget=1.0, stop_entropy=0.0)
    for f, g in zip(full, everything, strict=True):
        assert f.selected.all() and g.selected.all()
        np.testing.assert_allclose(f.prob, g.prob, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(f.expert, g.expert, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("budget", [0.1, 0.3, 0.5])
def test_glance_runs_the_expert_on_the_selected_tiles_only(setup, budget):
    _, store, predictor = setup
    glance = predictor.run(store, "glance", budget=budget, stop_entropy=0.0)
    full = predictor.run(store, "full")
    for g, f in zip(glance, full, strict=True):
        k = int(g.selected.sum())
        assert k == math.ceil(budget * 16)  # stop_entropy 0: the whole budget is used
        assert np.isnan(g.expert[~g.selected]).all() and not np.isnan(g.expert[g.selected]).any()
        assert not g.tile_logits[:, ~g.selected].any()  # never scored
        top = np.argsort(-g.scouter, kind="stable")[:k]
        assert set(np.flatnonzero(g.selected)) == set(top)  # the scouter's top-k tiles
        # Re-pooling the full-mode tile logits over the same tiles gives the same answer.
        np.testing.assert_allclose(predictor.repool(f, g.selected), g.prob, rtol=1e-5, atol=1e-6)


def test_entropy_rule_can_stop_early(setup):
    _, store, predictor = setup
    strict = predictor.run(store, "glance", budget=0.5, stop_entropy=1.0)  # never "unsure"
    used = np.array([r.selected.sum() for r in strict])
    assert (used >= 1).all() and (used <= 8).all()
    for r, k in zip(strict, used, strict=True):
        # Stop entropy 1: on while the unseen tiles likely hold evidence, off from below 1/2.
        ranked = torch.from_numpy(np.sort(r.scouter)[::-1].copy())[None]
        left = unseen_evidence(ranked)[0].numpy()
        assert (left[: k - 1] >= 0.5).all()
        assert k == 8 or left[k - 1] < 0.5


def test_modes_are_validated(setup):
    loaded, store, predictor = setup
    with pytest.raises(ValueError, match="full or glance"):
        predictor.run(store, "zoom")
    with pytest.raises(ValueError, match="scouters"):
        Predictor(loaded.experts, [], loaded.negative, "cpu").run(store, "glance")


def _batchnorms(module) -> int:
    from torch import nn

    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def test_predictor_folds_batchnorm_in_its_own_copies_only(setup):
    import torch

    loaded, store, predictor = setup
    assert all(_batchnorms(m) > 0 for m in [*loaded.experts, *loaded.scouters])  # untouched
    assert all(_batchnorms(m) == 0 for m in [*predictor.full_experts, *predictor.scouters])
    # The folded copies compute what the run's own networks compute.
    bag = store.bag(0)
    tiles, view = bag.tiles.float() / 255, bag.image.float() / 255  # uint8 in the store
    with torch.no_grad():
        for original, folded in zip(loaded.experts, predictor.full_experts, strict=True):
            torch.testing.assert_close(
                folded.score_tiles(tiles)[0], original.eval().score_tiles(tiles)[0],
                rtol=1e-4, atol=1e-5,
            )  # fmt: skip
        for original, folded in zip(loaded.scouters, predictor.scouters, strict=True):
            torch.testing.assert_close(
                folded(view[None])["logits"], original.eval()(view[None])["logits"],
                rtol=1e-4, atol=1e-5,
            )  # fmt: skip
