"""In-model input normalisation: `Normalize` itself, and that every registered model uses it.

The image contract of every fieldvision model is ``Tensor[B, 3, H, W]`` in ``[0, 1]``; the
per-model tests are parametrised over ``MODELS.names()``, so a new model is checked for free.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import fieldvision.models.biomass
import fieldvision.models.mil
import fieldvision.models.reid  # noqa: F401  (registers the models)
from fieldvision.models.normalize import IMAGENET_MEAN, IMAGENET_STD, Normalize
from fieldvision.models.registry import MODELS, create_model

# Small data-derived dimensions and the inputs besides the images (see test_registry.py).
DIMS: dict[str, dict] = {
    "biomass_phase1": {"n_species": 3, "n_states": 2},
    "biomass_phase2": {"meta_dim": 4},
    "mil_expert": {"num_classes": 3},
}
# Models whose image input is a bag of tiles: Tensor[B, T, 3, h, w].
BAGS = {"mil_expert"}
EXTRA_INPUTS = {"biomass_phase2": lambda b: (torch.randn(b, 4),)}


def _reference(x: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """Per-channel ``(x - mean) / std``, one channel at a time, in the dtype of `x`."""
    channels = [(x[:, c] - m) / s for c, (m, s) in enumerate(zip(mean, std, strict=True))]
    return torch.stack(channels, dim=1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("mean", "std"), [(IMAGENET_MEAN, IMAGENET_STD), ((0.5, 0.5, 0.5), (0.25, 0.5, 2.0))]
)
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 3, 1, 1), (0, 3, 4, 4)])
def test_normalize_matches_the_reference(dtype, mean, std, shape):
    x = torch.rand(shape, dtype=dtype, generator=torch.Generator().manual_seed(0))
    out = Normalize(mean, std)(x)
    assert out.dtype == dtype and out.shape == x.shape
    # The statistics are stored in float32 buffers, so float64 agrees to ~1e-7.
    torch.testing.assert_close(out, _reference(x, mean, std), rtol=1e-6, atol=1e-6)


def test_normalize_gradcheck():
    x = torch.rand(2, 3, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(Normalize(), (x,))


def test_normalize_buffers_are_not_weights_but_follow_the_module():
    norm = Normalize()
    assert norm.state_dict() == {} and list(norm.parameters()) == []
    assert {name for name, _ in norm.named_buffers()} == {"mean", "std"}
    assert norm.double().mean.dtype == torch.float64


@pytest.mark.parametrize(
    ("shape", "error"), [((2, 4, 5, 5), RuntimeError), ((2, 2, 5, 5), RuntimeError)]
)
def test_normalize_needs_three_channels(shape, error):
    with pytest.raises(error):
        Normalize()(torch.rand(shape))


# --------------------------------------------------------------------------- every model


def _model(name: str) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name, {}, **DIMS.get(name, {})).eval()


def _outputs(name: str, model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    extra = EXTRA_INPUTS[name](len(x)) if name in EXTRA_INPUTS else ()
    with torch.no_grad():
        out = model(x, *extra)
    return {k: v for k, v in out.items() if v is not None}


@pytest.mark.parametrize("name", MODELS.names())
def test_model_normalises_its_unit_range_input_itself(name):
    """model(x) == the same network without `normalize` fed the old, externally normalised x.

    Fails if a model stops normalising (outputs would equal the un-normalised path), or
    normalises twice, or with other statistics.
    """
    model = _model(name)
    assert isinstance(model.normalize, Normalize)
    assert not any(key.startswith("normalize.") for key in model.state_dict())
    bare = copy.deepcopy(model)
    bare.normalize = nn.Identity()
    gen = torch.Generator().manual_seed(3)
    if name in BAGS:
        x = torch.rand(2, 4, 3, 32, 32, generator=gen)  # in [0, 1]
        normalised = _reference(x.flatten(0, 1)).view_as(x)
    else:
        x = torch.rand(2, 3, 32, 64, generator=gen)
        normalised = _reference(x)
    inside = _outputs(name, model, x)
    outside = _outputs(name, bare, normalised)
    unnormalised = _outputs(name, bare, x)
    assert inside.keys() == outside.keys()
    for key in inside:  # resizing inside a model commutes with normalising only up to fp error
        torch.testing.assert_close(inside[key], outside[key], rtol=1e-4, atol=1e-6)
    assert any(not torch.allclose(inside[k], unnormalised[k], rtol=1e-2, atol=0) for k in inside)
