import numpy as np
import pytest

from fieldvision.errors import DataError
from fieldvision.metrics.retrieval import (
    RetrievalMetrics,
    evaluate_ranking,
    evaluate_topk,
    identity_balanced_map,
    pair_roc_auc,
    per_identity_ap,
)


def loop_reference(dist, q_ids, g_ids, q_cams=None, g_cams=None):
    """torchreid-style evaluation, one query at a time: (APs, INPs, first-hit ranks)."""
    aps, inps, firsts = [], [], []
    for i in range(dist.shape[0]):
        order = np.argsort(dist[i], kind="stable")
        keep = np.ones(len(order), bool)
        if q_cams is not None:
            keep = ~((g_ids[order] == q_ids[i]) & (g_cams[order] == q_cams[i]))
        match = (g_ids[order] == q_ids[i])[keep]
        if not match.any():
            continue
        positions = np.flatnonzero(match) + 1  # 1-based ranks of true matches
        aps.append(np.mean([(j + 1) / p for j, p in enumerate(positions)]))
        inps.append(len(positions) / positions[-1])
        firsts.append(positions[0])
    return np.array(aps), np.array(inps), np.array(firsts)


def test_hand_computed_example():
    dist = np.array([[0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4]])
    # query "a": matches at ranks 2 and 4 -> AP (1/2 + 2/4) / 2 = 0.5, INP 2/4
    # query "b": match at rank 1 -> AP 1, INP 1
    m = evaluate_ranking(dist, ["a", "b"], ["b", "a", "c", "a"], max_rank=5)
    assert m.mAP == pytest.approx(0.75)
    assert m.mINP == pytest.approx(0.75)
    np.testing.assert_allclose(m.per_query_ap, [0.5, 1.0])
    np.testing.assert_allclose(m.cmc, [0.5, 1.0, 1.0, 1.0, 1.0])
    assert (m.rank1, m.rank5, m.rank10) == (0.5, 1.0, 1.0)
    assert m.as_dict()["num_valid_queries"] == 2 and m.as_dict()["mAP"] == pytest.approx(0.75)
    assert isinstance(m, RetrievalMetrics)


def test_same_camera_matches_are_excluded():
    dist = np.array([[0.05, 0.1, 0.2]])
    ids, cams = ["a", "b", "a"], [1, 2, 2]
    plain = evaluate_ranking(dist, ["a"], ids)
    assert plain.mAP == pytest.approx((1 + 2 / 3) / 2)
    filtered = evaluate_ranking(dist, ["a"], ids, [1], cams)
    # the same-camera "a" is removed: ranking b, a -> AP 1/2, first hit at rank 2
    assert filtered.mAP == pytest.approx(0.5) and filtered.rank1 == 0.0


def test_queries_without_match_are_skipped():
    dist = np.array([[0.1, 0.2], [0.3, 0.1], [0.2, 0.2]])
    m = evaluate_ranking(dist, ["a", "z", "b"], ["a", "b"])
    np.testing.assert_array_equal(m.valid_query_mask, [True, False, True])
    assert m.per_query_ap.shape == (2,)


def test_matches_loop_reference_on_random_data():
    rng = np.random.default_rng(0)
    dist = rng.random((30, 80))
    dist[:, :5] = dist[:, 5:10]  # some exact ties
    q_ids, g_ids = rng.integers(0, 8, 30), rng.integers(0, 8, 80)
    q_cams, g_cams = rng.integers(0, 3, 30), rng.integers(0, 3, 80)
    for cams in ((None, None), (q_cams, g_cams)):
        m = evaluate_ranking(dist, q_ids, g_ids, *cams, max_rank=20)
        aps, inps, firsts = loop_reference(dist, q_ids, g_ids, *cams)
        np.testing.assert_allclose(m.per_query_ap, aps)
        assert m.mAP == pytest.approx(aps.mean()) and m.mINP == pytest.approx(inps.mean())
        np.testing.assert_allclose(m.cmc, [(firsts <= r + 1).mean() for r in range(20)])


def test_identity_balanced_map_differs_on_unbalanced_queries():
    ap = np.array([1.0, 1.0, 1.0, 0.0])
    ids = np.array(["a", "a", "a", "b"])
    assert ap.mean() == pytest.approx(0.75)
    assert identity_balanced_map(ap, ids) == pytest.approx(0.5)
    assert per_identity_ap(ap, ids) == {"a": 1.0, "b": 0.0}


def test_topk_equals_full_ranking_when_complete_and_bounds_when_truncated():
    rng = np.random.default_rng(1)
    dist = rng.random((12, 40))
    q_ids, g_ids = rng.integers(0, 5, 12), rng.integers(0, 5, 40)
    full = evaluate_ranking(dist, q_ids, g_ids)
    order = np.argsort(dist, axis=1, kind="stable")
    complete = evaluate_topk(order, q_ids, g_ids)
    np.testing.assert_allclose(complete.per_query_ap, full.per_query_ap)
    assert complete.mINP == pytest.approx(full.mINP)
    np.testing.assert_allclose(complete.cmc, full.cmc)
    short = evaluate_topk(order[:, :10], q_ids, g_ids)
    assert np.all(short.per_query_ap <= full.per_query_ap + 1e-12)
    assert short.rank10 == pytest.approx(full.rank10)


def test_pair_roc_auc_hand_computed():
    # positive-negative pairs ordered correctly: (0.9>0.8), (0.9>0.1), (0.3>0.1); wrong: 0.3<0.8
    assert pair_roc_auc([0.9, 0.8, 0.3, 0.1], [1, 0, 1, 0]) == pytest.approx(0.75)
    assert pair_roc_auc(np.array([0.2, 0.7]), np.array([False, True])) == 1.0


@pytest.mark.parametrize(
    ("dist", "q_ids", "g_ids", "cams", "message"),
    [
        (np.zeros((2, 3)), ["a"], ["a", "b", "c"], None, "query_ids has 1"),
        (np.zeros((1, 3)), ["a"], ["a", "b"], None, "gallery_ids has 2"),
        (np.zeros(3), ["a"], ["a", "b", "c"], None, "2-D"),
        (np.full((1, 2), np.nan), ["a"], ["a", "b"], None, "NaN"),
        (np.zeros((1, 2)), ["a"], ["b", "c"], None, "no query has a true match"),
        (np.zeros((1, 1)), ["a"], ["a"], ([0], [0]), "no query has a true match"),
        (np.zeros((1, 1)), ["a"], ["a"], ([0], None), "both query_cams"),
        (np.zeros((0, 2)), [], ["a", "b"], None, "no query has a true match"),
    ],
)
def test_evaluate_ranking_bad_input(dist, q_ids, g_ids, cams, message):
    q_cams, g_cams = cams if cams is not None else (None, None)
    with pytest.raises(DataError, match=message):
        evaluate_ranking(dist, q_ids, g_ids, q_cams, g_cams)


@pytest.mark.parametrize(
    ("scores", "labels", "message"),
    [
        ([0.1, 0.2], [1, 1], "both"),
        ([0.1, 0.2], [1], "equal length"),
        ([0.1, np.nan], [1, 0], "not finite"),
        ([0.1, 0.2], [2, 0], "0/1"),
    ],
)
def test_pair_roc_auc_bad_input(scores, labels, message):
    with pytest.raises(DataError, match=message):
        pair_roc_auc(scores, labels)


def test_balanced_map_bad_input():
    with pytest.raises(DataError, match="equal length"):
        identity_balanced_map([0.5, 0.5], ["a"])
    with pytest.raises(DataError, match="no queries"):
        identity_balanced_map([], [])


def test_topk_hand_computed_truncation_and_bad_counts():
    # list: hit, miss, hit; 3 relevant in the gallery -> AP lower bound (1 + 2/3) / 3
    m = evaluate_topk(np.array([[0, 1, 2]]), ["a"], ["a", "b", "a", "a"])
    assert m.mAP == pytest.approx((1 + 2 / 3) / 3)
    assert m.mINP == 0.0  # the last match is beyond the list
    with pytest.raises(DataError, match="n_relevant is 1"):
        evaluate_topk(np.array([[0, 2]]), ["a"], ["a", "b", "a"], n_relevant=[1])
