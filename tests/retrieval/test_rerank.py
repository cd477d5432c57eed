import numpy as np
import pytest

from fieldvision.errors import ConfigError, DataError
from fieldvision.metrics.retrieval import evaluate_ranking
from fieldvision.retrieval.rerank import (
    RerankResult,
    build_kreciprocal_graph,
    rerank,
    rerank_pair_distances,
)


def reference_final_distance(x: np.ndarray, k1: int, k2: int, lam: float) -> np.ndarray:
    """Dense, loop-based k-reciprocal re-ranking (Zhong et al., CVPR 2017) on all N rows.

    Written from the paper and its authors' code: squared Euclidean distances normalised per
    row by the row max, full stable argsort, Python sets for R(p, k) and R*(p, k), dense V,
    query expansion over the k2 nearest, Jaccard as Σmin / Σmax. Returns final (N, N).
    """
    x = x.astype(np.float64)
    n = len(x)
    diff = x[:, None, :] - x[None, :, :]
    d = (diff * diff).sum(-1)  # (N, N), exactly symmetric
    dn = (d / d.max(axis=0)).T  # the reference: divide by column max, transpose
    rank = np.argsort(d, axis=1, kind="stable")

    def recip(i: int, k: int) -> set[int]:
        return {int(j) for j in rank[i, : k + 1] if i in rank[j, : k + 1]}

    half = int(np.around(k1 / 2.0))
    v = np.zeros((n, n))
    for i in range(n):
        base = recip(i, k1)
        star = set(base)
        for c in base:
            cand = recip(c, half)
            if len(cand & base) > 2.0 / 3.0 * len(cand):
                star |= cand
        cols = sorted(star)
        w = np.exp(-dn[i, cols])
        v[i, cols] = w / w.sum()
    if k2 != 1:
        v = np.stack([v[rank[i, :k2]].mean(axis=0) for i in range(n)])
    jac = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            jac[i, j] = 1.0 - np.minimum(v[i], v[j]).sum() / np.maximum(v[i], v[j]).sum()
    return (1.0 - lam) * jac + lam * dn


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _clustered(n: int, dim: int, n_clusters: int, spread: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim))
    return _unit(centres[rng.integers(0, n_clusters, n)] + spread * rng.normal(size=(n, dim)))


CASES = [
    # (Q, G, k1, k2, lambda, dim, seed)
    (5, 40, 6, 3, 0.3, 8, 0),
    (1, 30, 20, 6, 0.3, 4, 1),  # Q = 1, k1 > N / 2
    (10, 50, 60, 6, 0.5, 6, 2),  # k1 > N: every row is everyone's neighbour
    (8, 60, 5, 1, 0.0, 5, 3),  # k1 odd (2.5 rounds to 2), no query expansion, lambda 0
    (6, 45, 7, 10, 1.0, 3, 4),  # 3.5 rounds to 4, k2 > k1 + 1, lambda 1
    (12, 70, 20, 6, 0.3, 16, 5),  # paper defaults
]


@pytest.mark.parametrize(("n_q", "n_g", "k1", "k2", "lam", "dim", "seed"), CASES)
def test_dense_and_topk_match_reference(n_q, n_g, k1, k2, lam, dim, seed):
    x = _clustered(n_q + n_g, dim, n_clusters=6, spread=0.4, seed=seed)
    ref = reference_final_distance(x, k1, k2, lam)[:n_q, n_q:]
    dense = rerank(x[:n_q], x[n_q:], k1=k1, k2=k2, lambda_value=lam)
    assert dense.indices is None and dense.distances.shape == (n_q, n_g)
    np.testing.assert_allclose(dense.distances, ref, atol=1e-5)
    for top in (1, 5, n_g + 3):
        res = rerank(x[:n_q], x[n_q:], k1=k1, k2=k2, lambda_value=lam, top=top, chunk_size=3)
        width = min(top, n_g)
        assert res.indices.shape == res.distances.shape == (n_q, width)
        np.testing.assert_allclose(res.distances, np.sort(ref, axis=1)[:, :width], atol=1e-5)
        # the returned indices carry the distances we report
        np.testing.assert_allclose(
            np.take_along_axis(ref, res.indices, 1), res.distances, atol=1e-5
        )
        assert np.all(np.diff(res.distances, axis=1) >= 0)


def test_duplicate_vectors_match_reference():
    base = _clustered(20, 6, n_clusters=4, spread=0.3, seed=7)
    x = np.concatenate([base, base[:10], base[:5]])[np.random.default_rng(0).permutation(35)]
    ref = reference_final_distance(x, 8, 4, 0.3)[:7, 7:]
    res = rerank(x[:7], x[7:], k1=8, k2=4, lambda_value=0.3)
    np.testing.assert_allclose(res.distances, ref, atol=1e-5)
    top = rerank(x[:7], x[7:], k1=8, k2=4, lambda_value=0.3, top=6)
    np.testing.assert_allclose(top.distances, np.sort(ref, axis=1)[:, :6], atol=1e-5)


def test_tightly_clustered_embeddings_keep_precision():
    # one tight cluster: row maxima are ~0.02, so distance errors are magnified ~50x
    x = _clustered(66, 7, n_clusters=1, spread=0.05, seed=21)
    ref = reference_final_distance(x, 28, 5, 0.7)[:11, 11:]
    np.testing.assert_allclose(rerank(x[:11], x[11:], 28, 5, 0.7).distances, ref, atol=1e-5)
    top = rerank(x[:11], x[11:], 28, 5, 0.7, top=4)
    np.testing.assert_allclose(top.distances, np.sort(ref, axis=1)[:, :4], atol=1e-5)


def test_tie_groups_larger_than_the_neighbour_lists_break_ties_by_index():
    # five copies of each point with k1 = 2: every cut falls inside a group of exact ties,
    # so the neighbour sets (and even which V rows are empty) depend on the index order
    base = _clustered(6, 5, n_clusters=2, spread=0.5, seed=13)
    x = np.repeat(base, 5, axis=0)[np.random.default_rng(1).permutation(30)]
    for k1, k2 in ((2, 2), (3, 4), (6, 3)):
        ref = reference_final_distance(x, k1, k2, 0.3)[:4, 4:]
        for block_size in (2048, 7):  # small tiles: copies' float32 distances differ by ulps
            res = rerank(x[:4], x[4:], k1, k2, 0.3, block_size=block_size)
            np.testing.assert_allclose(res.distances, ref, atol=1e-5)


def test_float32_near_ties_are_ordered_in_float64():
    # rows 1 and 2 are ~3.015e-6 from row 0 and differ by 1.2e-11: float32 ranks row 1
    # first, float64 (and the reference) row 2; with k1 = 1 only one of them is kept
    x = np.array(
        [
            [0.12573022, -0.13210486, 0.64042264, 0.10490011],
            [0.12519455, -0.13174327, 0.6417266, 0.10584719],
            [0.12495533, -0.13349822, 0.63973635, 0.10494562],
            [-2.3250308, -0.21879166, -1.245911, -0.7322674],
            [-0.544259, -0.31630015, 0.41163054, 1.0425134],
            [-0.12853466, 1.3664634, -0.6651947, 0.35151008],
        ],
        dtype=np.float32,
    )
    for k1, k2 in ((1, 1), (1, 2), (2, 2)):
        ref = reference_final_distance(x, k1, k2, 0.3)[:1, 1:]
        np.testing.assert_allclose(rerank(x[:1], x[1:], k1, k2, 0.3).distances, ref, atol=1e-5)


def test_unnormalised_embeddings_use_squared_euclidean():
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(40, 5)) * rng.uniform(0.5, 3.0, size=(40, 1))).astype(np.float32)
    ref = reference_final_distance(x, 6, 3, 0.3)[:4, 4:]
    np.testing.assert_allclose(rerank(x[:4], x[4:], 6, 3, 0.3).distances, ref, atol=1e-5)


def test_rerank_improves_map_on_clustered_data():
    rng = np.random.default_rng(11)
    ids = np.repeat(np.arange(12), 10)
    x = _unit(rng.normal(size=(12, 16))[ids] + 1.3 * rng.normal(size=(120, 16)))
    is_query = np.arange(120) % 10 == 0
    q, g = x[is_query], x[~is_query]
    before = evaluate_ranking(2.0 - 2.0 * q @ g.T, ids[is_query], ids[~is_query]).mAP
    reranked = rerank(q, g, k1=10, k2=3, lambda_value=0.3).distances
    assert reranked.min() >= 0.0 and reranked.max() <= 1.0
    after = evaluate_ranking(reranked, ids[is_query], ids[~is_query]).mAP
    assert after > before + 0.02


def test_pair_distances_match_reference_rows():
    x = _clustered(40, 6, n_clusters=5, spread=0.4, seed=9)
    ref = reference_final_distance(x, 10, 4, 0.3)
    a = np.array([0, 3, 5, 39, 7])
    b = np.array([1, 3, 20, 0, 8])
    one_way = rerank_pair_distances(x, a, b, k1=10, k2=4, lambda_value=0.3, symmetric=False)
    np.testing.assert_allclose(one_way, ref[a, b], atol=1e-5)
    both = rerank_pair_distances(x, a, b, k1=10, k2=4, lambda_value=0.3)
    np.testing.assert_allclose(both, 0.5 * (ref[a, b] + ref[b, a]), atol=1e-5)
    assert rerank_pair_distances(x, [], [], k1=10).shape == (0,)


def test_graph_rows_sum_to_one_and_are_sparse():
    x = _clustered(300, 8, n_clusters=10, spread=0.4, seed=1)
    graph = build_kreciprocal_graph(x, k1=20, k2=6)
    np.testing.assert_allclose(graph.v.sum(axis=1), 1.0, atol=1e-9)
    assert graph.v.nnz < 300 * 300 // 2


def test_empty_inputs_give_empty_outputs():
    x = _clustered(5, 4, 2, 0.3, 0)
    assert rerank(x[:0], x).distances.shape == (0, 5)
    assert rerank(x, x[:0]).distances.shape == (5, 0)
    res = rerank(x, x[:0], top=3)
    assert res.distances.shape == res.indices.shape == (5, 0)
    assert isinstance(res, RerankResult)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"k1": 0}, ConfigError),
        ({"k2": 0}, ConfigError),
        ({"k1": 2.5}, ConfigError),
        ({"lambda_value": 1.5}, ConfigError),
        ({"top": -1}, ConfigError),
        ({"gallery": np.zeros((4, 3), np.float32)}, DataError),
        ({"gallery": np.zeros(4, np.float32)}, DataError),
        ({"gallery": np.full((4, 4), np.nan, np.float32)}, DataError),
    ],
)
def test_bad_input_raises(kwargs, error):
    x = _clustered(6, 4, 2, 0.3, 0)
    args = {"query": x[:2], "gallery": x[2:], **kwargs}
    with pytest.raises(error):
        rerank(**args)


def test_dimension_mismatch_message():
    with pytest.raises(DataError, match="query has dimension 4 but gallery has 3"):
        rerank(np.ones((2, 4), np.float32), np.ones((3, 3), np.float32))


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        ([0, 1], [1], "2 first and 1 second"),
        ([0, 9], [1, 1], "pair row 1: first index 9"),
        ([0, 1], [-1, 1], "pair row 0: second index -1"),
    ],
)
def test_pair_distances_bad_indices(first, second, message):
    x = _clustered(6, 4, 2, 0.3, 0)
    with pytest.raises(DataError, match=message):
        rerank_pair_distances(x, first, second)
