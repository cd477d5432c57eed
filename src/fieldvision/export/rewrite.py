"""Export-only rewrites: the same weights and outputs, a graph ONNX Runtime runs faster.

`export_form` returns a copy of a model for ``torch.onnx.export`` (the caller's model is
never changed; the copy shares its parameter tensors, so it costs no memory). Two rewrites,
each exact in real arithmetic and within FP32 rounding in practice (the exporter's parity
check compares the ONNX graph with the *original* model):

* **timm ConvNeXt blocks in NCHW form.** timm's default ConvNeXt block (``conv_mlp=False``)
  permutes the depthwise-conv output to NHWC, runs ``LayerNorm`` + ``Linear`` → GELU →
  ``Linear`` there and permutes back. We switch each such block to timm's own ``conv_mlp``
  form: the two ``Linear`` layers become 1×1 convolutions (their weight viewed as
  ``[out, in, 1, 1]``) and the norm a ``LayerNorm2d`` over channels (the same weight, bias
  and eps). On x86 ONNX Runtime then runs the whole MLP in its blocked NCHWc conv layout
  with fused bias, instead of 4-D MatMuls plus separate bias Adds; the layout changes
  around each LayerNorm fold into the NCHWc reorders. ConvNeXt-V2 blocks (GRN in the
  MLP) get an NCHW GlobalResponseNorm with the same parameters.
* **GELU in the form ONNX Runtime fuses.** At opset 18 the exporter writes exact GELU as
  ``0.5 * (1 + erf(x / √2))`` times ``x``, an operand order that ONNX Runtime's
  GeluFusion does not match: it stays five element-wise passes. Written as
  ``(x * (1 + erf(x / √2))) * 0.5`` it is fused into one Gelu (or BiasGelu with the
  preceding bias) kernel. Only exact GELU (``approximate="none"``) modules are swapped.

Measured on convnext_tiny at 224² (random init, batch 4, one CPU thread, CPU time per
image, so other load on the machine does not count): ONNX FP32 went from 1.04x to 1.26x
torch eager, ONNX INT8 from 2.34x to 2.76x (``benchmarks/export_speed.py`` prints both
graphs side by side, at 2 threads). Removing the Transposes
altogether (LayerNorm over channels as ``ReduceMean`` / ``Sub`` / ``Mul`` on NCHW) was not
faster than the ``LayerNorm2d`` form: ONNX Runtime already folds those Transposes into its
layout reorders, and the fused LayerNormalization kernel beats nine element-wise passes.
"""

from __future__ import annotations

import copy
import math
import sys

import torch
from torch import Tensor, nn

__all__ = ["FusableGelu", "export_form"]


class FusableGelu(nn.Module):
    """Exact GELU, written in the operand order ONNX Runtime's GeluFusion matches."""

    def forward(self, x: Tensor) -> Tensor:  # any shape -> same shape
        return (x * (torch.erf(x / math.sqrt(2.0)) + 1.0)) * 0.5


def _is_exact_gelu(module: nn.Module) -> bool:
    if isinstance(module, nn.GELU):
        return module.approximate == "none"
    # timm's GELU wrapper (``F.gelu`` with the default, exact form)
    return type(module).__name__ == "GELU" and type(module).__module__.startswith("timm.")


def _conv1x1(linear: nn.Linear) -> nn.Conv2d:
    """A 1×1 conv computing `linear` over the channels of an NCHW map (shared weights)."""
    conv = nn.Conv2d(linear.in_features, linear.out_features, 1, bias=linear.bias is not None)
    conv.weight = nn.Parameter(
        linear.weight.detach().reshape(linear.out_features, linear.in_features, 1, 1),
        requires_grad=False,
    )
    if linear.bias is not None:
        conv.bias = nn.Parameter(linear.bias.detach(), requires_grad=False)
    return conv


def _nchw_convnext_block(block: nn.Module) -> bool:
    """Switch one timm ConvNeXt block to its ``conv_mlp`` (NCHW) form; False if not ours."""
    from timm.layers import LayerNorm, LayerNorm2d
    from timm.layers.grn import GlobalResponseNorm

    mlp = block.mlp
    fc1, fc2 = getattr(mlp, "fc1", None), getattr(mlp, "fc2", None)
    if not (
        type(block.norm) in (nn.LayerNorm, LayerNorm)
        and block.norm.elementwise_affine
        and isinstance(fc1, nn.Linear)
        and isinstance(fc2, nn.Linear)
    ):
        return False  # a norm or MLP we do not know the NCHW equivalent of
    norm = LayerNorm2d(block.norm.normalized_shape[0], eps=block.norm.eps)
    norm.weight, norm.bias = block.norm.weight, block.norm.bias
    grn = getattr(mlp, "grn", None)
    if isinstance(grn, GlobalResponseNorm):
        nchw_grn = GlobalResponseNorm(grn.weight.shape[0], eps=grn.eps, channels_last=False)
        nchw_grn.weight, nchw_grn.bias = grn.weight, grn.bias
        mlp.grn = nchw_grn
    elif grn is not None:
        return False
    block.norm = norm
    mlp.fc1, mlp.fc2 = _conv1x1(fc1), _conv1x1(fc2)
    block.use_conv_mlp = True
    return True


def export_form(model: nn.Module) -> nn.Module:
    """The model to hand to ``torch.onnx.export`` (see the module for the rewrites).

    Args:
        model: Any module, in eval mode.

    Returns:
        `model` itself when nothing applies, else a rewritten copy sharing its tensors.
    """
    convnext = sys.modules.get("timm.models.convnext")  # no timm import for timm-free models
    block_cls = getattr(convnext, "ConvNeXtBlock", None)
    blocks = [
        m
        for m in model.modules()
        if block_cls is not None and isinstance(m, block_cls) and not m.use_conv_mlp
    ]
    gelus = [m for m in model.modules() if _is_exact_gelu(m)]
    if not blocks and not gelus:
        return model
    shared = {id(t): t for t in (*model.parameters(), *model.buffers())}
    copied = copy.deepcopy(model, memo=shared)
    for module in copied.modules():
        if block_cls is not None and isinstance(module, block_cls) and not module.use_conv_mlp:
            _nchw_convnext_block(module)
    for parent in list(copied.modules()):
        for name, child in list(parent.named_children()):
            if _is_exact_gelu(child):
                setattr(parent, name, FusableGelu())
    return copied.eval()
