"""ONNX export: every registered model, dynamic batch, parity, manifest, checksums."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

import fieldvision.models.biomass
import fieldvision.models.mil
import fieldvision.models.reid  # noqa: F401  (registers the models)
from fieldvision.errors import RunError
from fieldvision.export import export_model, export_run, export_spec, verify_export
from fieldvision.models.registry import MODELS, create_model

# Small configs and data-derived dimensions per registered model.
MODELS_UNDER_TEST = {
    "biomass_phase1": ({"input_size": [32, 64]}, {"n_species": 3, "n_states": 2}),
    "biomass_phase2": ({"global_size": [32, 64]}, {"meta_dim": 4, "target_scale": [2, 3, 4, 5, 6]}),
    "reid_embedder": ({"backbone": "fv_tiny_cnn", "embedding_dim": 8}, {}),
    "mil_expert": ({"tile_size": 16, "pooling": "attention", "attention_dim": 8},
                   {"num_classes": 3, "negative_class": 0}),
    "mil_scouter": ({"input_size": [32, 32]}, {"grid": [4, 4]}),
}  # fmt: skip


def test_every_registered_model_has_an_export_test():
    assert set(MODELS.names()) == set(MODELS_UNDER_TEST)


@pytest.mark.parametrize("name", sorted(MODELS_UNDER_TEST))
def test_export_is_self_contained_dynamic_and_matches_torch(name, tmp_path):
    cfg, dims = MODELS_UNDER_TEST[name]
    torch.manual_seed(0)
    model = create_model(name, cfg, **dims).eval()
    size = (64, 128) if name == "biomass_phase2" else None  # tiles cut from a larger image
    entry = export_model(model, tmp_path / "m.onnx", image_size=size)
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no external-data file
    assert entry["parity"]["passed"] and entry["parity"]["max_abs"] < 1e-3
    assert entry["registry_name"] == name and entry["opset"] >= 18
    spec = export_spec(model, size)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    inputs = spec.example(5)  # a batch size the exporter never saw
    feeds = {n: x.numpy() for (n, _), x in zip(spec.inputs, inputs, strict=True)}
    got = session.run(spec.outputs, feeds)
    with torch.no_grad():
        want = spec.call(model, *inputs)
    for out_name, g in zip(spec.outputs, got, strict=True):
        np.testing.assert_allclose(g, want[out_name].numpy(), rtol=1e-3, atol=1e-5)
        assert g.shape[0] == 5


def test_an_op_the_exporter_cannot_convert_is_named_and_leaves_nothing(tmp_path, monkeypatch):
    import fieldvision.export.onnx as onnx_module

    model = create_model("reid_embedder", {"backbone": "fv_tiny_cnn", "embedding_dim": 8})
    real = onnx_module.export_spec

    def bad_spec(m, size=None):
        spec = real(m, size)
        spec.call = lambda mod, x: {"embedding": torch.linalg.eigvals(x[:, 0, :8, :8]).real}
        return spec

    monkeypatch.setattr(onnx_module, "export_spec", bad_spec)
    with pytest.raises(RunError, match="cannot export ReIDModel to ONNX"):
        export_model(model, tmp_path / "m.onnx")
    assert not any(tmp_path.iterdir())


@pytest.fixture(scope="module")
def reid_run(tmp_path_factory) -> Path:
    from fieldvision.config import load_config
    from fieldvision.data.synthetic.coats import generate_coat_dataset
    from fieldvision.pipelines.reid import ReIDPipelineConfig, fit

    data = tmp_path_factory.mktemp("coats") / "data"
    generate_coat_dataset(data, n_identities=4, per_id=4, seed=1, size=(32, 32))
    cfg = load_config(ReIDPipelineConfig, overrides=[
        "data.image_size=[32,32]", "model.backbone=fv_tiny_cnn", "model.embedding_dim=8",
        "train.epochs=1", "train.p=2", "train.k=2", "train.progress=false"])  # fmt: skip
    out = tmp_path_factory.mktemp("run") / "run"
    fit(data, out, cfg)
    return out


def test_export_run_writes_models_and_a_verifiable_manifest(reid_run, tmp_path):
    out = tmp_path / "export"
    manifest = export_run(reid_run, out)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "train.onnx"]
    entry = manifest["models"]["train"]
    assert entry["source"] == "train/model.safetensors"
    assert entry["inputs"] == [{"name": "image", "shape": ["batch", 3, 32, 32]}]
    assert "inside the model" in entry["normalisation"]
    # The plain exporter checks random inputs only, and says so.
    assert entry["parity_inputs"] == "random" and entry["parity_source"] is None
    assert manifest["run"]["kind"] == "reid"
    assert json.loads((out / "manifest.json").read_text()) == json.loads(json.dumps(manifest))
    verify_export(out)
    export_run(reid_run, out)  # a previous export is replaced
    (out / "train.onnx").write_bytes((out / "train.onnx").read_bytes() + b"\0")
    with pytest.raises(RunError, match="checksum differs"):
        verify_export(out)


def test_export_refusals_leave_nothing(reid_run, tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match="not an export folder"):
        export_run(reid_run, foreign)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    with pytest.raises(RunError, match="not a run directory"):
        export_run(tmp_path, tmp_path / "x")
    unfinished = tmp_path / "unfinished"
    import shutil

    shutil.copytree(reid_run, unfinished)
    info = json.loads((unfinished / "run.json").read_text())
    (unfinished / "run.json").write_text(json.dumps({**info, "status": "running"}))
    with pytest.raises(RunError, match="unfinished"):
        export_run(unfinished, tmp_path / "y")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_biomass_head_variants_export_with_parity(tmp_path):
    """Projection (a constant matmul) and bin heads (softmax expectation) export; only
    ``targets`` (the blended, balanced prediction) and ``tile_weights`` are graph outputs."""
    cfg = {"global_size": [32, 64], "head": "projection", "bins": 3, "bin_blend": 0.4}
    dims = {
        "meta_dim": 4,
        "target_scale": [2, 3, 4, 6, 9],
        "bin_edges": [[0.0, 1.0, 2.0, 4.0]] * 3,
        "bin_centres": [[0.5, 1.5, 3.0]] * 3,
    }
    torch.manual_seed(0)
    model = create_model("biomass_phase2", cfg, **dims).eval()
    entry = export_model(model, tmp_path / "m.onnx", image_size=(64, 128))
    assert entry["parity"]["passed"] and entry["outputs"] == ["targets", "tile_weights"]
    assert entry["dims"]["bin_centres"] == dims["bin_centres"]
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    inputs = export_spec(model, (64, 128)).example(4)
    (targets,) = session.run(["targets"], {"image": inputs[0].numpy(), "meta": inputs[1].numpy()})
    np.testing.assert_allclose(targets[:, 3], targets[:, 0] + targets[:, 2], rtol=1e-5)
    np.testing.assert_allclose(targets[:, 4], targets[:, :3].sum(1), rtol=1e-5)
