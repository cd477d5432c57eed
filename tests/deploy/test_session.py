"""Opening a run's export: every refusal happens before any input is read, with a message
naming the run and the export; settings and ``--set`` overrides without the config classes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fieldvision.config import load_config
from fieldvision.deploy.session import check_runtime, open_deployment
from fieldvision.errors import ConfigError, RunError


def _copy_run(run: Path, dest: Path, export: bool = True) -> Path:
    ignore = None if export else shutil.ignore_patterns("export")
    shutil.copytree(run, dest, ignore=ignore)
    return dest


def test_a_verified_export_gives_the_runs_settings(reid_case):
    run, _ = reid_case
    dep = open_deployment(run, "reid", "onnx")
    assert dep.folder == run / "export" and dep.precision == "fp32"
    assert dep.setting("data.image_size") == [32, 32] and dep.setting("inference.batch_size") == 4
    assert dep.providers[-1] == "CPUExecutionProvider"
    assert dep.entry("train")["source"] == "train/model.safetensors" and dep.has("train")
    assert not dep.has("expert/train")
    with pytest.raises(RunError, match="holds no model for expert/train"):
        dep.entry("expert/train")
    with pytest.raises(RunError, match="has no data.nothing"):
        dep.setting("data.nothing")
    dep8 = open_deployment(run, "reid", "onnx-int8", run / "export")
    assert dep8.precision == "int8" and dep8.session("train") is dep8.session("train")


def test_runtime_overrides_are_checked_as_the_config_checks_them(reid_case):
    run, _ = reid_case
    dep = open_deployment(run, "reid", "onnx", overrides=["inference.batch_size=2",
                                                          "inference.tta=false"])  # fmt: skip
    assert dep.setting("inference.batch_size") == 2 and dep.setting("inference.tta") is False
    with pytest.raises(ConfigError, match="can only be changed in its runtime fields"):
        open_deployment(run, "reid", "onnx", overrides=["model.embedding_dim=4"])
    with pytest.raises(ConfigError, match=r"inference.batch_size=0: must be >= 1"):
        open_deployment(run, "reid", "onnx", overrides=["inference.batch_size=0"])
    with pytest.raises(ConfigError, match="expected int"):
        open_deployment(run, "reid", "onnx", overrides=["inference.batch_size=many"])
    with pytest.raises(ConfigError, match="does not match"):
        open_deployment(run, "reid", "onnx", overrides=["train.device=gpu"])


def test_cuda_without_a_cuda_provider_is_refused(reid_case):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has a CUDA provider")
    with pytest.raises(ConfigError, match="no CUDA provider"):
        open_deployment(reid_case[0], "reid", "onnx", overrides=["train.device=cuda"])


def test_runtime_names_are_checked():
    check_runtime("torch")
    check_runtime("onnx-int8", "x")
    with pytest.raises(ConfigError, match="choose one of torch, onnx, onnx-int8"):
        check_runtime("tensorrt")
    with pytest.raises(ConfigError, match="--onnx is an option of --runtime onnx"):
        check_runtime("torch", "x")


def test_a_missing_export_says_how_to_make_it(reid_case, tmp_path):
    run = _copy_run(reid_case[0], tmp_path / "run", export=False)
    with pytest.raises(RunError) as err:
        open_deployment(run, "reid", "onnx")
    assert "(the default export folder): no manifest.json" in str(err.value)
    assert f"run `fieldvision export --run {run} --out {run / 'export'}` first" in str(err.value)
    with pytest.raises(RunError, match=r"given by --onnx: no manifest.json.*--int8 --calibration"):
        open_deployment(run, "reid", "onnx-int8", tmp_path / "elsewhere")


def test_unfinished_runs_and_other_pipelines_are_refused(reid_case, tmp_path):
    run = _copy_run(reid_case[0], tmp_path / "run")
    with pytest.raises(RunError, match="holds a 'reid' run, not a mil run"):
        open_deployment(run, "mil", "onnx")
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "status": "running"}))
    with pytest.raises(RunError, match="the run is unfinished"):
        open_deployment(run, "reid", "onnx")


def test_an_edited_onnx_file_is_refused(reid_case, tmp_path):
    run = _copy_run(reid_case[0], tmp_path / "run")
    onnx = run / "export" / "train.onnx"
    onnx.write_bytes(onnx.read_bytes() + b"\0")
    with pytest.raises(RunError, match="train.onnx: checksum differs from manifest.json"):
        open_deployment(run, "reid", "onnx")


def test_an_export_of_another_run_with_the_same_config_is_refused(reid_case, tmp_path):
    import torch

    from fieldvision.models.registry import load_model, save_model

    run, _ = reid_case
    other = _copy_run(run, tmp_path / "other", export=False)
    model = load_model(other / "train" / "model.safetensors")
    with torch.no_grad():
        next(model.parameters()).add_(0.01)  # retrained: same config, other weights
    save_model(model, other / "train" / "model.safetensors")
    with pytest.raises(RunError) as err:
        open_deployment(other, "reid", "onnx", run / "export")
    message = str(err.value)
    assert f"is the export of another run ({run.resolve()})" in message
    assert f"{other} has other weights for train/model.safetensors" in message


def test_an_export_of_a_differently_configured_run_is_refused(reid_case, tmp_path):
    from fieldvision.pipelines.reid import ReIDPipelineConfig, fit

    run, data = reid_case
    cfg = load_config(
        ReIDPipelineConfig,
        base=load_config(ReIDPipelineConfig, run / "config.yaml").model_dump(mode="json"),
        overrides=["seed=7"],
    )
    fit(data, tmp_path / "seven", cfg, progress=False)
    with pytest.raises(RunError, match=r"is the export of another run .* fingerprint"):
        open_deployment(tmp_path / "seven", "reid", "onnx", run / "export")


def test_an_edited_config_or_an_old_export_is_refused(reid_case, tmp_path):
    import yaml

    run = _copy_run(reid_case[0], tmp_path / "run")
    manifest = json.loads((run / "export" / "manifest.json").read_text())
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    (run / "config.yaml").write_text(yaml.safe_dump({**cfg, "data": {**cfg["data"],
                                                     "image_size": [64, 64]}}))  # fmt: skip
    with pytest.raises(RunError, match="config.yaml: differs from the config the run was"):
        open_deployment(run, "reid", "onnx")
    # Editing a runtime field is what --set does: allowed.
    (run / "config.yaml").write_text(yaml.safe_dump({**cfg, "inference": {
        **cfg["inference"], "batch_size": 3}}))  # fmt: skip
    assert open_deployment(run, "reid", "onnx").setting("inference.batch_size") == 3
    old = {k: v for k, v in manifest.items() if k != "inference"}
    (run / "export" / "manifest.json").write_text(json.dumps(old))
    with pytest.raises(RunError, match="older than the --runtime switch"):
        open_deployment(run, "reid", "onnx")


def test_onnx_int8_needs_the_int8_copies(reid_case, tmp_path):
    from fieldvision.export import export_run

    run = _copy_run(reid_case[0], tmp_path / "run", export=False)
    export_run(run, run / "export")
    assert open_deployment(run, "reid", "onnx").precision == "fp32"
    with pytest.raises(RunError, match=r"has no INT8 copy of train.*--int8 --calibration"):
        open_deployment(run, "reid", "onnx-int8")


def test_the_deploy_package_imports_no_torch():
    code = (
        "import sys\n"
        "import fieldvision.deploy, fieldvision.deploy.biomass, fieldvision.deploy.reid\n"
        "import fieldvision.deploy.mil, fieldvision.cli.__main__\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_export_records_what_the_deploy_path_reads(reid_case, mil_case):
    from fieldvision.config import config_to_dict, runtime_field_specs, runtime_keys
    from fieldvision.pipelines.mil import MILConfig
    from fieldvision.pipelines.reid import ReIDPipelineConfig

    for (run, _), cls in ((reid_case, ReIDPipelineConfig), (mil_case, MILConfig)):
        manifest = json.loads((run / "export" / "manifest.json").read_text())
        inference = manifest["inference"]
        assert inference["format"] == 1
        assert inference["config"] == config_to_dict(load_config(cls, run / "config.yaml"))
        assert inference["runtime_fields"] == json.loads(json.dumps(runtime_field_specs(cls)))
        assert sorted(inference["runtime_fields"]) == sorted(runtime_keys(cls))
        for entry in manifest["models"].values():
            assert len(entry["source_sha256"]) == 64
    experts = json.loads((mil_case[0] / "export" / "manifest.json").read_text())["models"]
    assert experts["expert_train"]["outputs"] == ["tile_logits", "tile_features", "tile_attention"]
