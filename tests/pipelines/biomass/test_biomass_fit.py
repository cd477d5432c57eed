"""Biomass training wiring: Phase 2 learns from out-of-fold Phase-1 predictions, runs resume."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fieldvision.inference import flip_views, mean_views, predict_views
from fieldvision.models.registry import load_model
from fieldvision.pipelines.biomass import fit as fit_module
from fieldvision.pipelines.biomass import train
from fieldvision.pipelines.biomass.fit import phase1_call
from fieldvision.pipelines.biomass.inputs import load_training_data, make_dataset
from fieldvision.pipelines.biomass.meta import FILM_KEYS, MetaEncoder, film_meta


def test_phase2_trains_on_out_of_fold_phase1_predictions(pasture, tmp_path, monkeypatch, tiny):
    """The meta Phase 2 trains on is, row by row, what the Phase-1 model of the fold that
    held that image out predicts for it (with the run's TTA), and not the ground truth."""
    seen = []
    real = fit_module.make_loader

    def spy(paths, cache, arrays, cfg, *, train, seed=0):
        if train and "targets" in arrays:
            seen.append({k: np.array(v) for k, v in arrays.items()})
        return real(paths, cache, arrays, cfg, train=train, seed=seed)

    monkeypatch.setattr(fit_module, "make_loader", spy)
    out = tmp_path / "run"
    cfg = tiny()
    train(pasture, out, cfg)
    oof = pd.read_csv(out / "phase1" / "oof_meta.csv")[list(FILM_KEYS)].to_numpy(np.float32)
    folds = pd.read_csv(out / "folds.csv")["fold"].to_numpy()
    assert len(seen) == 2  # one Phase-2 training loader per fold
    for k, arrays in enumerate(seen):
        np.testing.assert_array_equal(arrays["meta"], oof[folds != k])

    data = load_training_data(pasture, cfg)
    for k in (0, 1):  # each OOF row comes from the model that never saw the image
        rows = np.flatnonzero(folds == k)
        model = load_model(out / "phase1" / f"fold{k}" / "model.safetensors")
        dataset = make_dataset([data.paths[i] for i in rows], data.cache, {}, cfg)
        views = predict_views(model, dataset, phase1_call, flip_views(True), device="cpu")
        np.testing.assert_allclose(oof[rows], film_meta(mean_views(views)), rtol=1e-4, atol=1e-5)
    truth = MetaEncoder.fit(data.wide).encode(data.wide)
    true_meta = np.stack([truth[k] for k in FILM_KEYS], axis=1)
    assert not np.allclose(oof, true_meta, atol=1e-2)


def test_the_tta_setting_reaches_phase1_oof(pasture, tmp_path, biomass_run, tiny):
    out = tmp_path / "run"
    train(pasture, out, tiny("train.tta=false"))
    no_tta = pd.read_csv(out / "phase1" / "oof_meta.csv").to_numpy()
    with_tta = pd.read_csv(biomass_run / "phase1" / "oof_meta.csv").to_numpy()
    assert not np.allclose(no_tta, with_tta)
    metrics = json.loads((out / "metrics.json").read_text())["fit"]
    # Without TTA the OOF score and its no-TTA ablation are the same predictions.
    assert metrics["oof_weighted_r2"] == pytest.approx(metrics["oof_weighted_r2_no_tta"])
    assert metrics["tta"] is False


def test_interrupted_run_resumes_at_pipeline_level(pasture, tmp_path, monkeypatch, tiny):
    """Ctrl+C in Phase 2's second fold: the re-run keeps Phase 1 and fold 0, trains fold 1."""
    import fieldvision.training.fit as core

    real = core.fit_resumable
    calls = []

    def interrupt_fourth(trainer, system, train_loader, val_loader, out_dir):
        calls.append(str(out_dir))
        if len(calls) == 4:  # phase1/fold0, phase1/fold1, phase2/fold0, then phase2/fold1
            raise KeyboardInterrupt
        return real(trainer, system, train_loader, val_loader, out_dir)

    monkeypatch.setattr(core, "fit_resumable", interrupt_fourth)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(pasture, out, tiny())
    assert json.loads((out / "run.json").read_text())["status"] == "running"
    kept = {
        p: (out / p).stat().st_mtime_ns
        for p in (
            "phase1/fold0/model.safetensors",
            "phase1/fold1/model.safetensors",
            "phase1/oof_meta.csv",
            # Honest selection exports after every fold trained; fold 0's training is kept.
            "phase2/fold0/fold_best.safetensors",
            "phase2/fold0/done.json",
        )
    }
    assert not (out / "phase2" / "fold1" / "model.safetensors").exists()
    calls.clear()
    monkeypatch.setattr(core, "fit_resumable", lambda *a: calls.append(str(a[-1])) or real(*a))
    result = train(pasture, out, tiny())
    assert [c.split("/")[-2:] for c in calls] == [["phase2", "fold1"]]
    assert all((out / p).stat().st_mtime_ns == t for p, t in kept.items())
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "done" and np.isfinite(result.oof_r2)
    # Where the data was (for export parity), outside the resume identity `inputs`.
    assert info["data"] == {"path": str(pasture.resolve())} and "path" not in info["inputs"]


def test_a_finished_run_returns_its_recorded_scores_without_recomputing(
    pasture, biomass_run, monkeypatch, tiny
):
    recorded = json.loads((biomass_run / "metrics.json").read_text())["fit"]
    stamp = (biomass_run / "oof.csv").stat().st_mtime_ns

    def no_prediction(*args, **kwargs):
        raise AssertionError("a finished run must not be predicted again")

    monkeypatch.setattr(fit_module, "_predict", no_prediction)
    result = train(pasture, biomass_run, tiny())
    assert result.oof_r2 == pytest.approx(recorded["oof_weighted_r2"])
    assert result.oof_r2_no_tta == pytest.approx(recorded["oof_weighted_r2_no_tta"])
    assert result.oof_r2_fold_best == pytest.approx(recorded["oof_weighted_r2_fold_best"])
    assert result.fold_r2 == pytest.approx(recorded["fold_weighted_r2"])
    assert result.per_target == pytest.approx(recorded["per_target_r2"])
    assert result.selection == recorded["selection"]["mode"]
    assert (biomass_run / "oof.csv").stat().st_mtime_ns == stamp  # nothing rewritten


def test_a_finished_run_without_recorded_scores_is_recomputed(pasture, tmp_path, tiny):
    out = tmp_path / "run"
    first = train(pasture, out, tiny())
    metrics = json.loads((out / "metrics.json").read_text())
    del metrics["fit"]["fold_weighted_r2"]  # as written by an older release
    (out / "metrics.json").write_text(json.dumps(metrics))
    again = train(pasture, out, tiny())
    assert again.oof_r2 == pytest.approx(first.oof_r2, abs=1e-6)
    fit = json.loads((out / "metrics.json").read_text())["fit"]
    assert fit["fold_weighted_r2"] == pytest.approx(first.fold_r2)


def test_phase2_only_run_skips_phase1(pasture, tmp_path, tiny):
    out = tmp_path / "run"
    result = train(pasture, out, tiny("phase2.use_film=false", "phase1.enabled=false"))
    assert not (out / "phase1").exists() and np.isfinite(result.oof_r2)
    assert "pred_month" not in pd.read_csv(out / "oof_wide.csv").columns


@pytest.mark.parametrize(
    ("variant", "bins", "head"),
    [("phase2.bins=4", 4, "components"), ("phase2.head=projection", 0, "projection")],
)
def test_head_variant_runs_predict_reload_and_export(pasture, tmp_path, tiny, variant, bins, head):
    """A bins / projection run trains, predicts, reloads its fold models (bins from the
    fold's own training targets) and exports them with ONNX parity; the ONNX runtime's
    submission equals the torch one."""
    from fieldvision.deploy.biomass import predict as onnx_predict
    from fieldvision.export import export_run
    from fieldvision.models.biomass_heads import quantile_bins
    from fieldvision.pipelines.biomass import predict

    out = tmp_path / "run"
    cfg = tiny("phase2.use_film=false", "phase1.enabled=false", variant)
    result = train(pasture, out, cfg)
    assert np.isfinite(result.oof_r2)
    y = load_training_data(pasture, cfg).targets
    folds = pd.read_csv(out / "folds.csv")["fold"].to_numpy()
    for k in (0, 1):
        model = load_model(out / "phase2" / f"fold{k}" / "model.safetensors")
        assert model.cfg.head == head and model.cfg.bins == bins
        if bins:
            edges, centres = quantile_bins(y[folds != k, :3], bins)
            np.testing.assert_allclose(model.bin_edges.numpy(), edges, rtol=1e-6)
            np.testing.assert_allclose(model.bin_centres.numpy(), centres, rtol=1e-6)
    submission = predict(out, pasture, tmp_path / "sub.csv")
    assert len(submission) == 15 and (submission["target"] >= 0).all()
    manifest = export_run(out, out / "export")
    assert all(entry["parity"]["passed"] for entry in manifest["models"].values())
    assert manifest["models"]["phase2_fold0"]["outputs"] == ["targets", "tile_weights"]
    onnx = onnx_predict(out, pasture, tmp_path / "onnx.csv")
    np.testing.assert_allclose(onnx["target"], submission["target"], rtol=1e-3, atol=1e-4)
