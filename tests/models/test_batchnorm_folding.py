import copy

import pytest
import torch
from torch import nn

from fieldvision.models.backbone import create_backbone
from fieldvision.models.batchnorm_folding import fold_batchnorm


def _randomise_statistics(model: nn.Module) -> nn.Module:
    """Non-trivial running statistics and affine terms, so a wrong fold shows."""
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=gen) * 2 - 1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) * 1.5 + 0.5)
            if m.affine:
                m.weight.data.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.data.copy_(torch.rand(m.bias.shape, generator=gen) * 2 - 1)
    return model.eval()


def _batchnorms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


# (backbone, pairs): ours are traced directly; timm's resnet18 through our wrapper, whose
# token-handling forward is untraceable, so folding recurses into the timm model.
@pytest.mark.parametrize(
    ("name", "pairs"), [("fv_tiny_cnn", 4), ("fv_small_resnet", 12), ("resnet18", 20)]
)
def test_folded_backbone_computes_the_same_function_without_batchnorm(name, pairs):
    torch.manual_seed(0)
    model = _randomise_statistics(create_backbone(name))
    folded = copy.deepcopy(model)
    assert fold_batchnorm(folded) == pairs
    assert _batchnorms(folded) == 0
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(
            folded.forward_features(x), model.forward_features(x), rtol=1e-4, atol=1e-5
        )


class _ConvBN(nn.Module):
    def __init__(self, bias: bool = False, affine: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=bias)
        self.bn = nn.BatchNorm2d(4, affine=affine)

    def forward(self, x):
        return self.bn(self.conv(x))


@pytest.mark.parametrize(("bias", "affine"), [(False, True), (True, True), (True, False)])
def test_fold_matches_the_eval_formula_with_and_without_bias_and_affine(bias, affine):
    model = _randomise_statistics(_ConvBN(bias, affine))
    reference = copy.deepcopy(model)
    assert fold_batchnorm(model) == 1
    assert isinstance(model.bn, nn.Identity)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        bn = reference.bn
        y = reference.conv(x)
        scale = (bn.weight if affine else 1) / torch.sqrt(bn.running_var + bn.eps)
        shift = bn.bias if affine else 0
        expected = (y - bn.running_mean[:, None, None]) * scale[:, None, None]
        expected = expected + (shift[:, None, None] if affine else 0)
        torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)


class _ConvUsedTwice(nn.Module):
    """The conv's output also feeds the residual sum: folding would change that use."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


class _ConvCalledTwice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        return self.bn(self.conv(x)) + self.conv(x)


class _SharedBN(nn.Module):
    """One BatchNorm registered under two names."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 1)
        self.bn = nn.BatchNorm2d(4)
        self.alias = self.bn

    def forward(self, x):
        return self.bn(self.conv(x))


class _BatchStatistics(_ConvBN):
    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(4, track_running_stats=False)


class _BNBeforeConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(4)
        self.conv = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        return self.conv(self.bn(x))


@pytest.mark.parametrize(
    "make", [_ConvUsedTwice, _ConvCalledTwice, _SharedBN, _BatchStatistics, _BNBeforeConv]
)
def test_unsafe_or_unmatched_pairs_are_left_alone(make):
    model = _randomise_statistics(make())
    reference = copy.deepcopy(model)
    channels = 3 if isinstance(model, _ConvBN) else 4
    x = torch.randn(2, channels, 5, 5)
    assert fold_batchnorm(model) == 0
    assert _batchnorms(model) == _batchnorms(reference)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x))


class _Untraceable(nn.Module):
    """Python control flow on a tensor value: fx cannot trace it, its child it can."""

    def __init__(self) -> None:
        super().__init__()
        self.block = _ConvBN()

    def forward(self, x):
        if x.sum() > 0:
            return self.block(x)
        return -self.block(x)


def test_untraceable_module_is_folded_through_its_children():
    model = _randomise_statistics(_Untraceable())
    reference = copy.deepcopy(model)
    assert fold_batchnorm(model) == 1
    x = torch.rand(2, 3, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(model(-x), reference(-x), rtol=1e-5, atol=1e-5)


def test_training_mode_is_refused():
    with pytest.raises(ValueError, match="eval"):
        fold_batchnorm(_ConvBN().train())
