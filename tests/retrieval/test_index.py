import numpy as np
import pytest

from fieldvision.errors import DataError
from fieldvision.retrieval.index import (
    as_embeddings,
    farthest_l2,
    knn,
    self_knn_and_farthest_l2,
    set_num_threads,
)


def _unit(rng, n, d=8):
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("chunk_size", [1, 7, 10_000])
def test_knn_inner_product_matches_brute_force(chunk_size):
    rng = np.random.default_rng(0)
    q, b = _unit(rng, 23), _unit(rng, 50)
    sim, idx = knn(q, b, 5, chunk_size=chunk_size)
    full = q.astype(np.float64) @ b.T.astype(np.float64)
    expected = np.argsort(-full, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(idx, expected)
    np.testing.assert_allclose(sim, np.take_along_axis(full, expected, 1), atol=1e-6)
    assert sim.dtype == np.float32 and idx.dtype == np.int64


def test_knn_l2_matches_brute_force_for_unnormalised_rows():
    rng = np.random.default_rng(1)
    q, b = (
        rng.normal(size=(9, 4)).astype(np.float32),
        3 * rng.normal(size=(30, 4)).astype(np.float32),
    )
    dist, idx = knn(q, b, 4, metric="l2")
    full = ((q[:, None, :].astype(np.float64) - b[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(idx, np.argsort(full, axis=1, kind="stable")[:, :4])
    np.testing.assert_allclose(dist, np.sort(full, axis=1)[:, :4], rtol=1e-5, atol=1e-5)


def test_exclude_self_drops_the_query_itself():
    rng = np.random.default_rng(2)
    x = _unit(rng, 20)
    _, idx = knn(x, x, 3, exclude_self=True)
    assert idx.shape == (20, 3)
    assert not (idx == np.arange(20)[:, None]).any()
    full = x @ x.T
    np.fill_diagonal(full, -np.inf)
    np.testing.assert_array_equal(idx, np.argsort(-full, axis=1, kind="stable")[:, :3])


def test_exclude_self_with_duplicates_keeps_row_length():
    x = np.repeat(_unit(np.random.default_rng(3), 2), 3, axis=0)  # each row three times
    sim, idx = knn(x, x, 2, exclude_self=True)
    assert idx.shape == (6, 2)
    assert not (idx == np.arange(6)[:, None]).any()
    np.testing.assert_allclose(sim, 1.0, atol=1e-6)


def test_k_larger_than_gallery_and_empty_inputs():
    rng = np.random.default_rng(4)
    q, b = _unit(rng, 3), _unit(rng, 4)
    _, idx = knn(q, b, 10)
    assert idx.shape == (3, 4) and sorted(idx[0]) == [0, 1, 2, 3]
    assert knn(q, b, 0)[1].shape == (3, 0)
    assert knn(q, b[:0], 5)[1].shape == (3, 0)
    assert knn(q[:0], b, 5)[0].shape == (0, 4)
    assert knn(b, b, 10, exclude_self=True)[1].shape == (4, 3)


def test_farthest_matches_brute_force():
    rng = np.random.default_rng(5)
    q, b = rng.normal(size=(11, 6)).astype(np.float32), rng.normal(size=(40, 6)).astype(np.float32)
    dist, idx = farthest_l2(q, b, k=2)
    full = ((q[:, None, :].astype(np.float64) - b[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(idx, np.argsort(-full, axis=1, kind="stable")[:, :2])
    np.testing.assert_allclose(dist, -np.sort(-full, axis=1)[:, :2], rtol=1e-5)


@pytest.mark.parametrize("block_size", [7, 64])
def test_fused_self_knn_and_farthest(block_size):
    rng = np.random.default_rng(6)
    x = _unit(rng, 45)
    dist, idx, far = self_knn_and_farthest_l2(x, 6, block_size=block_size)
    full = ((x[:, None, :].astype(np.float64) - x[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(idx, np.argsort(full, axis=1, kind="stable")[:, :6])
    np.testing.assert_allclose(dist, np.sort(full, axis=1)[:, :6], atol=1e-5)
    np.testing.assert_array_equal(far, full.argmax(axis=1))
    assert self_knn_and_farthest_l2(x[:3], 10)[1].shape == (3, 3)


@pytest.mark.parametrize(
    ("query", "base", "kwargs", "error", "message"),
    [
        (
            np.ones((2, 4)),
            np.ones((3, 3)),
            {},
            DataError,
            "query has dimension 4 but gallery has 3",
        ),
        (np.ones(4), np.ones((3, 4)), {}, DataError, "2-D"),
        (np.full((2, 4), np.inf), np.ones((3, 4)), {}, DataError, "row 0"),
        (np.ones((2, 4)), np.ones((3, 4)), {"exclude_self": True}, DataError, "exclude_self"),
        (np.ones((2, 4)), np.ones((3, 4)), {"metric": "cos"}, ValueError, "metric"),
    ],
)
def test_bad_input(query, base, kwargs, error, message):
    with pytest.raises(error, match=message):
        knn(query, base, 2, **kwargs)


def test_helpers():
    assert set_num_threads(1) == 1 and set_num_threads() >= 1
    assert as_embeddings([[1, 2]]).dtype == np.float32
