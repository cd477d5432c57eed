"""`fieldvision export`: a run's models to ONNX from the command line; bad input exits 2."""

from __future__ import annotations

import json
from pathlib import Path

from fieldvision.cli.__main__ import main


def test_export_a_finished_run(tmp_path: Path, capsys):
    from fieldvision.data.synthetic.coats import generate_coat_dataset

    data = tmp_path / "data"
    generate_coat_dataset(data, n_identities=4, per_id=4, seed=2, size=(32, 32))
    run = tmp_path / "run"
    sets = ["data.image_size=[32,32]", "model.backbone=fv_tiny_cnn", "model.embedding_dim=8",
            "train.epochs=1", "train.p=2", "train.k=2"]  # fmt: skip
    args = ["reid", "train", "--data", str(data), "--out", str(run), "--no-progress"]
    assert main([*args, *[x for s in sets for x in ("--set", s)]]) == 0
    out = tmp_path / "onnx"
    capsys.readouterr()
    assert main(["export", "--run", str(run), "--out", str(out)]) == 0
    assert "exported 1 model(s)" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["models"]["train"]["parity"]["passed"] is True
    assert main(["export", "--run", str(tmp_path / "nope"), "--out", str(tmp_path / "o2")]) == 2
    assert "not a run directory" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()


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
