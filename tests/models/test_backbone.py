import re
import warnings

import pytest
import torch
from safetensors.torch import save_file

from fieldvision.errors import ConfigError
from fieldvision.models.backbone import (
    BACKBONES,
    PartialWeightsWarning,
    WeightsReport,
    create_backbone,
    load_weights,
)

# Every registered backbone is tested for free, plus one CNN and one ViT from timm.
NAMES = [*BACKBONES.names(), "resnet18", "vit_tiny_patch16_224"]


@pytest.mark.parametrize("name", NAMES)
def test_uniform_interface(name):
    torch.manual_seed(0)
    model = create_backbone(name).eval()
    x = torch.randn(2, 3, 224, 224)
    fmap = model.forward_features(x)
    pooled = model(x)
    assert fmap.ndim == 4 and fmap.shape[:2] == (2, model.num_features)
    assert pooled.shape == (2, model.num_features)
    torch.testing.assert_close(pooled, fmap.mean(dim=(2, 3)))


@pytest.mark.parametrize("name", BACKBONES.names())
def test_tiny_backbones_backpropagate_and_accept_2_to_1_inputs(name):
    model = create_backbone(name)
    out = model(torch.randn(2, 3, 64, 128))
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


SUFFIXES = [".safetensors", ".pth"]
N_TINY_KEYS = 24  # fv_tiny_cnn: 4 x (conv weight + BN weight, bias, mean, var, count)


def trained_tiny(seed: int = 0) -> torch.nn.Module:
    """An fv_tiny_cnn whose every tensor (BN buffers included) differs from a fresh one."""
    torch.manual_seed(seed)
    model = create_backbone("fv_tiny_cnn")
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                t.fill_(7 + seed)
            elif name.endswith("running_var"):
                t.uniform_(0.5, 2.0)
            else:
                t.normal_()
    return model.eval()


def save_state(path, state, wrapper=None):
    state = {k: v.contiguous() for k, v in state.items()}
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state if wrapper is None else {wrapper: state, "epoch": 3}, path)
    return path


def snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize(
    ("prefix", "wrapper"),
    [("", None), ("module.", "state_dict"), ("model.", "model"), ("", "state_dict_ema")],
)
def test_full_state_dict_loads_strictly(tmp_path, suffix, prefix, wrapper):
    src = trained_tiny()
    state = {f"{prefix}{k}": v for k, v in src.state_dict().items()}
    path = save_state(tmp_path / f"w{suffix}", state, wrapper)
    dst = create_backbone("fv_tiny_cnn")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = load_weights(dst, path)
    assert report == WeightsReport(loaded=N_TINY_KEYS, missing=(), unexpected=(), mismatched=())
    for (k, a), b in zip(src.state_dict().items(), dst.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    x = torch.randn(2, 3, 32, 64)
    torch.testing.assert_close(dst.eval()(x), src(x), rtol=0, atol=0)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_create_backbone_loads_local_weights(tmp_path, suffix):
    src = trained_tiny()
    path = save_state(tmp_path / f"w{suffix}", src.state_dict(), "state_dict")
    dst = create_backbone("fv_tiny_cnn", pretrained=path).eval()
    x = torch.randn(1, 3, 32, 64)
    torch.testing.assert_close(dst(x), src(x), rtol=0, atol=0)


def _drop_keys(state):
    del state["features.3.0.weight"], state["features.1.1.num_batches_tracked"]
    return state


def _add_head(state):
    # Bias first: safetensors stores keys sorted, and the report keeps the file's order.
    return {**state, "head.fc.bias": torch.zeros(5), "head.fc.weight": torch.ones(5, 96)}


def _reshape_first_conv(state):
    state["features.0.0.weight"] = torch.ones(16, 3, 5, 5)
    return state


def _all_three(state):
    return _reshape_first_conv(_add_head(_drop_keys(state)))


# (edit of a full fv_tiny_cnn state dict, expected report, phrases in the error / warning)
FAULTS = [
    (
        _drop_keys,
        WeightsReport(
            N_TINY_KEYS - 2, ("features.1.1.num_batches_tracked", "features.3.0.weight"), (), ()
        ),
        ["22 of 24", "2 missing", "features.1.1.num_batches_tracked, features.3.0.weight"],
    ),
    (
        _add_head,
        WeightsReport(N_TINY_KEYS, (), ("head.fc.bias", "head.fc.weight"), ()),
        ["24 of 24", "2 unexpected", "head.fc.bias, head.fc.weight"],
    ),
    (
        _reshape_first_conv,
        WeightsReport(N_TINY_KEYS - 1, (), (), ("features.0.0.weight",)),
        [
            "23 of 24",
            "1 with another shape",
            r"features.0.0.weight: file \[16, 3, 5, 5\] vs model \[16, 3, 3, 3\]",
        ],
    ),
    (
        _all_three,
        WeightsReport(
            N_TINY_KEYS - 3,
            ("features.1.1.num_batches_tracked", "features.3.0.weight"),
            ("head.fc.bias", "head.fc.weight"),
            ("features.0.0.weight",),
        ),
        ["21 of 24", "2 missing", "2 unexpected", "1 with another shape"],
    ),
]


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize(("edit", "expected", "phrases"), FAULTS)
def test_strict_refuses_a_partial_fit_and_loads_nothing(tmp_path, suffix, edit, expected, phrases):
    path = save_state(tmp_path / f"w{suffix}", edit(dict(trained_tiny().state_dict())))
    dst = create_backbone("fv_tiny_cnn")
    before = snapshot(dst)
    with pytest.raises(ConfigError) as exc:
        load_weights(dst, path)
    message = str(exc.value)
    assert str(path) in message
    for phrase in phrases:
        assert re.search(phrase, message), (phrase, message)
    assert "pretrained_strict=false" in exc.value.hint
    for k, v in dst.state_dict().items():
        assert torch.equal(v, before[k]), f"{k} was changed by a refused load"


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize(("edit", "expected", "phrases"), FAULTS)
def test_non_strict_loads_the_matching_tensors_and_warns(tmp_path, suffix, edit, expected, phrases):
    src = trained_tiny()
    path = save_state(tmp_path / f"w{suffix}", edit(dict(src.state_dict())))
    dst = create_backbone("fv_tiny_cnn")
    before = snapshot(dst)
    with pytest.warns(PartialWeightsWarning) as record:
        report = load_weights(dst, path, strict=False)
    assert report == expected
    message = str(record[0].message)
    assert str(path) in message
    for phrase in phrases:
        assert re.search(phrase, message), (phrase, message)
    skipped = set(expected.missing) | set(expected.mismatched)
    for k, v in dst.state_dict().items():
        want = before[k] if k in skipped else src.state_dict()[k]
        assert torch.equal(v, want), k


@pytest.mark.parametrize(
    ("strict", "error"),
    [(True, "pretrained_strict=false"), (False, None)],
)
def test_create_backbone_passes_pretrained_strict(tmp_path, strict, error):
    """A classifier checkpoint: strict refuses it, non-strict drops the head with a warning."""
    src = trained_tiny()
    path = save_state(tmp_path / "cls.pth", _add_head(dict(src.state_dict())), "state_dict")
    if error is not None:
        with pytest.raises(ConfigError, match=error):
            create_backbone("fv_tiny_cnn", pretrained=path, pretrained_strict=strict)
        return
    with pytest.warns(PartialWeightsWarning, match="head.fc.weight"):
        dst = create_backbone("fv_tiny_cnn", pretrained=path, pretrained_strict=strict)
    x = torch.randn(1, 3, 32, 64)
    torch.testing.assert_close(dst.eval()(x), src(x), rtol=0, atol=0)


def test_another_input_stem_is_a_shape_mismatch(tmp_path):
    path = save_state(tmp_path / "rgb.safetensors", trained_tiny().state_dict())
    with pytest.raises(ConfigError, match=r"file \[16, 3, 3, 3\] vs model \[16, 1, 3, 3\]"):
        create_backbone("fv_tiny_cnn", pretrained=path, in_chans=1)
    with pytest.warns(PartialWeightsWarning, match="features.0.0.weight"):
        create_backbone("fv_tiny_cnn", pretrained=path, in_chans=1, pretrained_strict=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "no_such_net"}, "unknown backbone 'no_such_net'"),
        ({"name": "fv_tiny_cnn", "pretrained": True}, "never does"),
        ({"name": "fv_tiny_cnn", "pretrained": "missing.pth"}, "not found"),
    ],
)
def test_bad_backbone_requests(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        create_backbone(**kwargs)


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"foo.weight": torch.zeros(3)}, "1 unexpected in the file \\(foo.weight\\)"),
        ({"features.0.0.weight": torch.zeros(3)}, "file \\[3\\] vs model \\[16, 3, 3, 3\\]"),
        ({}, "0 file keys, 24 model keys"),
    ],
)
def test_weights_that_match_nothing_are_refused(tmp_path, strict, suffix, state, message):
    path = save_state(tmp_path / f"other{suffix}", state)
    with pytest.raises(ConfigError, match="no tensor in the file matches") as exc:
        create_backbone("fv_tiny_cnn", pretrained=path, pretrained_strict=strict)
    assert re.search(message, str(exc.value)), str(exc.value)


def test_corrupt_weights_file_is_named(tmp_path):
    path = tmp_path / "bad.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="bad.pth: cannot read weights"):
        create_backbone("fv_tiny_cnn", pretrained=path)
