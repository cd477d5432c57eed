"""Re-ID training: the run directory, resume, and validate-then-write."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from fieldvision.errors import ConfigError, DataError, RunError
from fieldvision.pipelines.reid import fit, load_run
from fieldvision.pipelines.reid.fit import SPLIT_FILE


def test_fit_writes_the_common_run_directory(run, data):
    for name in ("run.json", "config.yaml", SPLIT_FILE, "metrics.json"):
        assert (run / name).is_file(), name
    for name in ("model.safetensors", "best.ckpt", "last.ckpt", "done.json"):
        assert (run / "train" / name).is_file(), name
    info = json.loads((run / "run.json").read_text())
    assert info["kind"] == "reid" and info["status"] == "done" and info["inputs"]["images"] > 0
    # Where the data was (for export parity), outside the resume identity `inputs`.
    assert info["data"] == {"path": str(data.resolve())} and "path" not in info["inputs"]
    split = json.loads((run / SPLIT_FILE).read_text())
    assert split["protocol"] == "closed" and split["heldout"] and split["train_identities"]
    assert not set(split["train"]) & set(split["heldout"])


def test_finished_run_is_skipped_and_other_configs_refused(reid_cfg, data, run):
    before = (run / "train" / "model.safetensors").stat().st_mtime_ns
    again = fit(data, run, reid_cfg(), progress=False)
    assert again["resumed"] is True
    assert (run / "train" / "model.safetensors").stat().st_mtime_ns == before
    with pytest.raises(RunError, match=r"different config \(model\.embedding_dim\)"):
        fit(data, run, reid_cfg(model={"embedding_dim": 8}), progress=False)


def test_load_run(run, tmp_path):
    with pytest.raises(RunError, match="not a run directory"):
        load_run(tmp_path)
    run_dir, cfg, model = load_run(run)
    assert cfg.model.embedding_dim == 16 and not model.training and run_dir.kind == "reid"


def test_interrupted_run_resumes_at_pipeline_level(reid_cfg, data, tmp_path, monkeypatch):
    """Ctrl+C during training leaves a ``running`` run; the same command resumes it from
    ``last.ckpt`` instead of starting again."""
    import fieldvision.training.trainer as trainer_module

    out = tmp_path / "run"
    cfg = reid_cfg(train={"epochs": 2})
    real_fit = trainer_module.fit_resumable
    calls = []

    def interrupted(trainer, system, train_loader, val_loader, out_dir):
        calls.append(trainer.max_epochs)
        trainer.fit_loop.max_epochs = 1  # train one epoch, then "press Ctrl+C"
        real_fit(trainer, system, train_loader, val_loader, out_dir)
        raise KeyboardInterrupt

    monkeypatch.setattr("fieldvision.training.fit.fit_resumable", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fit(data, out, cfg, progress=False)
    assert json.loads((out / "run.json").read_text())["status"] == "running"
    assert (out / "train" / "last.ckpt").is_file()
    assert not (out / "train" / "model.safetensors").exists()
    monkeypatch.setattr("fieldvision.training.fit.fit_resumable", real_fit)
    summary = fit(data, out, cfg, progress=False)
    assert summary["resumed"] is True and summary["epochs_run"] == 2
    assert json.loads((out / "run.json").read_text())["status"] == "done"


def _too_many_identities_per_batch(data, tmp_path, reid_cfg):
    return reid_cfg(train={"p": 50}), data


def _corrupt_image(data, tmp_path, reid_cfg):
    bad = tmp_path / "bad"
    import shutil

    shutil.copytree(data, bad)
    first = sorted((bad / "train").glob("*.png"))[0]
    first.write_bytes(b"not a png")
    return reid_cfg(), bad


def _escaping_name(data, tmp_path, reid_cfg):
    bad = tmp_path / "bad"
    import shutil

    shutil.copytree(data, bad)
    table = pd.read_csv(bad / "train.csv")
    table.loc[0, "filename"] = "../../escape.png"
    table.to_csv(bad / "train.csv", index=False)
    return reid_cfg(), bad


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (_too_many_identities_per_batch, ConfigError, r"train\.p=50"),
        (_corrupt_image, DataError, r"train\.csv row \d+"),
        (_escaping_name, DataError, "outside"),
    ],
)
def test_bad_input_leaves_nothing_and_the_corrected_rerun_works(
    make, error, match, data, tmp_path, reid_cfg
):
    cfg, source = make(data, tmp_path, reid_cfg)
    out = tmp_path / "run"
    with pytest.raises(error, match=match):
        fit(source, out, cfg, progress=False)
    assert not out.exists()  # validated before anything was written
    summary = fit(data, out, reid_cfg(), progress=False)  # the corrected command
    assert summary["epochs_run"] == 1
