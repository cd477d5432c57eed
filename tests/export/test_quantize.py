"""INT8 quantization: every model kind quantizes and stays close to FP32, static falls back
to dynamic, run exports record checksums and task metrics computed as the pipelines compute
them, and bad input is refused before anything is written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

import fieldvision.export.quantize as quantize_module
import fieldvision.models.biomass
import fieldvision.models.mil
import fieldvision.models.reid  # noqa: F401  (registers the models)
from fieldvision.config import load_config
from fieldvision.errors import DataError, RunError
from fieldvision.export import export_model, export_spec, verify_export
from fieldvision.export.accuracy import agreement
from fieldvision.export.calibration import FeedReader
from fieldvision.export.quantize import export_run_int8, quantize_model
from fieldvision.models.registry import create_model

# Tolerance of a quantized tiny model against FP32, per output: cosine similarity of the
# outputs at least COSINE, and max |int8 - fp32| <= ATOL + RTOL * max |fp32| (the output's
# magnitude is the scale: random-init heads give outputs near 0 that vary little).
COSINE, RTOL, ATOL = 0.995, 0.1, 2e-3

MODELS = {
    "biomass_phase1": ({"input_size": [32, 64]}, {"n_species": 3, "n_states": 2}, None),
    "biomass_phase2": (
        {"global_size": [32, 64]},
        {"meta_dim": 4, "target_scale": [2, 3, 4, 5, 6]},
        (64, 128),
    ),
    "reid_embedder": ({"backbone": "fv_tiny_cnn", "embedding_dim": 8}, {}, (32, 32)),
    "mil_expert": (
        {"tile_size": 16, "pooling": "attention", "attention_dim": 8},
        {"num_classes": 3, "negative_class": 0},
        None,
    ),
    "mil_scouter": ({"input_size": [32, 32]}, {"grid": [4, 4]}, None),
}


def _smooth_feeds(spec, n: int, batch: int, seed: int) -> list[dict[str, np.ndarray]]:
    """Image-like inputs (smooth random fields in [0, 1], not white noise)."""
    gen = torch.Generator().manual_seed(seed)
    feeds = []
    for _ in range(n):
        tensors = []
        for (name, shape), x in zip(spec.inputs, spec.example(batch), strict=True):
            if len(shape) == 4:
                low = torch.rand(x.shape[0], 3, 4, 4, generator=gen)
                x = torch.nn.functional.interpolate(low, size=x.shape[-2:], mode="bilinear")
            tensors.append((name, x.numpy()))
        feeds.append(dict(tensors))
    return feeds


def _close(name: str, fp32: np.ndarray, int8: np.ndarray) -> None:
    a = agreement(name, fp32, int8)
    bound = ATOL + RTOL * float(np.abs(fp32).max())
    assert a["cosine"] >= COSINE, (name, a)
    assert a["max_abs"] <= bound, (name, a, bound)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_kind_quantizes_runs_in_ort_and_stays_close(name, tmp_path):
    cfg, dims, size = MODELS[name]
    torch.manual_seed(0)
    model = create_model(name, cfg, **dims).eval()
    export_model(model, tmp_path / "m.onnx", image_size=size, batches=(1, 2))
    spec = export_spec(model, size)
    record = quantize_model(
        tmp_path / "m.onnx", tmp_path / "m.int8.onnx", FeedReader(_smooth_feeds(spec, 4, 4, seed=1))
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.int8.onnx", "m.onnx"]
    assert record["method"] == "static" and record["fallback_reason"] is None
    assert record["format"] == "QDQ" and record["calibration_feeds"] == 4
    assert record["bytes"] == (tmp_path / "m.int8.onnx").stat().st_size
    fp32 = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    int8 = ort.InferenceSession(str(tmp_path / "m.int8.onnx"), providers=["CPUExecutionProvider"])
    ops = {node.op_type for node in __import__("onnx").load(tmp_path / "m.int8.onnx").graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    (feed,) = _smooth_feeds(spec, 1, 5, seed=7)  # other images, another batch size
    for out, a, b in zip(
        spec.outputs, fp32.run(spec.outputs, feed), int8.run(spec.outputs, feed), strict=True
    ):
        assert a.shape == b.shape
        _close(out, a, b)


@pytest.fixture(scope="module")
def tiny_reid_onnx(tmp_path_factory) -> tuple[Path, list[dict[str, np.ndarray]]]:
    model = create_model("reid_embedder", {"backbone": "fv_tiny_cnn", "embedding_dim": 8})
    path = tmp_path_factory.mktemp("tiny") / "m.onnx"
    export_model(model.eval(), path, image_size=(32, 32), batches=(1, 2))
    return path, _smooth_feeds(export_spec(model, (32, 32)), 3, 2, seed=3)


def test_static_failure_falls_back_to_dynamic_and_says_why(tiny_reid_onnx, tmp_path, monkeypatch):
    fp32, feeds = tiny_reid_onnx

    def broken(*args, **kwargs):
        raise RuntimeError("calibration exploded\nsecond line")

    monkeypatch.setattr(quantize_module, "_quantize_static", broken)
    record = quantize_model(fp32, tmp_path / "m.int8.onnx", FeedReader(feeds))
    assert record["method"] == "dynamic"
    assert record["fallback_reason"] == (
        "static quantization failed (RuntimeError: calibration exploded)"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["m.int8.onnx"]  # no temp files left
    ops = {node.op_type for node in __import__("onnx").load(tmp_path / "m.int8.onnx").graph.node}
    assert "DynamicQuantizeLinear" in ops
    session = ort.InferenceSession(str(tmp_path / "m.int8.onnx"))
    want = ort.InferenceSession(str(fp32)).run(None, feeds[0])[0]
    _close("embedding", want, session.run(None, feeds[0])[0])
    assert quantize_model(fp32, tmp_path / "d.onnx", None, method="dynamic")["method"] == "dynamic"
    with pytest.raises(ValueError, match="static or dynamic"):
        quantize_model(fp32, tmp_path / "x.onnx", None, method="fp16")


def test_when_dynamic_fails_too_nothing_is_left(tiny_reid_onnx, tmp_path, monkeypatch):
    fp32, feeds = tiny_reid_onnx

    def broken(*args, **kwargs):
        raise RuntimeError("no kernel")

    monkeypatch.setattr(quantize_module, "_quantize_static", broken)
    monkeypatch.setattr(quantize_module, "_quantize_dynamic", broken)
    with pytest.raises(RunError, match=r"cannot quantize m.onnx to INT8: static .* dynamic"):
        quantize_model(fp32, tmp_path / "m.int8.onnx", FeedReader(feeds))
    assert not any(tmp_path.iterdir())


# ------------------------------------------------------------------------- run exports


@pytest.fixture(scope="module")
def reid(tmp_path_factory) -> tuple[Path, Path]:
    from fieldvision.data.synthetic.coats import generate_coat_dataset
    from fieldvision.pipelines.reid import ReIDPipelineConfig, fit

    data = tmp_path_factory.mktemp("coats") / "data"
    generate_coat_dataset(data, n_identities=4, per_id=4, seed=1, size=(32, 32))
    cfg = load_config(
        ReIDPipelineConfig,
        overrides=[
            "data.image_size=[32,32]",
            "model.backbone=fv_tiny_cnn",
            "model.embedding_dim=8",
            "train.epochs=1",
            "train.p=2",
            "train.k=2",
            "train.progress=false",
        ],
    )
    run = tmp_path_factory.mktemp("run") / "run"
    fit(data, run, cfg)
    return run, data


def test_a_run_export_records_both_checksums_and_the_metric(reid, tmp_path):
    run, data = reid
    out = tmp_path / "export"
    manifest = export_run_int8(run, out, data, n=8)
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json",
        "train.int8.onnx",
        "train.onnx",
    ]
    q = manifest["models"]["train"]["int8"]
    assert q["method"] == "static" and q["file"] == "train.int8.onnx"
    assert q["sha256"] != manifest["models"]["train"]["sha256"]
    acc = q["accuracy"]
    assert acc["metric"] == "mAP" and 0 < acc["metric_fp32"] <= 1 and 0 < acc["metric_int8"] <= 1
    assert acc["relative_change"] == pytest.approx(
        (acc["metric_int8"] - acc["metric_fp32"]) / acc["metric_fp32"]
    )
    assert acc["agreement"]["embedding"]["cosine"] > 0.999
    info = manifest["int8"]
    assert info["calibration"]["used"] == 8 and info["calibration"]["labelled"]
    assert info["evaluation"]["same_as_calibration"] is True
    assert info["task"]["train"]["metric_fp32"] == acc["metric_fp32"]
    assert json.loads((out / "manifest.json").read_text()) == json.loads(json.dumps(manifest))
    verify_export(out)
    (out / "train.int8.onnx").write_bytes((out / "train.int8.onnx").read_bytes() + b"\0")
    with pytest.raises(RunError, match=r"train.int8.onnx: checksum differs"):
        verify_export(out)
    (out / "train.int8.onnx").unlink()
    with pytest.raises(RunError, match="file train.int8.onnx is missing"):
        verify_export(out)


def test_bad_calibration_or_validation_data_leaves_nothing(reid, tmp_path):
    run, data = reid
    empty = tmp_path / "calib"
    empty.mkdir()
    (empty / "readme.md").write_text("photos go here")
    with pytest.raises(DataError, match=r"calib: no usable images \(found 1 file"):
        export_run_int8(run, tmp_path / "out", empty)
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in sorted((data / "train").iterdir())[:3]:
        shutil.copy(p, flat / p.name)
    with pytest.raises(DataError, match="--validation needs labelled images"):
        export_run_int8(run, tmp_path / "out", data, validation=flat)
    with pytest.raises(RunError, match="not a run directory"):
        export_run_int8(tmp_path, tmp_path / "out", data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib", "flat"]  # no out, no staging


def test_unlabelled_calibration_gives_output_agreement_only(reid, tmp_path):
    run, data = reid
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in sorted((data / "train").iterdir())[:4]:
        shutil.copy(p, flat / p.name)
    manifest = export_run_int8(run, tmp_path / "out", flat)
    acc = manifest["models"]["train"]["int8"]["accuracy"]
    assert acc["metric"] == "mAP" and acc["metric_fp32"] is None and acc["note"] == "no identities"
    assert acc["agreement"]["embedding"]["cosine"] > 0.999 and acc["n_images"] == 4


# Tiny biomass recipe: 64x128 cleaned photos, 2 folds, 1 epoch per phase, FiLM on.
BIOMASS = [
    "train.folds=2",
    "phase1.epochs=1",
    "phase2.epochs=1",
    "data.clean.size=[64,128]",
    "phase1.input_size=[32,64]",
    "phase2.global_size=[32,64]",
    "train.progress=false",
    "data.batch_size=8",
    "train.device=cpu",
]


@pytest.fixture(scope="module")
def biomass(tmp_path_factory) -> tuple[Path, Path, Path, dict]:
    from fieldvision.data.synthetic.pasture import generate_pasture_dataset
    from fieldvision.pipelines.biomass import BiomassConfig, train

    root = tmp_path_factory.mktemp("biomass")
    data = root / "data"
    generate_pasture_dataset(data, n_train=12, n_test=4, size=(64, 128), seed=2, progress=False)
    cfg = load_config(BiomassConfig, overrides=[*BIOMASS, f"data.cache_dir={root / 'cache'}"])
    train(data, root / "run", cfg)
    manifest = export_run_int8(
        root / "run", root / "onnx", data, n=8, validation=data / "test_truth.csv"
    )
    return root / "run", data, root / "onnx", manifest


def test_biomass_phase2_is_fed_and_scored_as_predict_does(biomass):
    from fieldvision.export.calibration import (
        biomass_meta,
        load_image_set,
        model_feeds,
        run_views,
        tta_views,
    )
    from fieldvision.pipelines.biomass.inputs import load_test_data
    from fieldvision.pipelines.biomass.predict import load_run, predict_targets

    run, data, out, manifest = biomass
    run_dir, cfg, _ = load_run(run)
    models = manifest["models"]
    assert sorted(models) == ["phase1_fold0", "phase1_fold1", "phase2_fold0", "phase2_fold1"]
    # The FP32 ONNX chain on the test photos (Phase-1 meta, TTA, fold mean, clip) is predict.
    images = load_image_set(data / "test.csv", "biomass", cfg)
    session = {n: ort.InferenceSession(str(out / e["file"])) for n, e in models.items()}
    meta = biomass_meta([session["phase1_fold0"], session["phase1_fold1"]], images, cfg.train.tta)
    folds = []
    for name in ("phase2_fold0", "phase2_fold1"):
        outs = run_views(
            session[name], model_feeds(models[name], images, meta), tta_views(cfg.train.tta)
        )
        folds.append(np.concatenate([o["targets"] for o in outs]))
    ours = np.clip(np.mean(folds, axis=0), 0.0, None)
    want = predict_targets(run_dir, cfg, load_test_data(data, cfg))
    np.testing.assert_allclose(ours, want, rtol=1e-3, atol=1e-3)
    # Both fold figures and the ensemble: weighted R² on the labelled test photos.
    task = manifest["int8"]["task"]["phase2"]
    assert task["metric"] == "weighted_r2" and task["models"] == 2
    assert np.isfinite(task["metric_fp32"]) and np.isfinite(task["metric_int8"])
    assert abs(task["metric_int8"] - task["metric_fp32"]) < 0.05
    for name in ("phase2_fold0", "phase2_fold1"):
        acc = models[name]["int8"]["accuracy"]
        assert acc["metric"] == "weighted_r2" and acc["n_images"] == 4
        assert acc["agreement"]["targets"]["cosine"] > 0.999
    assert models["phase1_fold0"]["int8"]["accuracy"]["metric"] == "agreement"
    assert models["phase1_fold0"]["int8"]["accuracy"]["agreement"]["species"]["top1"] >= 0.75
    assert manifest["int8"]["evaluation"]["same_as_calibration"] is False
    assert manifest["int8"]["phase2_meta"] == "each precision's own Phase-1 ensemble"
    verify_export(out)


def test_mil_macro_f1_pools_onnx_tiles_with_the_experts_own_pooling(tmp_path):
    from fieldvision.data.mil import BagStore
    from fieldvision.data.synthetic.leaves import generate_leaf_dataset
    from fieldvision.export.accuracy import _Task
    from fieldvision.export.calibration import load_image_set, model_feeds, run_views, tta_views
    from fieldvision.pipelines.mil import MILConfig, train
    from fieldvision.pipelines.mil.engine import Predictor
    from fieldvision.pipelines.mil.inputs import bag_spec, read_samples
    from fieldvision.pipelines.mil.predict import load_run

    data = tmp_path / "data"
    generate_leaf_dataset(data, n=12, size=64, classes=2, seed=0, groups=6, progress=False)
    cfg = load_config(
        MILConfig,
        overrides=[
            "data.grid=[2,2]",
            "data.min_tile_px=8",
            "expert.tile_size=16",
            "expert.epochs=1",
            "expert.sparsity_warmup_epochs=1",
            "scouter.input_size=[32,32]",
            "scouter.epochs=1",
            "train.progress=false",
            "train.device=cpu",
        ],
    )
    train(data, tmp_path / "run", cfg)
    manifest = export_run_int8(tmp_path / "run", tmp_path / "onnx", data, n=6)
    assert sorted(manifest["models"]) == ["expert_train", "scouter_train"]
    task = manifest["int8"]["task"]["expert"]
    assert task["metric"] == "macro_f1" and task["metric_int8"] is not None
    scout = manifest["models"]["scouter_train"]["int8"]["accuracy"]
    assert scout["metric"] == "agreement" and "top1" in scout["agreement"]["importance"]
    # The FP32 bag probabilities are the Predictor's full-tiling ones.
    loaded = load_run(tmp_path / "run")
    images = load_image_set(data, "mil", loaded.cfg, n=6)
    entry = manifest["models"]["expert_train"]
    session = ort.InferenceSession(str(tmp_path / "onnx" / entry["file"]))
    outs = run_views(session, model_feeds(entry, images), tta_views(False))
    ours = _Task(loaded.run, images, loaded.classes).prediction(entry, outs)
    samples = read_samples(data, loaded.cfg)
    picks = [samples.names.index(n) for n in images.names]
    store = BagStore(samples.subset(picks), bag_spec(loaded.cfg))
    results = Predictor(loaded.experts, [], loaded.negative, "cpu").run(store, "full")
    np.testing.assert_allclose(ours, np.stack([r.prob for r in results]), atol=1e-4)
