import pytest
import torch
from safetensors.torch import save_file

from fieldvision.errors import ConfigError
from fieldvision.models.backbone import BACKBONES, create_backbone

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


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_local_weights_roundtrip(tmp_path, suffix):
    src = create_backbone("fv_tiny_cnn")
    path = tmp_path / f"w{suffix}"
    state = {f"module.{k}": v.contiguous() for k, v in src.state_dict().items()}
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save({"state_dict": state}, path)
    dst = create_backbone("fv_tiny_cnn", pretrained=path)
    for (k, a), b in zip(src.state_dict().items(), dst.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


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


def test_weights_that_match_nothing_are_refused(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"foo.weight": torch.zeros(3)}, path)
    with pytest.raises(ConfigError, match="no tensor in the file matches"):
        create_backbone("fv_tiny_cnn", pretrained=path)


def test_corrupt_weights_file_is_named(tmp_path):
    path = tmp_path / "bad.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="bad.pth: cannot read weights"):
        create_backbone("fv_tiny_cnn", pretrained=path)
