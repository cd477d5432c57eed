"""One backbone interface over timm plus tiny registered CNNs for CPU demos.

Every backbone returned by `create_backbone` has the same interface:

* ``forward_features(x: Tensor[B, 3, H, W]) -> Tensor[B, C, h, w]`` (feature map),
* ``forward(x) -> Tensor[B, C]`` (globally average-pooled features),
* ``num_features: int`` (``C``).

Names in `BACKBONES` are ours (tiny, fast, trained from scratch); any other name is handed
to ``timm.create_model``. Pretrained weights are never downloaded: ``pretrained`` is
``False`` or a local ``.safetensors`` / ``.pth`` file, loaded with ``weights_only=True``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from fieldvision.errors import ConfigError
from fieldvision.registry import Registry

__all__ = ["BACKBONES", "Backbone", "create_backbone", "load_weights"]

BACKBONES: Registry[Callable[..., Backbone]] = Registry("backbone")


class Backbone(nn.Module):
    """Base class: subclasses implement `forward_features` and set `num_features`."""

    num_features: int

    def forward_features(self, x: Tensor) -> Tensor:  # (B, 3, H, W) -> (B, C, h, w)
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:  # (B, 3, H, W) -> (B, C)
        return self.forward_features(x).mean(dim=(2, 3))


def _conv_bn_act(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.SiLU(inplace=True),
    )


class _ResidualBlock(nn.Module):
    """Two 3×3 convs with a (projected) shortcut; `stride` downsamples."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv_bn_act(c_in, c_out, stride),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.skip = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )
        )
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.body(x) + self.skip(x))


class TinyCNN(Backbone):
    """Plain strided CNN (stem + stages); total stride 2**len(widths). Fast on CPU.

    Args:
        widths: Output channels of each stride-2 stage.
        residual: Use residual blocks instead of single conv-bn-act layers.
        in_chans: Input channels.
    """

    def __init__(
        self, widths: tuple[int, ...] = (16, 32, 64, 96), residual: bool = False, in_chans: int = 3
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_chans
        for w in widths:
            layers.append(_ResidualBlock(c, w, 2) if residual else _conv_bn_act(c, w, 2))
            c = w
        self.features = nn.Sequential(*layers)
        self.num_features = c

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(x)


@BACKBONES.register("fv_tiny_cnn")
def fv_tiny_cnn(in_chans: int = 3, **_: object) -> Backbone:
    """4 plain stages (16-32-64-96 channels), ~0.1M params: the CPU demo default."""
    return TinyCNN((16, 32, 64, 96), residual=False, in_chans=in_chans)


@BACKBONES.register("fv_small_resnet")
def fv_small_resnet(in_chans: int = 3, **_: object) -> Backbone:
    """4 residual stages (24-48-96-160 channels), ~1M params: a stronger CPU option."""
    return TinyCNN((24, 48, 96, 160), residual=True, in_chans=in_chans)


class TimmBackbone(Backbone):
    """Any timm model as a feature extractor (classifier and pooling removed)."""

    def __init__(self, name: str, in_chans: int = 3, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        import timm

        kwargs: dict[str, object] = {
            "pretrained": False,
            "num_classes": 0,
            "global_pool": "",
            "in_chans": in_chans,
        }
        if drop_path_rate > 0:
            kwargs["drop_path_rate"] = drop_path_rate
        self.model = timm.create_model(name, **kwargs)
        self.num_features = int(self.model.num_features)

    def forward_features(self, x: Tensor) -> Tensor:
        feats = self.model.forward_features(x)
        if feats.ndim == 3:  # ViT-style tokens (B, N, C): drop prefix tokens, fold to a map
            n_prefix = int(getattr(self.model, "num_prefix_tokens", 0))
            tokens = feats[:, n_prefix:]
            side = int(round(tokens.shape[1] ** 0.5))
            if side * side != tokens.shape[1]:
                return tokens.transpose(1, 2).unsqueeze(-1)  # (B, C, N, 1)
            return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, side, side)
        if (
            feats.ndim == 4
            and feats.shape[1] != self.num_features
            and feats.shape[-1] == self.num_features
        ):
            feats = feats.permute(0, 3, 1, 2)  # NHWC models (some timm families)
        return feats


def create_backbone(
    name: str,
    pretrained: bool | str | os.PathLike[str] = False,
    in_chans: int = 3,
    drop_path_rate: float = 0.0,
) -> Backbone:
    """Create a backbone by name.

    Args:
        name: A name in `BACKBONES` or any ``timm.list_models()`` name.
        pretrained: ``False``, or a local weights file (``.safetensors``, ``.pth``, ``.pt``,
            ``.bin``). ``True`` is refused: weights are never downloaded.
        in_chans: Input channels.
        drop_path_rate: Stochastic depth for timm models that support it.

    Raises:
        ConfigError: Unknown name, ``pretrained=True``, or an unusable weights file.
    """
    if pretrained is True:
        raise ConfigError(
            "pretrained=true would download weights, which fieldvision never does",
            hint="pass a local .safetensors/.pth file path, or false",
        )
    if name in BACKBONES:
        model = BACKBONES.get(name)(in_chans=in_chans)
    else:
        import timm

        if not timm.is_model(name):
            raise ConfigError(
                f"unknown backbone {name!r}: not one of ours ({', '.join(BACKBONES.names())}) "
                "and not a timm model name"
            )
        model = TimmBackbone(name, in_chans=in_chans, drop_path_rate=drop_path_rate)
    if pretrained:
        load_weights(model, pretrained)
    return model


def load_weights(model: Backbone, path: str | os.PathLike[str]) -> tuple[int, int]:
    """Load a local state dict into `model`, safely (no pickle execution).

    Keys are matched after stripping common prefixes (``module.``, ``model.``); keys whose
    shape differs (e.g. a classifier of another size) are skipped.

    Returns:
        ``(n_loaded, n_model_keys)``.

    Raises:
        ConfigError: File missing/unreadable, or no key matched the model.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"pretrained weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(
            f"{path}: cannot read weights ({exc.__class__.__name__}: {exc})"
        ) from None
    for key in ("state_dict", "model", "state_dict_ema"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
            break
    if not isinstance(state, dict):
        raise ConfigError(f"{path}: expected a state dict, got {type(state).__name__}")
    target = model.state_dict()
    loaded: dict[str, Tensor] = {}
    for raw_key, tensor in state.items():
        key = raw_key
        for prefix in ("module.",):
            key = key.removeprefix(prefix)
        candidates = [key, f"model.{key}", key.removeprefix("model.")]
        for cand in candidates:
            if cand in target and isinstance(tensor, Tensor) and target[cand].shape == tensor.shape:
                loaded[cand] = tensor
                break
    if not loaded:
        raise ConfigError(f"{path}: no tensor in the file matches the backbone's parameters")
    model.load_state_dict(loaded, strict=False)
    return len(loaded), len(target)
