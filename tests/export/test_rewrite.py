"""Export-only rewrites: NCHW ConvNeXt blocks and fusable GELU, same outputs as the model."""

from __future__ import annotations

import onnx
import onnxruntime as ort
import pytest
import timm
import torch
from timm.models.convnext import ConvNeXtBlock
from torch import nn

import fieldvision.models.reid  # noqa: F401  (registers the model)
from fieldvision.export import export_model
from fieldvision.export.rewrite import FusableGelu, export_form
from fieldvision.models.registry import create_model


def _convnext(name: str) -> nn.Module:
    """A tiny random timm ConvNeXt in its default (NHWC, Linear MLP) block form, with
    layer scale at 1 and non-zero GRN parameters, so every block changes the output."""
    torch.manual_seed(0)
    kwargs = {"ls_init_value": 1.0} if name.startswith("convnext_") else {}
    model = timm.create_model(
        name, pretrained=False, num_classes=0, global_pool="", conv_mlp=False, **kwargs
    )
    with torch.no_grad():
        for module_name, p in model.named_parameters():
            if "grn" in module_name:
                p.normal_(0.0, 0.5)
    return model.eval()


@pytest.mark.parametrize("name", ["convnext_atto", "convnextv2_atto"])
def test_convnext_blocks_become_nchw_with_the_same_outputs(name):
    model = _convnext(name)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        want = model.forward_features(x)
        got = export_form(model).forward_features(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert want.abs().max() > 0.1  # a real signal, not a vanishing one


def test_the_rewrite_is_a_copy_sharing_weights():
    model = _convnext("convnext_atto")
    rewritten = export_form(model)
    blocks = [m for m in rewritten.modules() if isinstance(m, ConvNeXtBlock)]
    originals = [m for m in model.modules() if isinstance(m, ConvNeXtBlock)]
    assert blocks and all(b.use_conv_mlp for b in blocks)
    assert all(isinstance(b.mlp.fc1, nn.Conv2d) and b.mlp.fc1.kernel_size == (1, 1) for b in blocks)
    assert not any(
        isinstance(m, nn.GELU) or type(m).__name__ == "GELU" for m in rewritten.modules()
    )
    # the caller's model is untouched, and the copy costs no weight memory
    assert all(not b.use_conv_mlp and isinstance(b.mlp.fc1, nn.Linear) for b in originals)
    assert rewritten.stem[0].weight is model.stem[0].weight
    assert blocks[0].mlp.fc1.weight.data_ptr() == originals[0].mlp.fc1.weight.data_ptr()


def test_a_block_with_a_norm_we_do_not_know_is_left_alone():
    model = _convnext("convnext_atto")
    block = next(m for m in model.modules() if isinstance(m, ConvNeXtBlock))
    block.norm = nn.Identity()
    rewritten = export_form(model)
    first = next(m for m in rewritten.modules() if isinstance(m, ConvNeXtBlock))
    assert not first.use_conv_mlp and isinstance(first.mlp.fc1, nn.Linear)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(rewritten(x), model(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "act, swapped",
    [
        (nn.GELU(), True),
        (nn.GELU(approximate="tanh"), False),  # another function: left to FastGelu fusion
        (timm.layers.activations.GELU(), True),
        (nn.ReLU(), False),
    ],
)
def test_which_activations_are_swapped(act, swapped):
    model = nn.Sequential(nn.Linear(4, 4), act)
    rewritten = export_form(model)
    assert isinstance(rewritten[1], FusableGelu) is swapped
    assert (rewritten is model) is not swapped  # nothing to rewrite: the model itself
    x = torch.linspace(-6, 6, 97).reshape(-1, 1).repeat(1, 4)
    with torch.no_grad():
        torch.testing.assert_close(rewritten(x), model(x), rtol=1e-6, atol=1e-6)


def test_exported_convnext_runs_nchw_convs_and_a_fused_gelu(tmp_path):
    torch.manual_seed(0)
    model = create_model("reid_embedder", {"backbone": "convnext_atto", "embedding_dim": 8})
    model.backbone.model = _convnext("convnext_atto")
    n_blocks = sum(isinstance(m, ConvNeXtBlock) for m in model.modules())
    entry = export_model(model.eval(), tmp_path / "m.onnx", image_size=(64, 64))
    assert entry["parity"]["passed"]
    ops = [n.op_type for n in onnx.load(str(tmp_path / "m.onnx")).graph.node]
    assert "MatMul" not in ops  # the block MLPs are 1x1 convs (the projection is a Gemm)
    assert ops.count("Conv") == 4 + 3 * n_blocks  # stem + 3 downsamples; dw + 2 per block
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(str(tmp_path / "m.onnx"), options, providers=["CPUExecutionProvider"])
    fused = [n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node]
    assert "Erf" not in fused and fused.count("Gelu") + fused.count("BiasGelu") == n_blocks
