import numpy as np
import pytest

from fieldvision.errors import ConfigError
from fieldvision.metrics.retrieval import evaluate_ranking
from fieldvision.retrieval.expansion import alpha_query_expansion, average_query_expansion


def _unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _views(seed, n_ids=12, per_id=8, dim=32, noise=1.4):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_ids, dim))
    ids = np.repeat(np.arange(n_ids), per_id)
    return _unit(centres[ids] + noise * rng.normal(size=(ids.size, dim))), ids


@pytest.mark.parametrize("fn", [average_query_expansion, alpha_query_expansion])
def test_k_zero_returns_inputs_unchanged(fn):
    q, g = _unit(np.ones((2, 3))), _unit(np.eye(3))
    q2, g2 = fn(q, g, 0)
    assert q2 is q and g2 is g


def test_average_qe_hand_computed():
    q = np.array([[1.0, 0.0, 0.0]], np.float32)
    g = _unit(np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]))
    q2, g2 = average_query_expansion(q, g, 1)
    np.testing.assert_allclose(q2, _unit(q + g[:1]), atol=1e-6)
    np.testing.assert_array_equal(g2, g)


def test_alpha_qe_weights_and_ignores_negative_similarity():
    q = np.array([[1.0, 0.0]], np.float32)
    g = _unit(np.array([[1.0, 1.0], [-1.0, 0.2]]))
    q2, _ = alpha_query_expansion(q, g, 2, alpha=3.0)
    s = float(g[0, 0])  # cosine of q and g[0]; g[1] has a negative cosine -> weight 0
    np.testing.assert_allclose(q2, _unit(q + s**3 * g[:1]), atol=1e-6)


def test_database_side_augmentation_excludes_self():
    g = _unit(np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]]))
    _, g2 = average_query_expansion(g[:1], g, 1, also_gallery=True)
    expected = _unit(g + g[[1, 0, 1]])  # each row plus its nearest other row
    np.testing.assert_allclose(g2, expected, atol=1e-6)


@pytest.mark.parametrize(
    ("fn", "kwargs"),
    [
        (average_query_expansion, {}),
        (average_query_expansion, {"also_gallery": True}),
        (alpha_query_expansion, {"alpha": 3.0}),
    ],
)
def test_qe_improves_map_on_clustered_views(fn, kwargs):
    x, ids = _views(0)
    is_query = np.arange(ids.size) % 8 == 0
    q, g = x[is_query], x[~is_query]
    before = evaluate_ranking(-(q @ g.T), ids[is_query], ids[~is_query]).mAP
    q2, g2 = fn(q, g, 4, **kwargs)
    after = evaluate_ranking(-(q2 @ g2.T), ids[is_query], ids[~is_query]).mAP
    assert after > before + 0.02
    np.testing.assert_allclose(np.linalg.norm(q2, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    ("fn", "kwargs"),
    [
        (average_query_expansion, {"k": -1}),
        (average_query_expansion, {"k": 1.5}),
        (alpha_query_expansion, {"k": 2, "alpha": -1.0}),
    ],
)
def test_bad_parameters(fn, kwargs):
    with pytest.raises(ConfigError):
        fn(_unit(np.ones((1, 2))), _unit(np.eye(2)), **kwargs)
