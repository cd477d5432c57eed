"""CLI behaviour of `fieldvision biomass`: a tiny end-to-end run and table-driven bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fieldvision.cli.__main__ import main
from fieldvision.data.synthetic.pasture import generate_pasture_dataset

from .conftest import bad_export

# Tiny but complete recipe: 64x128 cleaned images, 32x32 tiles, 2 folds, 1 epoch.
TINY = [
    "--folds", "2", "--epochs", "1",
    "--set", "data.clean.size=[64,128]", "--set", "phase1.input_size=[32,64]",
    "--set", "phase2.global_size=[32,64]", "--no-progress",
    "--set", "data.batch_size=8",
]  # fmt: skip


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pasture") / "data"
    generate_pasture_dataset(out, n_train=16, n_test=3, size=(64, 128), seed=1, progress=False)
    return out


@pytest.fixture(scope="module")
def run_dir(dataset: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    assert main(["biomass", "train", "--data", str(dataset), "--out", str(out), *TINY]) == 0
    return out


@pytest.mark.e2e
def test_train_predict_evaluate_end_to_end(dataset, run_dir, tmp_path, capsys):
    for name in ("config.yaml", "folds.csv", "oof.csv", "metrics.json", "report.md", "scatter.png"):
        assert (run_dir / name).is_file(), name
    assert json.loads((run_dir / "run.json").read_text())["status"] == "done"
    for k in (0, 1):
        assert (run_dir / "phase1" / f"fold{k}" / "model.safetensors").is_file()
        assert (run_dir / "phase2" / f"fold{k}" / "model.safetensors").is_file()
    folds = pd.read_csv(run_dir / "folds.csv")
    assert folds.groupby("sampling_date")["fold"].nunique().max() == 1  # dates never straddle folds

    sub = tmp_path / "submission.csv"
    assert (
        main(
            ["biomass", "predict", "--run", str(run_dir), "--data", str(dataset), "--out", str(sub)]
        )
        == 0
    )
    submission = pd.read_csv(sub)
    test = pd.read_csv(dataset / "test.csv")
    assert list(submission.columns) == ["sample_id", "target"]
    assert submission["sample_id"].tolist() == test["sample_id"].tolist()
    assert (submission["target"] >= 0).all()

    capsys.readouterr()
    assert (
        main(
            ["biomass", "evaluate", "--pred", str(sub), "--truth", str(dataset / "test_truth.csv")]
        )
        == 0
    )
    assert "weighted_r2=" in capsys.readouterr().out
    # Re-running train on the finished run resumes (skips) instead of starting over.
    before = (run_dir / "phase2" / "fold0" / "model.safetensors").stat().st_mtime_ns
    assert main(["biomass", "train", "--data", str(dataset), "--out", str(run_dir), *TINY]) == 0
    assert (run_dir / "phase2" / "fold0" / "model.safetensors").stat().st_mtime_ns == before


def _edit_train_csv(data: Path, how: str) -> None:
    path = data / "train.csv"
    frame = pd.read_csv(path)
    if how == "drop_column":
        frame = frame.drop(columns=["State"])
    elif how == "misspell":
        frame = frame.rename(columns={"Height_Ave_cm": "Height_Avg_cm"})
    elif how == "unknown_target":
        frame.loc[3, "target_name"] = "Dry_Weeds_g"
    elif how == "duplicate":
        frame = pd.concat([frame, frame.iloc[[0]]])
    elif how == "nan":
        frame.loc[2, "target"] = float("nan")
    elif how == "negative":
        frame.loc[2, "target"] = -1.0
    elif how == "empty":
        frame = frame.iloc[:0]
    frame.to_csv(path, index=False)


def _break_image(data: Path, how: str) -> None:
    first = data / pd.read_csv(data / "train.csv")["image_path"].iloc[0]
    if how == "missing":
        first.unlink()
    elif how == "corrupt":
        first.write_bytes(b"this is not a jpeg")
    elif how == "truncated":
        first.write_bytes(first.read_bytes()[: first.stat().st_size // 2])
    elif how == "huge":  # a valid JPEG header claiming 30000 x 15000 pixels
        import io

        from PIL import Image

        buf = io.BytesIO()
        Image.new("RGB", (8, 4)).save(buf, "JPEG")
        raw = bytearray(buf.getvalue())
        sof = raw.index(b"\xff\xc0")
        raw[sof + 5 : sof + 9] = (15000).to_bytes(2, "big") + (30000).to_bytes(2, "big")
        first.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: _edit_train_csv(d, "drop_column"), "State"),
        (lambda d: _edit_train_csv(d, "misspell"), "Height_Ave_cm"),
        (lambda d: _edit_train_csv(d, "unknown_target"), "Dry_Weeds_g"),
        (lambda d: _edit_train_csv(d, "duplicate"), "duplicate"),
        (lambda d: _edit_train_csv(d, "nan"), "target"),
        (lambda d: _edit_train_csv(d, "negative"), "negative"),
        (lambda d: _edit_train_csv(d, "empty"), "no data rows"),
        (lambda d: (d / "train.csv").write_text(""), "empty"),
        (lambda d: _break_image(d, "missing"), "not found"),
        (lambda d: _break_image(d, "corrupt"), ".jpg"),
        (lambda d: _break_image(d, "truncated"), ".jpg"),
        (lambda d: _break_image(d, "huge"), "data.max_image_pixels"),
    ],
    ids=[
        "missing-column",
        "misspelt-column",
        "unknown-target",
        "duplicate-id",
        "nan-target",
        "negative-target",
        "header-only",
        "zero-byte",
        "image-missing",
        "image-corrupt",
        "image-truncated",
        "image-over-pixel-limit",
    ],
)
def test_bad_training_input_is_a_clear_error_with_no_outputs(
    dataset, tmp_path, capsys, edit, message
):
    data = tmp_path / "data"
    shutil.copytree(dataset, data)
    edit(data)
    out = tmp_path / "run"
    code = main(["biomass", "train", "--data", str(data), "--out", str(out), *TINY])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and message.lower() in err.lower()
    assert not out.exists()  # everything is validated before the run directory is made
    # The corrected input then trains into the same --out without complaint.
    assert main(["biomass", "train", "--data", str(dataset), "--out", str(out), *TINY]) == 0


def _unfinish(run: Path) -> None:
    text = (run / "run.json").read_text().replace('"done"', '"running"')
    (run / "run.json").write_text(text)


def _fail(run: Path) -> None:
    text = (run / "run.json").read_text().replace('"done"', '"failed"')
    (run / "run.json").write_text(text)


def _reconfigure(run: Path) -> None:
    text = (run / "config.yaml").read_text().replace("aggregation: attention", "aggregation: mean")
    (run / "config.yaml").write_text(text)


@pytest.mark.parametrize(
    ("edit_run", "edit_data", "message"),
    [
        (_unfinish, None, "unfinished"),
        (_fail, None, "failed"),
        (_reconfigure, None, "differs from the config"),
        (lambda r: (r / "run.json").unlink(), None, "not a run directory"),
        (None, lambda d: next((d / "test").glob("*.jpg")).unlink(), "test"),
    ],
    ids=["unfinished-run", "failed-run", "edited-config", "not-a-run", "test-image-missing"],
)
def test_bad_predict_input_writes_no_submission(
    dataset, run_dir, tmp_path, capsys, edit_run, edit_data, message
):
    run, data = tmp_path / "run", tmp_path / "data"
    shutil.copytree(run_dir, run)
    shutil.copytree(dataset, data)
    if edit_run:
        edit_run(run)
    if edit_data:
        edit_data(data)
    sub = tmp_path / "submission.csv"
    code = main(["biomass", "predict", "--run", str(run), "--data", str(data), "--out", str(sub)])
    err = capsys.readouterr().err
    assert code == 2 and message in err
    assert not sub.exists()


def test_a_different_config_cannot_resume_a_run(dataset, run_dir, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    code = main(
        [
            "biomass",
            "train",
            "--data",
            str(dataset),
            "--out",
            str(run),
            *TINY,
            "--set",
            "phase2.aggregation=mean",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "different config (phase2.aggregation)" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "phase1.enabled=false"], "phase1.enabled=false conflicts"),
        (["--set", "phase2.aggregation=max"], "phase2.aggregation"),
        (["--config", "no_such_recipe"], "config file not found"),
        (["--device", "tpu"], "train.device"),
    ],
    ids=["phase1-off-with-film", "bad-aggregation", "missing-config", "bad-device"],
)
def test_bad_config_is_refused_before_anything_is_written(dataset, tmp_path, capsys, args, message):
    out = tmp_path / "run"
    code = main(["biomass", "train", "--data", str(dataset), "--out", str(out), *TINY, *args])
    assert code == 2 and message in capsys.readouterr().err
    assert not out.exists()


def test_a_failed_run_is_replaced_by_the_corrected_rerun(dataset, run_dir, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    _fail(run)
    (run / "stale.txt").write_text("left by the failed attempt")
    args = ["biomass", "train", "--data", str(dataset), "--out", str(run), *TINY]
    assert main([*args, "--set", "phase2.aggregation=mean"]) == 0
    assert not (run / "stale.txt").exists()
    assert json.loads((run / "run.json").read_text())["status"] == "done"


def test_predict_accepts_runtime_overrides_only(dataset, run_dir, tmp_path, capsys):
    sub = tmp_path / "sub.csv"
    base = ["biomass", "predict", "--run", str(run_dir), "--data", str(dataset), "--out", str(sub)]
    assert main([*base, "--set", "data.num_workers=0", "--device", "cpu"]) == 0
    capsys.readouterr()
    assert main([*base[:-1], str(tmp_path / "x.csv"), "--set", "phase2.lr=1"]) == 2
    assert "runtime fields" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


def test_train_reports_honest_and_fold_best_scores(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())["fit"]
    assert metrics["selection"]["mode"] == "fixed_epochs"  # honest by default
    assert np.isfinite(metrics["oof_weighted_r2_fold_best"])
    assert len(metrics["fold_weighted_r2_fold_best"]) == 2
    assert {k: len(v) for k, v in metrics["epoch_val_r2"].items()} == {"fold0": 1, "fold1": 1}
    for k in (0, 1):
        record = json.loads((run_dir / "phase2" / f"fold{k}" / "selection.json").read_text())
        assert record["mode"] == "fixed_epochs" and record["epochs"] == [1]
        assert (run_dir / "phase2" / f"fold{k}" / "fold_best.safetensors").is_file()
    assert "fold's own best epoch" in (run_dir / "report.md").read_text()


@pytest.mark.e2e
def test_train_repeats_reports_mean_and_std(dataset, tmp_path, capsys):
    out = tmp_path / "rep"
    capsys.readouterr()
    args = ["biomass", "train", "--data", str(dataset), "--out", str(out), *TINY]
    assert main([*args, "--repeats", "2", "--set", "phase2.selection=last_k_average",
                 "--set", "phase2.selection_k=2", "--epochs", "2"]) == 0  # fmt: skip
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("oof_weighted_r2=") and "±" in line and "repeats=2" in line
    summary = json.loads((out / "repeats.json").read_text())
    assert summary["seeds"] == [0, 1] and summary["selection"] == "last_k_average"
    values = summary["oof_r2"]["values"]
    assert len(values) == 2
    assert summary["oof_r2"]["mean"] == pytest.approx(np.mean(values))
    assert summary["oof_r2"]["std"] == pytest.approx(np.std(values, ddof=1))
    for r in (0, 1):
        run = out / f"repeat{r}"
        assert json.loads((run / "run.json").read_text())["status"] == "done"
        cfg = (run / "config.yaml").read_text()
        assert f"seed: {r}" in cfg
        metrics = json.loads((run / "metrics.json").read_text())["fit"]
        assert metrics["oof_weighted_r2"] == pytest.approx(values[r])
        sel = json.loads((run / "phase2" / "fold0" / "selection.json").read_text())
        assert sel["epochs"] == [1, 2]
    # Different fold seeds, different model seeds: the repeats are not copies.
    a = pd.read_csv(out / "repeat0" / "oof.csv")["target"]
    b = pd.read_csv(out / "repeat1" / "oof.csv")["target"]
    assert not np.allclose(a, b)
    # The label-noise report across the repeats.
    noise = pd.read_csv(out / "label_noise.csv")
    assert len(noise) == 16 and {"score_r0", "score_r1", "flagged"} <= set(noise.columns)
    assert "## Label noise" in (out / "repeats.md").read_text()


def test_train_exclude_flag(dataset, tmp_path, capsys):
    ids = pd.read_csv(dataset / "train.csv")["sample_id"].str.split("__").str[0].unique()
    listing = tmp_path / "noisy.txt"
    listing.write_text(f"{ids[2]}\n")
    out = tmp_path / "run"
    args = ["biomass", "train", "--data", str(dataset), "--out", str(out), *TINY]
    assert main([*args, "--exclude", str(listing)]) == 0
    assert "excluded 1 images" in capsys.readouterr().out
    assert ids[2] not in set(pd.read_csv(out / "oof_wide.csv")["image_id"])
    listing.write_text(f"{ids[2]}\nIDnope\n")
    bad = tmp_path / "bad"
    bad_args = ["biomass", "train", "--data", str(dataset), "--out", str(bad), *TINY]
    assert main([*bad_args, "--exclude", str(listing)]) == 2
    err = capsys.readouterr().err
    assert str(listing) in err and "line 2: 'IDnope'" in err and not bad.exists()


# --------------------------------------------------------------------------- --runtime onnx


@pytest.fixture(scope="module")
def exported(run_dir: Path, tmp_path_factory) -> Path:
    """A copy of the run with its FP32 ONNX export where --runtime onnx looks: RUN/export."""
    out = tmp_path_factory.mktemp("exported") / "run"
    shutil.copytree(run_dir, out)
    assert main(["export", "--run", str(out), "--out", str(out / "export")]) == 0
    return out


def test_predict_runtime_onnx_writes_the_torch_submission(dataset, exported, tmp_path, capsys):
    base = ["biomass", "predict", "--run", str(exported), "--data", str(dataset), "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "torch.csv")]) == 0
    capsys.readouterr()
    assert main([*base, "--out", str(tmp_path / "onnx.csv"), "--runtime", "onnx"]) == 0
    assert f"(runtime onnx, export {exported / 'export'})" in capsys.readouterr().out
    want, got = pd.read_csv(tmp_path / "torch.csv"), pd.read_csv(tmp_path / "onnx.csv")
    assert list(got.columns) == list(want.columns) == ["sample_id", "target"]
    assert got["sample_id"].tolist() == want["sample_id"].tolist()
    np.testing.assert_allclose(got["target"], want["target"], rtol=1e-3, atol=1e-4)
    assert main([*base, "--out", str(tmp_path / "x.csv"), "--runtime", "onnx-int8"]) == 2
    assert "has no INT8 copy" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize("problem", ["missing", "edited", "another_run"])
def test_predict_runtime_onnx_refuses_a_bad_export(problem, dataset, exported, tmp_path, capsys):
    run, onnx, fragment = bad_export(
        problem, exported, tmp_path, graph="phase1_fold1.onnx",
        weights="phase2/fold0/model.safetensors",
    )  # fmt: skip
    out = tmp_path / "out" / "sub.csv"
    capsys.readouterr()
    args = ["biomass", "predict", "--run", str(run), "--data", str(dataset), "--out", str(out)]
    assert main([*args, "--runtime", "onnx", *onnx]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and fragment in err, err
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- --ttt


def test_predict_ttt_prints_its_cost(dataset, run_dir, tmp_path, capsys):
    sub = tmp_path / "sub.csv"
    args = ["biomass", "predict", "--run", str(run_dir), "--data", str(dataset), "--out", str(sub)]
    capsys.readouterr()
    assert main([*args, "--no-progress", "--ttt", "--ttt-epochs", "1", "--ttt-lr", "1e-4"]) == 0
    out = capsys.readouterr().out
    assert "ttt_minutes=" in out and "ttt_test_images=3" in out and "ttt_epochs=1" in out
    assert (
        pd.read_csv(sub)["sample_id"].tolist()
        == pd.read_csv(dataset / "test.csv")["sample_id"].tolist()
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ttt", "--runtime", "onnx"], "--ttt with --runtime onnx: "),
        (["--ttt", "--runtime", "onnx-int8"], "--ttt with --runtime onnx-int8"),
        (["--ttt", "--ttt-epochs", "0"], "--ttt-epochs 0: must be"),
        (["--ttt", "--ttt-epochs", "-1"], "--ttt-epochs -1: must be"),
        (["--ttt", "--ttt-lr", "0"], "--ttt-lr 0.0: must be"),
        (["--ttt-epochs", "3"], "--ttt-epochs: only with --ttt"),
        (["--ttt-lr", "1e-4", "--runtime", "onnx"], "--ttt-lr: only with --ttt"),
    ],
    ids=[
        "ttt-onnx",
        "ttt-onnx-int8",
        "zero-epochs",
        "negative-epochs",
        "zero-lr",
        "epochs-without-ttt",
        "lr-without-ttt",
    ],
)
def test_bad_ttt_options_exit_2_and_write_nothing(
    dataset, exported, tmp_path, capsys, args, message
):
    # `exported` has an ONNX export, so without the check the onnx runtimes would succeed.
    out = tmp_path / "out" / "sub.csv"
    before = sorted(p.relative_to(exported) for p in exported.rglob("*"))
    capsys.readouterr()
    cmd = ["biomass", "predict", "--run", str(exported), "--data", str(dataset), "--out", str(out)]
    assert main([*cmd, *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err, err
    assert not (tmp_path / "out").exists()
    assert sorted(p.relative_to(exported) for p in exported.rglob("*")) == before


def test_ablate_prints_the_table_with_the_paired_spread(dataset, tmp_path, capsys, monkeypatch):
    from fieldvision.pipelines.biomass import ablation

    def fake_run_ablation(data_dir, out, cfg, names, repeats=1):
        assert names == ["film"] and repeats == 3
        base = {"description": "", "fold_best": 0.5, "minutes": 1.0}
        return [
            {**base, "variant": "baseline", "weighted_r2": 0.45, "std": 0.12, "delta": 0.0,
             "delta_sd": 0.0, "better": None},
            {**base, "variant": "film", "weighted_r2": 0.44, "std": 0.13, "delta": -0.0187,
             "delta_sd": 0.0771, "better": False},
        ]  # fmt: skip

    monkeypatch.setattr(ablation, "run_ablation", fake_run_ablation)
    args = ["--variants", "film", "--repeats", "3", "--no-progress"]
    code = main(["biomass", "ablate", "--data", str(dataset), "--out", str(tmp_path), *args])
    err = capsys.readouterr().err  # the table is a diagnostic: stderr
    assert code == 0 and "paired" in err and "0.0771" in err and "-0.0187" in err
