"""`reid embed --runtime onnx|onnx-int8`: the torch runtime's ``.npz``, without torch."""

from __future__ import annotations

import numpy as np

from fieldvision.data.reid import load_embeddings
from fieldvision.deploy.reid import embed as onnx_embed
from fieldvision.pipelines.reid import embed as torch_embed


def _npz(path):
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def test_onnx_embeddings_equal_torch_and_the_file_has_the_same_keys(reid_case, tmp_path):
    run, data = reid_case
    images = data / "train"  # 13 photos of 40 px: resized to 32, 4 batches of at most 4
    for tta in (True, False):
        want = torch_embed(run, images, tmp_path / f"t{tta}.npz", tta, progress=False)
        got = onnx_embed(run, images, tmp_path / f"o{tta}.npz", tta, progress=False)
        t, o = _npz(tmp_path / f"t{tta}.npz"), _npz(tmp_path / f"o{tta}.npz")
        assert sorted(t) == sorted(o)
        assert list(t["names"]) == list(o["names"]) and len(o["names"]) == 13
        assert o["embeddings"].dtype == np.float32 and o["embeddings"].shape == (13, 8)
        # Unit rows: an absolute tolerance per component is the FP32 model tolerance.
        np.testing.assert_allclose(o["embeddings"], t["embeddings"], rtol=1e-3, atol=1e-5)
        np.testing.assert_allclose(np.linalg.norm(o["embeddings"], axis=1), 1.0, atol=1e-6)
        assert got.meta == {**want.meta, "runtime": "onnx"} and want.meta["tta"] is tta
    loaded = load_embeddings(tmp_path / "oTrue.npz")  # the torch path's reader accepts it
    assert loaded.names == want.names


def test_onnx_int8_embeddings_are_close(reid_case, tmp_path):
    run, data = reid_case
    want = torch_embed(run, data / "train", tmp_path / "t.npz", progress=False)
    got = onnx_embed(run, data / "train", tmp_path / "q.npz", progress=False, runtime="onnx-int8")
    cosine = (want.embeddings * got.embeddings).sum(axis=1)
    assert cosine.min() > 0.99, cosine
    assert got.meta["runtime"] == "onnx-int8"


def test_the_onnx_cli_never_imports_torch(reid_case, tmp_path, cli_without_torch):
    run, data = reid_case
    out = tmp_path / "emb.npz"
    argv = ["reid", "embed", "--run", str(run), "--images", str(data / "train"),
            "--out", str(out), "--runtime", "onnx", "--no-progress"]  # fmt: skip
    rc, torch_modules = cli_without_torch(argv, tmp_path)
    assert rc == 0 and out.is_file()
    assert torch_modules == []
