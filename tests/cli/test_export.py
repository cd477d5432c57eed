"""`fieldvision export`: a run's models to ONNX from the command line; bad input exits 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fieldvision.cli.__main__ import main

#: The tiny re-ID recipe of these tests (one epoch of a 32 px CNN: seconds).
SETS = ["data.image_size=[32,32]", "model.backbone=fv_tiny_cnn", "model.embedding_dim=8",
        "train.epochs=1", "train.p=2", "train.k=2"]  # fmt: skip


def _train(data: Path, run: Path) -> int:
    args = ["reid", "train", "--data", str(data), "--out", str(run), "--no-progress"]
    return main([*args, *[x for s in SETS for x in ("--set", s)]])


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """``(run, data)``: a finished tiny re-ID run trained on a Kaggle-layout folder."""
    from fieldvision.data.synthetic.coats import generate_coat_dataset

    root = tmp_path_factory.mktemp("export_cli")
    generate_coat_dataset(root / "data", n_identities=4, per_id=4, seed=2, size=(32, 32))
    assert _train(root / "data", root / "run") == 0
    return root / "run", root / "data"


def test_export_a_finished_run(trained, tmp_path: Path, capsys):
    run, data = trained
    out = tmp_path / "onnx"
    capsys.readouterr()
    assert main(["export", "--run", str(run), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "exported 1 model(s)" in printed
    manifest = json.loads((out / "manifest.json").read_text())
    entry = manifest["models"]["train"]
    assert entry["parity"]["passed"] is True
    # Without --parity-data the run's own training data is used (its Kaggle train side).
    source = str(data.resolve() / "train.csv")
    assert entry["parity_inputs"] == "real" and entry["parity_source"] == source
    real = entry["parity_real"]
    assert real["passed"] and real["images"]["source"] == source and real["batches"][0] == 1
    used = real["images"]["used"]
    assert 1 < used <= 16 and real["batches"] == [1, min(used, 8)]
    assert f"parity on {used} images of {source} (the run's training data)" in printed
    assert main(["export", "--run", str(tmp_path / "nope"), "--out", str(tmp_path / "o2")]) == 2
    assert "not a run directory" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()


def test_a_run_trained_from_moved_data_resumes_and_export_falls_back_to_random(
    trained, tmp_path: Path, capsys
):
    run = shutil.copytree(trained[0], tmp_path / "run")
    copy = shutil.copytree(trained[1], tmp_path / "elsewhere" / "data")
    # The data path is outside the resume identity: the copy re-opens the run.
    assert _train(copy, run) == 0
    info = json.loads((run / "run.json").read_text())
    assert info["data"] == {"path": str(copy.resolve())} and info["status"] == "done"
    assert str(copy) not in json.dumps(info["inputs"])
    shutil.rmtree(copy)
    out = tmp_path / "onnx"
    capsys.readouterr()
    assert main(["export", "--run", str(run), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    warning = [ln for ln in err.splitlines() if ln.startswith("warning: parity")]
    assert len(warning) == 1, err
    assert f"the run's training data {copy.resolve()} no longer exists" in warning[0]
    assert "--parity-data DIR_OR_CSV" in warning[0]
    entry = json.loads((out / "manifest.json").read_text())["models"]["train"]
    assert entry["parity_inputs"] == "random" and entry["parity_source"] is None
    assert "parity_real" not in entry and entry["parity"]["passed"]
    assert "no longer exists" in entry["parity_note"]


def test_export_int8_prints_the_accuracy_and_refuses_bad_calibration(tmp_path: Path, capsys):
    from fieldvision.data.synthetic.coats import generate_coat_dataset

    data = tmp_path / "data"
    generate_coat_dataset(data, n_identities=4, per_id=4, seed=3, size=(32, 32))
    run = tmp_path / "run"
    sets = ["data.image_size=[32,32]", "model.backbone=fv_tiny_cnn", "model.embedding_dim=8",
            "train.epochs=1", "train.p=2", "train.k=2"]  # fmt: skip
    args = ["reid", "train", "--data", str(data), "--out", str(run), "--no-progress"]
    assert main([*args, *[x for s in sets for x in ("--set", s)]]) == 0
    capsys.readouterr()
    empty = tmp_path / "calib"
    empty.mkdir()
    out = tmp_path / "onnx"
    base = ["export", "--run", str(run), "--out", str(out)]
    assert main([*base, "--int8", "--calibration", str(empty)]) == 2
    assert "calib: no usable images (found nothing)" in capsys.readouterr().err
    assert main([*base, "--int8"]) == 2
    assert "--int8 needs --calibration" in capsys.readouterr().err
    assert main([*base, "--calibration", str(data)]) == 2
    assert "options of --int8" in capsys.readouterr().err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == [
        "calib", "data", "run"]  # fmt: skip
    assert main([*base, "--int8", "--calibration", str(data), "--n", "8"]) == 0
    printed = capsys.readouterr().out
    assert "INT8 accuracy on 8 image(s)" in printed and "(the calibration images)" in printed
    assert "train: static, cosine 0.99" in printed and "mAP FP32 " in printed
    assert "exported 1 model(s) to" in printed and "(FP32 and INT8)" in printed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["models"]["train"]["int8"]["accuracy"]["metric"] == "mAP"
    # FP32 parity on the calibration images, not on the run's training data.
    source = str(data / "train.csv")
    assert manifest["models"]["train"]["parity_source"] == source
    assert f"parity on 8 images of {source}\n" in printed
