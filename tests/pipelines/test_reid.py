"""Re-ID pipeline: fit / embed / search / pairs / evaluate on a tiny synthetic dataset."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from fieldvision.data.reid import EmbeddingSet, save_embeddings
from fieldvision.errors import DataError, RunError
from fieldvision.pipelines.reid import embed, fit, load_run, pair_scores, pairs, search
from fieldvision.pipelines.reid_config import InferenceSection


def test_fit_writes_run_directory_and_resumes(reid_cfg, data, run):
    for name in ("config.yaml", "split.json", "model.safetensors", "metrics.json", "best.ckpt"):
        assert (run / name).is_file(), name
    split = json.loads((run / "split.json").read_text())
    assert split["protocol"] == "closed" and split["heldout"]
    assert not set(split["train"]) & set(split["heldout"])
    again = fit(data, run, reid_cfg(), progress=False)  # finished run: skipped, same result
    assert again["resumed"] is True
    with pytest.raises(RunError, match="different config.*model.embedding_dim"):
        fit(data, run, reid_cfg(model={"embedding_dim": 8}), progress=False)


def test_load_run_errors(run, tmp_path):
    with pytest.raises(RunError, match="not a reid run"):
        load_run(tmp_path)
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(run / "config.yaml", partial / "config.yaml")
    with pytest.raises(RunError, match="training has not finished"):
        load_run(partial)
    cfg, model = load_run(run)
    assert cfg.model.embedding_dim == 16 and not model.training


def test_embed_and_search(data, run, tmp_path):
    g = embed(run, data / "test", tmp_path / "g.npz", progress=False)
    assert g.embeddings.shape == (len(list((data / "test").glob("*.png"))), 16)
    np.testing.assert_allclose(np.linalg.norm(g.embeddings, axis=1), 1.0, rtol=1e-5)
    q = embed(run, data / "test_truth.csv", tmp_path / "q.npz", tta=False, progress=False,
              image_root=data / "test")  # fmt: skip
    assert q.identities is not None and q.meta["tta"] is False
    assert not np.allclose(q.embeddings, g.embeddings)  # TTA changes the embedding
    table = search(tmp_path / "q.npz", tmp_path / "g.npz", tmp_path / "ranks.csv", top=3)
    assert list(table.columns) == ["query", "rank", "gallery", "score"]
    assert (table["query"] != table["gallery"]).all()  # the image itself is never returned
    assert table.groupby("query")["rank"].max().max() == 3
    assert (table.groupby("query")["score"].apply(lambda s: s.is_monotonic_decreasing)).all()
    rr = search(tmp_path / "q.npz", tmp_path / "q.npz", tmp_path / "rr.csv", top=2, qe=2,
                rerank=True, k1=4, k2=2)  # fmt: skip
    assert "same_identity" in rr.columns and (rr["query"] != rr["gallery"]).all()
    assert pd.read_csv(tmp_path / "rr.csv").shape == rr.shape


def test_search_rejects_mismatched_dimensions(tmp_path):
    save_embeddings(tmp_path / "a.npz", EmbeddingSet(np.eye(2, 4, dtype=np.float32), ("x", "y")))
    save_embeddings(tmp_path / "b.npz", EmbeddingSet(np.eye(2, 3, dtype=np.float32), ("x", "y")))
    with pytest.raises(DataError, match=r"a\.npz has 4-dimensional.*b\.npz has 3"):
        search(tmp_path / "a.npz", tmp_path / "b.npz", tmp_path / "r.csv")
    assert not (tmp_path / "r.csv").exists()


def test_pairs_submission(data, run, tmp_path):
    out = tmp_path / "sub" / "submission.csv"
    sub = pairs(run, data, out, progress=False)
    expected = pd.read_csv(data / "test.csv")
    written = pd.read_csv(out)
    assert list(written.columns) == ["row_id", "similarity"]
    assert written["row_id"].tolist() == expected["row_id"].tolist()
    assert written["similarity"].between(0, 1).all() and len(sub) == len(expected)
    assert [p.name for p in out.parent.iterdir()] == ["submission.csv"]  # no temp files


@pytest.mark.parametrize("method", ["cosine", "qe", "rerank", "qe_rerank"])
def test_pair_scores_methods(method):
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(8, 4)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    names = {f"i{k}": k for k in range(8)}
    plist = [("i0", "i1"), ("i1", "i0"), ("i2", "i2")]
    s = pair_scores(emb, names, plist, InferenceSection(rerank_k1=3, rerank_k2=2), method)
    assert s.shape == (3,) and ((s >= 0) & (s <= 1)).all()
    if method == "cosine":
        np.testing.assert_allclose(s[0], (emb[0] @ emb[1] + 1) / 2, rtol=1e-5)
        assert s[2] == pytest.approx(1.0)
