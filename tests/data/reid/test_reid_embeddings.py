"""Embedding ``.npz`` files: round trip and validation errors."""

from __future__ import annotations

import numpy as np
import pytest

from fieldvision.data.reid import EmbeddingSet, load_embeddings, save_embeddings
from fieldvision.errors import DataError


def test_embeddings_roundtrip(tmp_path):
    emb = np.eye(3, 4, dtype=np.float32)
    path = save_embeddings(
        tmp_path / "e.npz", EmbeddingSet(emb, ("a", "b", "c"), ("x", "x", "y"), {"tta": True})
    )
    back = load_embeddings(path)
    np.testing.assert_array_equal(back.embeddings, emb)
    assert back.names == ("a", "b", "c") and back.identities == ("x", "x", "y")
    assert back.meta == {"tta": True} and back.dim == 4 and back.index_of()["c"] == 2
    save_embeddings(tmp_path / "n.npz", EmbeddingSet(emb, ("a", "b", "c")))
    assert load_embeddings(tmp_path / "n.npz").identities is None


@pytest.mark.parametrize(
    ("arrays", "fragment"),
    [
        ({"names": np.array(["a"])}, "missing array 'embeddings'"),
        ({"embeddings": np.zeros((2, 3)), "names": np.array(["a"])}, "2 embeddings but 1 names"),
        ({"embeddings": np.zeros(3), "names": np.array(["a"])}, "(N, D)"),
        ({"embeddings": np.full((1, 2), np.nan), "names": np.array(["a"])}, "NaN"),
        ({"embeddings": np.zeros((2, 2)), "names": np.array(["a", "a"])}, "duplicate"),
        (
            {
                "embeddings": np.zeros((1, 2)),
                "names": np.array(["a"]),
                "identities": np.array(["x", "y"]),
            },
            "1 names but 2 identities",
        ),
    ],
)
def test_bad_embeddings_files(tmp_path, arrays, fragment):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match="bad.npz") as info:
        load_embeddings(path)
    assert fragment in str(info.value)


def test_unreadable_embeddings_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_embeddings(tmp_path / "none.npz")
    (tmp_path / "x.npz").write_text("hello")
    with pytest.raises(DataError, match="not a readable"):
        load_embeddings(tmp_path / "x.npz")
