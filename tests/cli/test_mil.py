"""CLI behaviour of `fieldvision mil`: a tiny end-to-end run and table-driven bad input."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from fieldvision.cli.__main__ import main

from .conftest import bad_export

TINY = [
    "--set", "data.grid=[4,4]", "--set", "data.min_tile_px=8", "--set", "expert.tile_size=16",
    "--set", "expert.epochs=2", "--set", "scouter.input_size=[32,32]",
    "--set", "scouter.epochs=1", "--set", "data.batch_size=8", "--no-progress",
]  # fmt: skip


def _spots(root: Path, n: int = 16) -> Path:
    import numpy as np

    from fieldvision.data.images import write_image

    rng = np.random.default_rng(3)
    for i in range(n):
        img = np.zeros((64, 64, 3), np.uint8)
        img[..., 1] = rng.integers(90, 160, (64, 64))
        label = "spot" if i % 2 else "healthy"
        if label == "spot":
            y, x = rng.integers(0, 54, 2)
            img[y : y + 9, x : x + 9] = (220, 30, 30)
        write_image(root / label / f"{i:03d}.png", img)
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return _spots(tmp_path_factory.mktemp("spots") / "data")


@pytest.fixture(scope="module")
def run(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    assert main(["mil", "train", "--data", str(data), "--out", str(out), *TINY]) == 0
    return out


@pytest.mark.e2e
def test_train_predict_evaluate(data, run, tmp_path, capsys):
    preds = tmp_path / "preds.csv"
    args = ["mil", "predict", "--run", str(run), "--images", str(data), "--out", str(preds)]
    assert main([*args, "--budget", "0.25", "--heatmaps", str(tmp_path / "hm")]) == 0
    table = pd.read_csv(preds)
    assert len(table) == 16 and (table["tiles"] <= 4).all()
    assert (tmp_path / "tiles.csv").is_file() and len(list((tmp_path / "hm").glob("*.png"))) == 16
    capsys.readouterr()
    assert main(["mil", "evaluate", "--run", str(run), "--data", str(data), "--budget", "0.3"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("full_macro_f1=") and "glance_tiles=" in line
    assert (run / "report.md").is_file()


def _case_single_class(tmp: Path, data: Path, run: Path) -> tuple[list[str], str]:
    bad = tmp / "one"
    (bad / "healthy").mkdir(parents=True)
    for p in (data / "healthy").glob("*.png"):
        (bad / "healthy" / p.name).write_bytes(p.read_bytes())
    return ["mil", "train", "--data", str(bad), "--out", str(tmp / "r"), *TINY], "only one class"


def _case_empty_class_folder(tmp: Path, data: Path, run: Path) -> tuple[list[str], str]:
    bad = tmp / "empty"
    import shutil

    shutil.copytree(data, bad)
    (bad / "rust").mkdir()
    return ["mil", "train", "--data", str(bad), "--out", str(tmp / "r"), *TINY], "no images: rust"


def _case_grid_vs_input_size(tmp: Path, data: Path, run: Path) -> tuple[list[str], str]:
    args = ["mil", "train", "--data", str(data), "--out", str(tmp / "r"), *TINY]
    return [*args, "--set", "data.input_size=[30,30]"], "does not divide"


def _case_unknown_labels(tmp: Path, data: Path, run: Path) -> tuple[list[str], str]:
    bad = tmp / "labels"
    bad.mkdir()
    for p in (data / "spot").glob("*.png"):
        (bad / p.name).write_bytes(p.read_bytes())
    (bad / "labels.csv").write_text(
        "image,label\n" + "".join(f"{p.name},rust\n" for p in sorted(bad.glob("*.png")))
    )
    return ["mil", "evaluate", "--run", str(run), "--data", str(bad)], "not classes of the run"


def _case_bad_mode(tmp: Path, data: Path, run: Path) -> tuple[list[str], str]:
    return ["mil", "predict", "--run", str(run), "--images", str(data), "--out",
            str(tmp / "p.csv"), "--mode", "zoom"], "glance or full"  # fmt: skip


def _case_bad_budget(tmp: Path, data: Path, run: Path) -> tuple[list[str], str]:
    return ["mil", "predict", "--run", str(run), "--images", str(data), "--out",
            str(tmp / "p.csv"), "--budget", "1.5"], "glance.budget"  # fmt: skip


CASES = [_case_single_class, _case_empty_class_folder, _case_grid_vs_input_size,
         _case_unknown_labels, _case_bad_mode, _case_bad_budget]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.__name__.removeprefix("_case_") for c in CASES])
def test_bad_input_exits_2_and_writes_nothing(case, data, run, tmp_path, capsys):
    args, fragment = case(tmp_path, data, run)
    before = sorted(tmp_path.rglob("*"))
    run_files = {p: p.stat().st_mtime_ns for p in run.rglob("*")}
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and fragment in err, err
    assert sorted(tmp_path.rglob("*")) == before
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*")} == run_files


# --------------------------------------------------------------------------- --runtime onnx


@pytest.fixture(scope="module")
def exported(run: Path, tmp_path_factory) -> Path:
    """A copy of the run with its FP32 ONNX export where --runtime onnx looks: RUN/export."""
    import shutil

    out = tmp_path_factory.mktemp("exported") / "run"
    shutil.copytree(run, out)
    assert main(["export", "--run", str(out), "--out", str(out / "export")]) == 0
    return out


@pytest.mark.parametrize("mode", ["glance", "full"])
def test_predict_runtime_onnx_writes_the_torch_tables(mode, data, exported, tmp_path, capsys):
    import numpy as np

    base = ["mil", "predict", "--run", str(exported), "--images", str(data), "--mode", mode,
            "--no-progress"]  # fmt: skip
    assert main([*base, "--out", str(tmp_path / "t" / "preds.csv")]) == 0
    capsys.readouterr()
    assert main([*base, "--out", str(tmp_path / "o" / "preds.csv"), "--runtime", "onnx"]) == 0
    assert f"(runtime onnx, export {exported / 'export'})" in capsys.readouterr().out
    for name in ("preds.csv", "tiles.csv"):
        want, got = pd.read_csv(tmp_path / "t" / name), pd.read_csv(tmp_path / "o" / name)
        assert list(got.columns) == list(want.columns) and len(got) == len(want)
        for col in want.columns:
            if col == "ms":
                continue
            if want[col].dtype.kind == "f":
                np.testing.assert_allclose(got[col], want[col], rtol=1e-3, atol=1e-5)
            else:
                assert got[col].tolist() == want[col].tolist(), col


@pytest.mark.parametrize("problem", ["missing", "edited", "another_run"])
def test_predict_runtime_onnx_refuses_a_bad_export(problem, data, exported, tmp_path, capsys):
    run, onnx, fragment = bad_export(
        problem, exported, tmp_path, graph="scouter_train.onnx",
        weights="expert/train/model.safetensors",
    )  # fmt: skip
    out = tmp_path / "out" / "preds.csv"
    capsys.readouterr()
    args = ["mil", "predict", "--run", str(run), "--images", str(data), "--out", str(out)]
    assert main([*args, "--runtime", "onnx", *onnx]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and fragment in err, err
    assert not (tmp_path / "out").exists()
