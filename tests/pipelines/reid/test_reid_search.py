"""Ranking a gallery from embedding files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fieldvision.data.reid import EmbeddingSet, save_embeddings
from fieldvision.errors import DataError
from fieldvision.pipelines.reid import embed, search


def test_search_ranks_without_self_matches(data, run, tmp_path):
    embed(run, data / "test", tmp_path / "g.npz", progress=False)
    embed(run, data / "test_truth.csv", tmp_path / "q.npz", progress=False,
          image_root=data / "test")  # fmt: skip
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
