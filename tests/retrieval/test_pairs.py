import numpy as np
import pytest

from fieldvision.errors import DataError
from fieldvision.metrics.retrieval import pair_roc_auc
from fieldvision.retrieval.pairs import (
    pair_similarities,
    rerank_pair_similarities,
    resolve_pairs,
)
from fieldvision.retrieval.rerank import rerank_pair_distances


def test_cosine_pair_similarity_hand_computed():
    emb = np.array([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0]], np.float32)
    index_of = {"a.jpg": 0, "b.jpg": 1, "c.jpg": 2}
    sims = pair_similarities(
        emb, index_of, [("a.jpg", "a.jpg"), ("a.jpg", "b.jpg"), ("a.jpg", "c.jpg")]
    )
    np.testing.assert_allclose(sims, [1.0, 0.5, 0.0], atol=1e-7)
    assert sims.dtype == np.float32
    assert pair_similarities(emb, index_of, []).shape == (0,)


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([("a", "b"), ("a", "zzz"), ("yyy", "a")], "pair row 1: unknown image name 'zzz'"),
        ([("a", "b", "c")], "pair row 0: expected two image names"),
        (["ab"], "pair row 0: expected two image names"),
        ([("a", "far")], "pair row 0: image 'far' maps to row 9"),
    ],
)
def test_bad_pairs_name_the_row(pairs, message):
    emb = np.eye(2, dtype=np.float32)
    with pytest.raises(DataError, match=message):
        pair_similarities(emb, {"a": 0, "b": 1, "far": 9}, pairs)
    with pytest.raises(DataError, match=message):
        rerank_pair_similarities(emb, {"a": 0, "b": 1, "far": 9}, pairs)


def _identities(seed=0, n_ids=10, per_id=6, dim=16, noise=0.9):
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(n_ids), per_id)
    x = rng.normal(size=(n_ids, dim))[ids] + noise * rng.normal(size=(ids.size, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), ids


def test_rerank_pair_similarity_is_symmetric_bounded_and_discriminative():
    x, ids = _identities()
    names = [f"img{i}" for i in range(len(ids))]
    index_of = {n: i for i, n in enumerate(names)}
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, len(ids), 300), rng.integers(0, len(ids), 300)
    pairs = [(names[i], names[j]) for i, j in zip(a, b, strict=True)]
    sims = rerank_pair_similarities(x, index_of, pairs, k1=8, k2=3, lambda_value=0.3)
    swapped = rerank_pair_similarities(x, index_of, [(q, p) for p, q in pairs], 8, 3, 0.3)
    np.testing.assert_allclose(sims, swapped, atol=1e-6)
    assert sims.min() >= 0.0 and sims.max() <= 1.0
    expected = 1.0 - rerank_pair_distances(x, a, b, k1=8, k2=3, lambda_value=0.3)
    np.testing.assert_allclose(sims, expected, atol=1e-6)
    labels = ids[a] == ids[b]
    assert pair_roc_auc(sims, labels) > 0.9


def test_resolve_pairs_returns_rows():
    first, second = resolve_pairs({"a": 0, "b": 1}, [("a", "b"), ("b", "b")], 2)
    np.testing.assert_array_equal(first, [0, 1])
    np.testing.assert_array_equal(second, [1, 1])
