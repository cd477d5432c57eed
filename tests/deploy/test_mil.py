"""`mil predict --runtime onnx|onnx-int8`: the torch runtime's CSV files, without torch; the
NumPy glance helpers and pooling equal to their torch originals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from fieldvision.deploy import mil as deploy_mil
from fieldvision.errors import ConfigError
from fieldvision.ops import glance


@pytest.mark.parametrize(
    ("h", "w", "rows", "cols", "overlap"),
    [(64, 64, 4, 4, 0.0), (75, 33, 3, 5, 0.0), (100, 80, 8, 8, 0.25), (17, 9, 2, 3, 0.1),
     (64, 128, 1, 2, 0.0), (5, 5, 5, 5, 0.49)],
)  # fmt: skip
def test_tile_boxes_are_the_torch_modules(h, w, rows, cols, overlap):
    want = glance.tile_boxes(h, w, rows, cols, overlap)
    got = deploy_mil.tile_boxes(h, w, rows, cols, overlap)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)


def test_tile_boxes_refuse_what_the_torch_module_refuses():
    for args in [(0, 5, 1, 1), (4, 4, 5, 1), (4, 4, 1, 1, -0.1)]:
        with pytest.raises(ValueError):
            glance.tile_boxes(*args)
        with pytest.raises(ValueError):
            deploy_mil.tile_boxes(*args)


def test_select_tiles_is_the_torch_rule():
    rng = np.random.default_rng(0)
    cases = 0
    for t in (1, 4, 16, 64):
        for _ in range(30):
            scores = rng.random(t).astype(np.float32)
            if t > 3:  # ties and confident tiles, where the rule's edges are
                scores[rng.integers(0, t, 3)] = scores[0]
                scores[rng.integers(0, t, 2)] = rng.choice([0.01, 0.99, 0.5])
            budget = float(rng.choice([0.05, 0.1, 0.3, 0.5, 1.0]))
            min_tiles = int(rng.integers(1, 4))
            stop = float(rng.choice([0.0, 0.3, 0.5, 0.9, 1.0]))
            want, _ = glance.select_tiles(torch.from_numpy(scores)[None], budget, min_tiles, stop)
            got = deploy_mil.select_tiles(scores, budget, min_tiles, stop)
            np.testing.assert_array_equal(got, want[0].numpy())
            cases += 1
    assert cases == 120
    for bad in [(0.0, 1, 0.5), (1.5, 1, 0.5), (0.3, 0, 0.5), (0.3, 1, -1.0)]:
        with pytest.raises(ConfigError):
            deploy_mil.select_tiles(np.ones(4, np.float32), *bad)


def test_binary_entropy_is_the_torch_modules():
    p = np.array([0.0, 1e-7, 0.1, 0.5, 0.77, 1.0], np.float32)
    want = glance.binary_entropy(torch.from_numpy(p)).numpy()
    np.testing.assert_allclose(deploy_mil.binary_entropy(p), want, atol=1e-6)
    p64 = np.random.default_rng(0).random(50)  # the stop rule's float64, kept as float64
    got = deploy_mil.binary_entropy(p64)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, glance.binary_entropy(torch.from_numpy(p64)).numpy(),
                               rtol=1e-12, atol=1e-15)  # fmt: skip


def test_unseen_evidence_is_the_torch_ops():
    ranked = np.sort(np.random.default_rng(1).random(64) ** 4)[::-1].astype(np.float32)
    want = glance.unseen_evidence(torch.from_numpy(ranked.copy())[None])[0].numpy()
    np.testing.assert_allclose(deploy_mil.unseen_evidence(ranked), want, rtol=1e-12)


def test_cut_tiles_are_the_torch_modules():
    rng = np.random.default_rng(1)
    image = rng.random((3, 72, 90), dtype=np.float32)
    for boxes in (glance.tile_boxes(72, 90, 4, 5), glance.tile_boxes(72, 90, 3, 3, 0.2)):
        want = glance.cut_tiles(torch.from_numpy(image), boxes, 16).numpy()
        got = deploy_mil.cut_tiles(image, boxes, 16)
        np.testing.assert_allclose(got, want, atol=1e-5)
    assert deploy_mil.cut_tiles(image, np.zeros((0, 4), np.int64), 16).shape == (0, 3, 16, 16)


@pytest.mark.parametrize("pooling", ["max", "topk", "attention", "gated_attention"])
@pytest.mark.parametrize("negative", [None, 0])
def test_pooling_is_the_experts(pooling, negative):
    from fieldvision.models.registry import create_model

    torch.manual_seed(0)
    cfg = {"tile_size": 8, "pooling": pooling, "topk": 3, "attention_dim": 4}
    expert = create_model("mil_expert", cfg, num_classes=3, negative_class=negative).eval()
    rng = np.random.default_rng(2)
    for _ in range(5):
        t = int(rng.integers(1, 12))
        mask = rng.random(t) < 0.5
        mask[rng.integers(0, t)] = True
        logits = rng.normal(size=(t, 3)).astype(np.float32) * 3
        feats = rng.normal(size=(t, expert.num_features)).astype(np.float32)
        logits[~mask], feats[~mask] = 0.0, 0.0  # what the engine scatters for unrun tiles
        with torch.no_grad():
            want, _ = expert.pool(torch.from_numpy(logits)[None], torch.from_numpy(feats)[None],
                                  torch.from_numpy(mask)[None])  # fmt: skip
            att = None
            if expert.attention is not None:
                att = expert.attention.scores(torch.from_numpy(feats)).numpy()
        got = deploy_mil.pool(logits, mask, pooling, negative, 3, att)
        np.testing.assert_allclose(got, want[0].numpy(), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- the command


def _read(folder):
    return pd.read_csv(folder / "preds.csv"), pd.read_csv(folder / "tiles.csv")


@pytest.mark.parametrize("mode", ["glance", "full"])
def test_onnx_predictions_equal_torch_and_the_files_have_the_same_columns(mil_case, tmp_path, mode):
    from fieldvision.pipelines.mil import predict as torch_predict

    run, data = mil_case
    torch_predict(run, data, tmp_path / "t" / "preds.csv", mode, progress=False)
    deploy_mil.predict(run, data, tmp_path / "o" / "preds.csv", mode, progress=False)
    (tp, tt), (op, ot) = _read(tmp_path / "t"), _read(tmp_path / "o")
    assert list(op.columns) == list(tp.columns) and list(ot.columns) == list(tt.columns)
    assert list(op.columns) == ["image", "label", "prob_healthy", "prob_spot", "tiles", "ms"]
    assert op["image"].tolist() == tp["image"].tolist() and len(op) == 12
    assert op["label"].tolist() == tp["label"].tolist()
    assert op["tiles"].tolist() == tp["tiles"].tolist()
    if mode == "glance":
        assert (op["tiles"] < 16).all()
    # Probabilities after pooling and the fold mean: the FP32 tolerance.
    probs = ["prob_healthy", "prob_spot"]
    np.testing.assert_allclose(op[probs], tp[probs], rtol=1e-3, atol=1e-5)
    same = ["image", "row", "col", "x1", "y1", "x2", "y2", "selected"]
    pd.testing.assert_frame_equal(ot[same], tt[same])
    for col in ("scouter", "expert_healthy", "expert_spot"):
        assert ot[col].isna().tolist() == tt[col].isna().tolist()
        np.testing.assert_allclose(ot[col], tt[col], rtol=1e-3, atol=1e-5)


def test_onnx_int8_predictions_are_close_and_heatmaps_are_drawn(mil_case, tmp_path):
    from fieldvision.pipelines.mil import predict as torch_predict

    run, data = mil_case
    want = torch_predict(run, data, tmp_path / "t" / "preds.csv", "full", progress=False)
    got = deploy_mil.predict(run, data, tmp_path / "q" / "preds.csv", "full",
                             heatmaps=tmp_path / "hm", progress=False,
                             runtime="onnx-int8")  # fmt: skip
    probs = ["prob_healthy", "prob_spot"]
    assert np.abs(got[probs].to_numpy() - want[probs].to_numpy()).max() < 0.05
    assert len(list((tmp_path / "hm").glob("*.png"))) == 12


def test_the_onnx_cli_never_imports_torch(mil_case, tmp_path, cli_without_torch):
    run, data = mil_case
    out = tmp_path / "preds.csv"
    argv = ["mil", "predict", "--run", str(run), "--images", str(data), "--out", str(out),
            "--runtime", "onnx", "--no-progress", "--heatmaps", str(tmp_path / "hm")]  # fmt: skip
    rc, torch_modules = cli_without_torch(argv, tmp_path)
    assert rc == 0 and len(pd.read_csv(out)) == 12 and (tmp_path / "tiles.csv").is_file()
    assert torch_modules == []
