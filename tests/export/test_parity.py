"""Tests for FP32 parity on real images (`--parity-data`, and before INT8)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from fieldvision.cli.__main__ import main
from fieldvision.config import load_config
from fieldvision.errors import RunError
from fieldvision.export.onnx import export_model, export_spec
from fieldvision.export.parity import export_run_with_parity, feed_parity
from fieldvision.models.registry import create_model


@pytest.fixture(scope="module")
def reid_run(tmp_path_factory) -> tuple[Path, Path]:
    from fieldvision.data.synthetic.coats import generate_coat_dataset
    from fieldvision.pipelines.reid import ReIDPipelineConfig, fit

    root = tmp_path_factory.mktemp("parity")
    generate_coat_dataset(root / "data", n_identities=4, per_id=4, seed=2, size=(32, 32))
    cfg = load_config(
        ReIDPipelineConfig,
        overrides=["data.image_size=[32,32]", "model.backbone=fv_tiny_cnn",
                   "model.embedding_dim=8", "train.epochs=1", "train.p=2", "train.k=2"],
    )  # fmt: skip
    fit(root / "data", root / "run", cfg, progress=False)
    return root / "run", root / "data"


def test_real_image_parity_is_recorded_at_two_batch_sizes(reid_run, tmp_path):
    run, data = reid_run
    manifest = export_run_with_parity(run, tmp_path / "out", data / "train", n=5)
    entry = manifest["models"]["train"]
    real = entry["parity_real"]
    assert real["passed"] and real["batches"] == [1, 5] and real["max_abs"] < 1e-4
    assert real["images"]["used"] == 5
    # --parity-data wins over the run's own data.
    assert entry["parity_inputs"] == "real" and entry["parity_source"] == str(data / "train")
    on_disk = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert on_disk["models"]["train"]["parity_real"]["batches"] == [1, 5]


def test_by_default_parity_is_checked_on_the_runs_training_data(reid_run, tmp_path):
    run, data = reid_run
    recorded = json.loads((run / "run.json").read_text())["data"]["path"]
    assert recorded == str(data.resolve())
    manifest = export_run_with_parity(run, tmp_path / "out", n=4)
    entry = manifest["models"]["train"]
    assert entry["parity_inputs"] == "real" and "parity_note" not in entry
    assert entry["parity_source"] == str(data.resolve() / "train.csv")  # the Kaggle train side
    assert entry["parity_real"]["batches"] == [1, 4] and entry["parity_real"]["passed"]
    assert entry["parity_real"]["images"]["used"] == 4


def _gone(run: Path, tmp: Path) -> None:
    _set_data(run, {"path": str(tmp / "moved_away")})


def _emptied(run: Path, tmp: Path) -> None:
    (tmp / "emptied").mkdir()
    (tmp / "emptied" / "notes.txt").write_text("no images here")
    _set_data(run, {"path": str(tmp / "emptied")})


def _old_format(run: Path, tmp: Path) -> None:
    _set_data(run, None)


def _set_data(run: Path, data: dict | None) -> None:
    info = json.loads((run / "run.json").read_text())
    info.pop("data")
    if data is not None:
        info["data"] = data
    (run / "run.json").write_text(json.dumps(info))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_gone, r"the run's training data .*moved_away no longer exists"),
        (_emptied, r"no images could be read from the run's training data .*emptied \(.*"
                   r"no usable images"),
        (_old_format, r"does not record its training data"),
    ],
)  # fmt: skip
def test_without_usable_run_data_parity_falls_back_to_random_inputs(
    reid_run, tmp_path, damage, reason
):
    run = shutil.copytree(reid_run[0], tmp_path / "run")
    damage(run, tmp_path)
    manifest = export_run_with_parity(run, tmp_path / "out")
    entry = manifest["models"]["train"]
    assert entry["parity_inputs"] == "random" and entry["parity_source"] is None
    assert "parity_real" not in entry and entry["parity"]["passed"]
    assert re.search(reason, entry["parity_note"]), entry["parity_note"]
    on_disk = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert on_disk["models"]["train"]["parity_note"] == entry["parity_note"]


def test_a_graph_that_drifts_on_real_inputs_fails_loudly(tmp_path):
    import onnxruntime as ort

    model = create_model("reid_embedder", {"backbone": "fv_tiny_cnn", "embedding_dim": 8}).eval()
    path = tmp_path / "m.onnx"
    export_model(model, path, image_size=(32, 32), batches=(1, 2))
    spec = export_spec(model, (32, 32))
    session = ort.InferenceSession(str(path))
    feed = {"image": np.random.default_rng(0).random((3, 3, 32, 32), dtype=np.float32)}
    ok = feed_parity(model, spec, session, [feed], rtol=1e-3, atol=1e-5, name="m")
    assert ok["passed"] and ok["batches"] == [3]

    class Drifted:  # an ONNX session whose outputs are off by 1e-2
        def run(self, names, feeds):
            return [o + 1e-2 for o in session.run(names, feeds)]

    with pytest.raises(RunError, match="parity on real images failed for m output"):
        feed_parity(model, spec, Drifted(), [feed], rtol=1e-3, atol=1e-5, name="m")


def test_cli_parity_data_and_bad_folders(reid_run, tmp_path, capsys):
    run, data = reid_run
    out = tmp_path / "out"
    assert main(["export", "--run", str(run), "--out", str(out), "--parity-data",
                 str(data / "train")]) == 0  # fmt: skip
    assert "(real " in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    bad_out = tmp_path / "never"
    assert main(["export", "--run", str(run), "--out", str(bad_out), "--parity-data",
                 str(empty)]) == 2  # fmt: skip
    assert "no usable images" in capsys.readouterr().err and not bad_out.exists()


def test_int8_export_checks_fp32_parity_on_the_calibration_images(reid_run, tmp_path):
    from fieldvision.export.quantize import export_run_int8

    run, data = reid_run
    manifest = export_run_int8(run, tmp_path / "out", data / "train", n=4)
    entry = manifest["models"]["train"]
    assert entry["parity_real"]["batches"] == [1, 4] and entry["parity_real"]["passed"]
    assert entry["parity_inputs"] == "real" and entry["parity_source"] == str(data / "train")
    assert entry["int8"]["sha256"]
