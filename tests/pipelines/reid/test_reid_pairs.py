"""Pair similarities and the Kaggle pairs submission."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fieldvision.pipelines.reid import pair_scores, pairs
from fieldvision.pipelines.reid.config import InferenceSection


def test_pairs_submission(data, run, tmp_path):
    out = tmp_path / "sub" / "submission.csv"
    sub = pairs(run, data, out, progress=False)
    expected = pd.read_csv(data / "test.csv")
    written = pd.read_csv(out)
    assert list(written.columns) == ["row_id", "similarity"]
    assert written["row_id"].tolist() == expected["row_id"].tolist()
    assert written["similarity"].between(0, 1).all() and len(sub) == len(expected)
    assert [p.name for p in out.parent.iterdir()] == ["submission.csv"]  # no temp files
    cosine = pairs(run, data, tmp_path / "c.csv", progress=False,
                   overrides=["inference.pair_score=cosine"])  # fmt: skip
    assert not np.allclose(cosine["similarity"], sub["similarity"])


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
