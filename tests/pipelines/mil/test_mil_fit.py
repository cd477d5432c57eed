"""MIL training: run layout, grouped splits, distillation target, validate-then-write, resume."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from fieldvision.errors import ConfigError, DataError
from fieldvision.models.registry import load_model
from fieldvision.pipelines.mil import train
from fieldvision.pipelines.mil.engine import tile_evidence
from fieldvision.pipelines.mil.fit import expert_tile_maps
from fieldvision.pipelines.mil.inputs import load_training_data


def test_run_directory_and_grouped_split(mil_run, spots):
    info = json.loads((mil_run / "run.json").read_text())
    assert info["kind"] == "mil" and info["status"] == "done"
    # Where the data was (for export parity), outside the resume identity `inputs`.
    assert info["data"] == {"path": str(spots.resolve())} and "path" not in info["inputs"]
    assert json.loads((mil_run / "classes.json").read_text()) == {
        "classes": ["healthy", "spot"], "negative": "healthy"}  # fmt: skip
    for part in ("expert", "scouter"):
        assert (mil_run / part / "train" / "model.safetensors").is_file()
    splits = pd.read_csv(mil_run / "splits.csv")
    assert splits.groupby("group")["train"].nunique().max() == 1  # no group straddles
    fit = json.loads((mil_run / "metrics.json").read_text())["fit"]
    assert fit["splits"] == ["train"] and 0 <= fit["full"]["macro_f1"] <= 1
    assert fit["glance"]["tile_fraction"] <= np.ceil(0.3 * 16) / 16 + 1e-9  # K_max of 16 tiles
    oof = pd.read_csv(mil_run / "oof.csv")
    assert set(oof["image"]) == set(splits.loc[splits["train"] == "val", "image"])


def test_scouter_target_is_the_frozen_experts_tile_evidence(spots, mil_run, mil_cfg):
    cfg = mil_cfg()
    data = load_training_data(spots, cfg)
    expert = load_model(mil_run / "expert" / "train" / "model.safetensors")
    maps = expert_tile_maps(expert, data, cfg)
    assert maps.shape == (len(data.samples), 4, 4)
    bag = data.store.bag(5)
    with torch.no_grad():
        logits = expert(bag.tiles[None].float() / 255)["tile_logits"]
    ref = tile_evidence(logits, data.negative)[0].view(4, 4).numpy()
    np.testing.assert_allclose(maps[5], ref, rtol=1e-5, atol=1e-6)
    assert ((maps >= 0) & (maps <= 1)).all()


def _single_class(root):
    t = root / "labels.csv"
    t.write_text(t.read_text().replace(",spot,", ",healthy,"))


def _tiny_image(root):
    from fieldvision.data.images import write_image

    write_image(root / "images" / "003.png", np.zeros((12, 12, 3), np.uint8))


def _corrupt(root):
    (root / "images" / "004.png").write_bytes(b"broken")


@pytest.mark.parametrize(
    ("edit", "overrides", "error", "match"),
    [
        (_single_class, [], DataError, "only one class"),
        (_tiny_image, [], DataError, "too small for a 4×4 grid"),
        (_corrupt, [], DataError, r"labels\.csv row 5"),
        (None, ["data.negative_class=ok"], DataError, "negative_class='ok' is not one"),
        (None, ["data.input_size=[30,30]"], ConfigError, "does not divide"),
    ],
    ids=[
        "single-class",
        "image-smaller-than-grid",
        "corrupt-image",
        "unknown-negative",
        "grid-does-not-fit-input-size",
    ],
)
def test_bad_input_leaves_nothing(spots, tmp_path, mil_cfg, edit, overrides, error, match):
    data = tmp_path / "data"
    shutil.copytree(spots, data)
    if edit:
        edit(data)
    out = tmp_path / "run"
    with pytest.raises(error, match=match):
        train(data, out, mil_cfg(*overrides))
    assert not out.exists()


def test_interrupted_run_resumes_with_the_scouter(spots, tmp_path, mil_cfg, monkeypatch):
    import fieldvision.training.fit as core

    real = core.fit_resumable
    calls = []

    def interrupt_scouter(trainer, system, train_loader, val_loader, out_dir):
        calls.append(out_dir.parent.name)
        if out_dir.parent.name == "scouter":
            raise KeyboardInterrupt
        return real(trainer, system, train_loader, val_loader, out_dir)

    monkeypatch.setattr(core, "fit_resumable", interrupt_scouter)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(spots, out, mil_cfg())
    expert_file = out / "expert" / "train" / "model.safetensors"
    before = expert_file.stat().st_mtime_ns
    calls.clear()
    monkeypatch.setattr(
        core, "fit_resumable", lambda *a: calls.append(a[-1].parent.name) or real(*a)
    )
    train(spots, out, mil_cfg())
    assert calls == ["scouter"] and expert_file.stat().st_mtime_ns == before


def test_k_folds_train_one_expert_and_scouter_per_fold(spots, tmp_path, mil_cfg):
    out = tmp_path / "kfold"
    summary = train(spots, out, mil_cfg("train.folds=2"))
    assert summary["splits"] == ["fold0", "fold1"]
    splits = pd.read_csv(out / "splits.csv")
    assert (splits[["fold0", "fold1"]] == "val").sum(axis=1).eq(1).all()  # each image OOF once
    oof = pd.read_csv(out / "oof.csv")
    assert sorted(oof["image"]) == sorted(splits["image"])  # every image predicted out of fold
    from fieldvision.pipelines.mil import load_run

    loaded = load_run(out)
    assert len(loaded.experts) == len(loaded.scouters) == 2


def test_distillation_trains_glance_students_used_in_glance_mode(spots, tmp_path, mil_cfg):
    from fieldvision.pipelines.mil import load_run
    from fieldvision.pipelines.mil.engine import Predictor
    from fieldvision.pipelines.mil.inputs import bag_spec, read_samples

    out = tmp_path / "distilled"
    train(spots, out, mil_cfg("distill.enabled=true", "distill.epochs=1"))
    assert (out / "student" / "train" / "model.safetensors").is_file()
    loaded = load_run(out)
    assert len(loaded.students) == 1
    from fieldvision.data.mil import BagStore

    store = BagStore(read_samples(spots, loaded.cfg).subset(range(4)), bag_spec(loaded.cfg))
    with_students = Predictor(loaded.experts, loaded.scouters, loaded.negative, "cpu",
                              loaded.students)  # fmt: skip
    without = Predictor(loaded.experts, loaded.scouters, loaded.negative, "cpu")
    a = with_students.run(store, "glance", 0.3)
    b = without.run(store, "glance", 0.3)
    assert [r.selected.tolist() for r in a] == [r.selected.tolist() for r in b]  # same tiles
    assert not np.allclose([r.prob for r in a], [r.prob for r in b])  # other weights
    full_a = with_students.run(store, "full")
    full_b = without.run(store, "full")
    np.testing.assert_allclose([r.prob for r in full_a], [r.prob for r in full_b])  # experts


def test_honest_selection_trains_every_epoch_and_exports_their_average(spots, tmp_path, mil_cfg):
    # The DeepPCB lesson: picking the best epoch on the split that reports the score is
    # optimistic; last_k_average never reads that split's score.
    out = tmp_path / "honest"
    honest = ["expert.selection=last_k_average", "expert.selection_k=2"]
    train(spots, out, mil_cfg("expert.epochs=3", "expert.patience=1", *honest))
    selection = json.loads((out / "expert" / "train" / "selection.json").read_text())
    assert selection["mode"] == "last_k_average" and selection["epochs"] == [2, 3]
    scores = json.loads((out / "expert" / "train" / "epochs.json").read_text())["scores"]
    assert sorted(int(e) for e in scores) == [1, 2, 3]  # early stopping off: all epochs ran
    assert (out / "expert" / "train" / "fold_best.safetensors").is_file()


@pytest.mark.parametrize(
    "device",
    ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)],
)
def test_mixed_precision_training_gives_a_usable_run(spots, tmp_path, mil_cfg, device):
    # bf16 autocast runs the same code path on CPU as AMP on a GPU (bag and tile losses,
    # evidence maps and calibration in float32 under autocast); CUDA only where there is one.
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    out = tmp_path / "amp"
    amp = [f"train.device={device}", "train.precision=bf16-mixed", "distill.enabled=true"]
    summary = train(spots, out, mil_cfg(*amp, "distill.epochs=1"))  # all three systems
    assert 0 <= summary["full"]["macro_f1"] <= 1 and 0 <= summary["glance"]["auc"] <= 1
    fit = json.loads((out / "scouter" / "train" / "calibration.json").read_text())
    assert np.isfinite([fit["scale"], fit["shift"]]).all()
    expert = load_model(out / "expert" / "train" / "model.safetensors")
    assert all(p.dtype == torch.float32 for p in expert.parameters())  # saved in float32
