"""One backbone interface over timm plus tiny registered CNNs for CPU demos.

Every backbone returned by `create_backbone` has the same interface:

* ``forward_features(x: Tensor[B, 3, H, W]) -> Tensor[B, C, h, w]`` (feature map),
* ``forward(x) -> Tensor[B, C]`` (globally average-pooled features),
* ``num_features: int`` (``C``).

Names in `BACKBONES` are ours (tiny, fast, trained from scratch); any other name is handed
to ``timm.create_model``. Pretrained weights are never downloaded: ``pretrained`` is
``False`` or a local ``.safetensors`` / ``.pth`` file, loaded with ``weights_only=True``.
By default the file must fit the backbone exactly (`load_weights` with ``strict=True``): a
silently half-loaded backbone trains, but not from the weights the user meant.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from fieldvision.config import StrictModel
from fieldvision.errors import ConfigError
from fieldvision.registry import Registry

__all__ = [
    "BACKBONES",
    "Backbone",
    "BackboneChoice",
    "PartialWeightsWarning",
    "WeightsReport",
    "backbone_for",
    "create_backbone",
    "load_weights",
    "size_pair",
]

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
    pretrained_strict: bool = True,
) -> Backbone:
    """Create a backbone by name.

    Args:
        name: A name in `BACKBONES` or any ``timm.list_models()`` name.
        pretrained: ``False``, or a local weights file (``.safetensors``, ``.pth``, ``.pt``,
            ``.bin``). ``True`` is refused: weights are never downloaded.
        in_chans: Input channels.
        drop_path_rate: Stochastic depth for timm models that support it.
        pretrained_strict: Require the weights file to fit the backbone exactly (no missing,
            unexpected or shape-mismatched tensors). False loads the matching tensors and
            warns (`PartialWeightsWarning`) about the rest; see `load_weights`.

    Raises:
        ConfigError: Unknown name, ``pretrained=True``, or an unusable weights file (one
            that does not fit the backbone, with `pretrained_strict`).
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
        load_weights(model, pretrained, strict=pretrained_strict)
    return model


class PartialWeightsWarning(UserWarning):
    """Non-strict `load_weights` skipped tensors of the model or of the file."""


@dataclass(frozen=True)
class WeightsReport:
    """How a weights file mapped onto a model's state dict (`load_weights`).

    Keys are model state-dict names (parameters *and* buffers such as BatchNorm running
    statistics and ``num_batches_tracked``), except `unexpected`, which holds the file's own
    names.

    Attributes:
        loaded: Number of model tensors filled from the file.
        missing: Model keys the file has no tensor for (keys present with another shape are
            in `mismatched` instead).
        unexpected: File keys (in the file's order) that match no model key (e.g. a
            classifier ``head.fc.weight``), or that duplicate a key already filled.
        mismatched: Model keys the file has under the same name with a different shape.
    """

    loaded: int
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    mismatched: tuple[str, ...]

    @property
    def complete(self) -> bool:
        """True when every model key was filled and every file tensor was used."""
        return not (self.missing or self.unexpected or self.mismatched)


_WRAPPER_KEYS = ("state_dict", "model", "state_dict_ema")
_SHOW_KEYS = 5  # keys of each kind named in messages


def _read_state(path: Path) -> dict[str, object]:
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
    for key in _WRAPPER_KEYS:
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
            break
    if not isinstance(state, dict):
        raise ConfigError(f"{path}: expected a state dict, got {type(state).__name__}")
    return state


def _shape(value: object) -> tuple[int, ...] | None:
    return tuple(value.shape) if isinstance(value, Tensor) else None


_Shapes = tuple[tuple[int, ...], tuple[int, ...]]  # (file shape, model shape)


def _match(
    state: dict[str, object], target: dict[str, object]
) -> tuple[dict[str, Tensor], list[str], dict[str, _Shapes]]:
    """Map file keys onto model keys.

    A file key matches after stripping ``module.`` (DataParallel / DDP) and adding or
    removing one ``model.`` (timm wrapper vs bare model); a candidate of the right shape wins
    over one of the wrong shape, and the first file key to fill a model key wins.

    Returns:
        ``(loaded, unexpected, mismatched)``: tensors by model key, file keys used for
        nothing, and ``{model key: (file shape, model shape)}`` for same-name tensors of
        another shape.
    """
    loaded: dict[str, Tensor] = {}
    unexpected: list[str] = []
    mismatched: dict[str, tuple[str, _Shapes]] = {}  # model key -> (file key, shapes)
    for raw_key, value in state.items():
        file_key = str(raw_key)
        key = file_key.removeprefix("module.")
        candidates = [c for c in (key, f"model.{key}", key.removeprefix("model.")) if c in target]
        if not isinstance(value, Tensor) or not candidates:
            unexpected.append(file_key)  # no such model key, or not a tensor
            continue
        fitting = [c for c in candidates if _shape(target[c]) == tuple(value.shape)]
        model_key = fitting[0] if fitting else candidates[0]
        if model_key in loaded:
            unexpected.append(file_key)  # a second tensor for an already filled key
        elif fitting:
            loaded[model_key] = value
            if model_key in mismatched:  # an earlier wrong-shape tensor is now unused
                unexpected.append(mismatched.pop(model_key)[0])
        elif model_key in mismatched:
            unexpected.append(file_key)
        else:
            model_shape = _shape(target[model_key]) or ()
            mismatched[model_key] = (file_key, (tuple(value.shape), model_shape))
    return loaded, unexpected, {k: shapes for k, (_f, shapes) in mismatched.items()}


def _first(keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:_SHOW_KEYS])
    return shown + (f", ... (+{len(keys) - _SHOW_KEYS} more)" if len(keys) > _SHOW_KEYS else "")


def _problems(report: WeightsReport, shapes: dict[str, _Shapes]) -> list[str]:
    """One phrase per kind of skipped key, naming the first few (with shapes)."""
    parts = []
    if report.missing:
        parts.append(f"{len(report.missing)} missing from the file ({_first(report.missing)})")
    if report.unexpected:
        parts.append(
            f"{len(report.unexpected)} unexpected in the file ({_first(report.unexpected)})"
        )
    if report.mismatched:
        described = [
            f"{k}: file {list(shapes[k][0])} vs model {list(shapes[k][1])}"
            for k in report.mismatched
        ]
        parts.append(f"{len(report.mismatched)} with another shape ({_first(described)})")
    return parts


def load_weights(
    model: Backbone, path: str | os.PathLike[str], strict: bool = True
) -> WeightsReport:
    """Load a local state dict into `model`, safely (no pickle execution).

    The file may hold the state dict itself or wrap it under ``state_dict``, ``model`` or
    ``state_dict_ema``. Keys are matched after stripping ``module.`` and adding or removing
    a ``model.`` prefix. Every model state-dict key counts, buffers included (BatchNorm
    ``running_mean`` / ``running_var`` / ``num_batches_tracked``).

    Args:
        model: The backbone to fill (modified in place).
        path: ``.safetensors`` file, or a ``torch.save`` file (``.pth``, ``.pt``, ``.bin``)
            read with ``weights_only=True``.
        strict: Require an exact fit: any missing, unexpected or shape-mismatched key is an
            error and nothing is loaded. False loads the matching tensors and emits a
            `PartialWeightsWarning` naming what was skipped (e.g. to drop a classifier
            head or to reuse a backbone with another input stem).

    Returns:
        A `WeightsReport` of what was loaded and skipped.

    Raises:
        ConfigError: File missing or unreadable; no tensor of the file matches the model
            (whatever `strict`); or, with `strict`, the file does not fit exactly.
    """
    path = Path(path)
    state = _read_state(path)
    target = model.state_dict()
    loaded, unexpected, shapes = _match(state, target)
    report = WeightsReport(
        loaded=len(loaded),
        missing=tuple(k for k in target if k not in loaded and k not in shapes),
        unexpected=tuple(unexpected),
        mismatched=tuple(k for k in target if k in shapes),
    )
    problems = "; ".join(_problems(report, shapes))
    if not loaded:
        raise ConfigError(
            f"{path}: no tensor in the file matches the backbone's parameters "
            f"({len(state)} file keys, {len(target)} model keys): {problems}",
            hint="is this a checkpoint of another architecture?",
        )
    if report.complete:
        model.load_state_dict(loaded, strict=True)
        return report
    message = (
        f"{path}: weights do not fit the backbone, {report.loaded} of {len(target)} model "
        f"tensors matched: {problems}"
    )
    if strict:
        raise ConfigError(
            message,
            hint="set pretrained_strict=false to load only the matching tensors "
            "(e.g. to drop a classifier head)",
        )
    model.load_state_dict(loaded, strict=False)
    warnings.warn(PartialWeightsWarning(message + " (loaded the matching ones)"), stacklevel=2)
    return report


class BackboneChoice(StrictModel):
    """Which backbone a model uses and where its initial weights come from."""

    backbone: str = "fv_tiny_cnn"  # ours (fv_tiny_cnn, fv_small_resnet) or any timm name
    pretrained: bool | str = False  # false or a local weights file; never downloads
    # A weights file must fill every tensor of the backbone and hold nothing else; set
    # false to load only the matching tensors (e.g. a checkpoint with a classifier head).
    pretrained_strict: bool = True


def backbone_for(cfg: BackboneChoice, channels_last: bool = False, **kwargs: object) -> Backbone:
    """The backbone a model config chooses (NHWC memory format when `channels_last`).

    Args:
        cfg: The model's `BackboneChoice` (or a config extending it).
        channels_last: Convert the weights to channels-last (faster CPU convs, oneDNN).
        **kwargs: Passed to `create_backbone` (``in_chans``, ``drop_path_rate``).
    """
    backbone = create_backbone(
        cfg.backbone, pretrained=cfg.pretrained, pretrained_strict=cfg.pretrained_strict,
        **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip
    if channels_last:
        backbone.to(memory_format=torch.channels_last)
    return backbone


def size_pair(value: Sequence[int], field: str) -> tuple[int, int]:
    """Two positive integers (an ``(H, W)`` size or a ``(rows, cols)`` grid).

    Raises:
        ConfigError: Not two positive integers, naming `field`.
    """
    pair = tuple(int(v) for v in value)
    if len(pair) != 2 or min(pair) < 1:
        raise ConfigError(f"{field} must be two positive integers, got {value!r}")
    return pair  # type: ignore[return-value]
