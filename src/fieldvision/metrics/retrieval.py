"""Retrieval metrics for re-identification: mAP, CMC, mINP, identity-balanced mAP, pair AUC.

The API follows torchreid's evaluation: a ``(Q, G)`` distance matrix plus query/gallery
identity ids (and optionally camera ids) in, CMC and mAP out. Protocol:

* Gallery items are ranked by ascending distance; ties keep gallery order (stable sort).
* With cameras, gallery items sharing *both* identity and camera with the query are removed
  from that query's list (the Market-1501 protocol); the others stay.
* A query with no remaining true match is skipped and marked False in ``valid_query_mask``.
* ``AP = (1 / R) Σ_k P@k · rel_k`` over the (filtered) ranking, ``R`` its number of true
  matches; ``INP = R / rank of the last true match`` (Ye et al., TPAMI 2021);
  ``CMC[r]`` = fraction of valid queries with a true match within the first ``r + 1``.
* The Jaguar Re-ID competition scores **identity-balanced mAP**: the mean over identities of
  the mean AP of that identity's queries, so that frequently photographed animals do not
  dominate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fieldvision.errors import DataError

__all__ = [
    "RetrievalMetrics",
    "evaluate_ranking",
    "evaluate_topk",
    "identity_balanced_map",
    "pair_roc_auc",
    "per_identity_ap",
]

_FIELDS = ("n_rel", "ap", "first", "last")
# Elements of the (chunk, G) working arrays per query chunk (bounds temporary memory).
_CHUNK_ELEMENTS = 1 << 22


@dataclass(frozen=True, eq=False)
class RetrievalMetrics:
    """Retrieval scores over the valid queries.

    Attributes:
        mAP: Mean average precision.
        mINP: Mean inverse negative penalty.
        cmc: ``float64[max_rank]``, CMC curve (``cmc[0]`` is rank-1).
        rank1: Rank-1 accuracy.
        rank5: Rank-5 accuracy.
        rank10: Rank-10 accuracy.
        per_query_ap: ``float64[Q_valid]``, AP of each valid query, in query order.
        valid_query_mask: ``bool[Q]``, queries that had at least one true match.
    """

    mAP: float  # noqa: N815 (the field's conventional name)
    mINP: float  # noqa: N815
    cmc: np.ndarray
    rank1: float
    rank5: float
    rank10: float
    per_query_ap: np.ndarray
    valid_query_mask: np.ndarray

    def as_dict(self) -> dict[str, float]:
        """Scalar metrics as plain floats (for JSON / tables)."""
        return {
            "mAP": float(self.mAP),
            "mINP": float(self.mINP),
            "rank1": float(self.rank1),
            "rank5": float(self.rank5),
            "rank10": float(self.rank10),
            "num_queries": int(self.valid_query_mask.size),
            "num_valid_queries": int(self.valid_query_mask.sum()),
        }


def _ids(name: str, values: Sequence | np.ndarray, length: int | None) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise DataError(f"{name} must be 1-D, got shape {arr.shape}")
    if length is not None and arr.shape[0] != length:
        raise DataError(f"{name} has {arr.shape[0]} entries but the distance matrix needs {length}")
    return arr


@dataclass(frozen=True)
class _QueryStats:
    """Per-query ranking statistics (``n_rel == 0`` marks a query without true matches)."""

    n_rel: np.ndarray  # (Q,) true matches of the query
    ap: np.ndarray  # (Q,) average precision (0 without matches)
    first: np.ndarray  # (Q,) 1-based rank of the first true match (inf if none)
    last: np.ndarray  # (Q,) 1-based rank of the last true match (inf if none)


def _stats_from_hits(hits: np.ndarray, kept: np.ndarray, n_rel: np.ndarray) -> _QueryStats:
    """Statistics from boolean ``hits`` and ``kept`` ``(c, L)`` in rank order.

    ``n_rel[c]`` is the AP denominator: the hits in the list for a full ranking, or the
    true matches in the whole gallery for a truncated one.
    """
    rank = np.cumsum(kept, axis=1, dtype=np.float64)  # (c, L) 1-based rank among kept items
    hit_cum = np.cumsum(hits, axis=1, dtype=np.float64)  # (c, L)
    precision_sum = np.where(hits, hit_cum / np.maximum(rank, 1.0), 0.0).sum(axis=1)
    ap = precision_sum / np.maximum(n_rel, 1)
    first = np.where(hits, rank, np.inf).min(axis=1, initial=np.inf)
    last = np.where(hits, rank, -np.inf).max(axis=1, initial=-np.inf)
    last[~np.isfinite(last)] = np.inf
    return _QueryStats(n_rel, ap, first, last)


def _summarise(stats: _QueryStats, max_rank: int, inp: np.ndarray) -> RetrievalMetrics:
    valid = stats.n_rel > 0
    if not valid.any():
        raise DataError(
            "no query has a true match in the gallery",
            hint="check that query and gallery share identities (and not only same-camera ones)",
        )
    first = stats.first[valid]
    cmc = np.array([(first <= r + 1).mean() for r in range(max_rank)], dtype=np.float64)
    return RetrievalMetrics(
        mAP=float(stats.ap[valid].mean()),
        mINP=float(inp[valid].mean()),
        cmc=cmc,
        rank1=float((first <= 1).mean()),
        rank5=float((first <= 5).mean()),
        rank10=float((first <= 10).mean()),
        per_query_ap=stats.ap[valid].astype(np.float64),
        valid_query_mask=valid,
    )


def evaluate_ranking(
    distmat: np.ndarray,
    query_ids: Sequence | np.ndarray,
    gallery_ids: Sequence | np.ndarray,
    query_cams: Sequence | np.ndarray | None = None,
    gallery_cams: Sequence | np.ndarray | None = None,
    max_rank: int = 10,
) -> RetrievalMetrics:
    """mAP, mINP and CMC of a ``(Q, G)`` distance matrix (torchreid protocol, see module).

    Args:
        distmat: ``float[Q, G]``, smaller is more similar.
        query_ids: ``[Q]`` identity labels (any comparable type).
        gallery_ids: ``[G]`` identity labels.
        query_cams: ``[Q]`` camera ids, or None to keep every gallery item.
        gallery_cams: ``[G]`` camera ids (given together with `query_cams`).
        max_rank: Length of the returned CMC curve; ranks past the gallery size count
            every valid query as matched.

    Returns:
        RetrievalMetrics over the valid queries.

    Raises:
        DataError: On shape mismatches, NaN distances or when no query has a true match.
    """
    dist = np.asarray(distmat, dtype=np.float64)
    if dist.ndim != 2:
        raise DataError(f"distmat must be a 2-D (Q, G) array, got shape {dist.shape}")
    if np.isnan(dist).any():
        raise DataError("distmat contains NaN")
    if max_rank < 1:
        raise DataError(f"max_rank must be >= 1, got {max_rank}")
    n_q, n_g = dist.shape
    q_ids = _ids("query_ids", query_ids, n_q)
    g_ids = _ids("gallery_ids", gallery_ids, n_g)
    if (query_cams is None) != (gallery_cams is None):
        raise DataError("give both query_cams and gallery_cams, or neither")
    use_cams = query_cams is not None
    if use_cams:
        q_cams = _ids("query_cams", query_cams, n_q)
        g_cams = _ids("gallery_cams", gallery_cams, n_g)
    parts = []
    step = max(1, _CHUNK_ELEMENTS // max(1, n_g))
    for start in range(0, n_q, step):
        stop = min(n_q, start + step)
        order = np.argsort(dist[start:stop], axis=1, kind="stable")  # (c, G)
        same_id = g_ids[order] == q_ids[start:stop, None]  # (c, G)
        kept = np.ones_like(same_id)
        if use_cams:
            kept = ~(same_id & (g_cams[order] == q_cams[start:stop, None]))
        hits = same_id & kept
        parts.append(_stats_from_hits(hits, kept, hits.sum(axis=1)))
    if not parts:  # no queries at all
        parts.append(_QueryStats(*(np.zeros(0) for _ in _FIELDS)))
    stats = _QueryStats(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))
    with np.errstate(divide="ignore"):
        inp = np.where(stats.n_rel > 0, stats.n_rel / stats.last, 0.0)
    return _summarise(stats, max_rank, inp)


def evaluate_topk(
    indices: np.ndarray,
    query_ids: Sequence | np.ndarray,
    gallery_ids: Sequence | np.ndarray,
    n_relevant: Sequence | np.ndarray | None = None,
    max_rank: int = 10,
) -> RetrievalMetrics:
    """Metrics from truncated ranked lists ``(Q, K)`` for galleries too large for a matrix.

    Exactness: CMC at ranks ``<= K`` is exact. AP and INP are exact for queries whose true
    matches all appear in the list; otherwise the missing matches count as never retrieved,
    so AP is a lower bound and INP is 0. Ranks beyond ``K`` count as misses in the CMC.
    There is no camera filtering: remove same-camera matches from the lists beforehand.

    Args:
        indices: ``int[Q, K]`` gallery indices, best first.
        query_ids: ``[Q]`` identity labels.
        gallery_ids: ``[G]`` identity labels of the whole gallery.
        n_relevant: ``int[Q]`` true matches of each query in the whole gallery; None counts
            them from `gallery_ids`. Queries with 0 are skipped.
        max_rank: Length of the returned CMC curve.

    Returns:
        RetrievalMetrics over the queries with at least one true match.
    """
    idx = np.asarray(indices)
    if idx.ndim != 2:
        raise DataError(f"indices must be a 2-D (Q, K) array, got shape {idx.shape}")
    n_q = idx.shape[0]
    q_ids = _ids("query_ids", query_ids, n_q)
    g_ids = _ids("gallery_ids", gallery_ids, None)
    if idx.size and (idx.min() < 0 or idx.max() >= g_ids.size):
        raise DataError(f"indices must lie in [0, {g_ids.size}), got {idx.min()}..{idx.max()}")
    if n_relevant is None:
        labels, counts = np.unique(g_ids, return_counts=True)
        count_of = dict(zip(labels.tolist(), counts.tolist(), strict=True))
        n_rel = np.array([count_of.get(q, 0) for q in q_ids.tolist()], dtype=np.int64)
    else:
        n_rel = _ids("n_relevant", n_relevant, n_q).astype(np.int64)
    hits = g_ids[idx] == q_ids[:, None]  # (Q, K)
    too_few = np.flatnonzero(hits.sum(axis=1) > n_rel)
    if too_few.size:
        raise DataError(
            f"query {too_few[0]}: n_relevant is {n_rel[too_few[0]]} but its list already "
            f"holds {hits[too_few[0]].sum()} true matches"
        )
    stats = _stats_from_hits(hits, np.ones_like(hits), n_rel)
    complete = (hits.sum(axis=1) >= n_rel) & (n_rel > 0)
    inp = np.zeros(n_q)
    inp[complete] = n_rel[complete] / stats.last[complete]
    return _summarise(stats, max_rank, inp)


def _grouped_means(values: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels, inverse = np.unique(ids, return_inverse=True)
    sums = np.bincount(inverse, weights=values, minlength=labels.size)
    return labels, sums / np.bincount(inverse, minlength=labels.size)


def _check_ap_ids(per_query_ap: np.ndarray, query_ids_valid: np.ndarray) -> None:
    if per_query_ap.ndim != 1 or per_query_ap.shape != query_ids_valid.shape:
        raise DataError(
            f"per_query_ap {per_query_ap.shape} and query ids {query_ids_valid.shape} "
            "must be 1-D and of equal length",
            hint="pass query_ids[metrics.valid_query_mask]",
        )
    if per_query_ap.size == 0:
        raise DataError("no queries to average")


def per_identity_ap(
    per_query_ap: Sequence[float] | np.ndarray, query_ids_valid: Sequence | np.ndarray
) -> dict:
    """Mean AP of each identity's queries, ``{identity: mean AP}`` in sorted identity order.

    Args:
        per_query_ap: ``[Q_valid]`` APs (``RetrievalMetrics.per_query_ap``).
        query_ids_valid: ``[Q_valid]`` identities of those queries
            (``query_ids[metrics.valid_query_mask]``).
    """
    ap = np.asarray(per_query_ap, dtype=np.float64)
    ids = np.asarray(query_ids_valid)
    _check_ap_ids(ap, ids)
    labels, means = _grouped_means(ap, ids)
    return dict(zip(labels.tolist(), means.tolist(), strict=True))


def identity_balanced_map(
    per_query_ap: Sequence[float] | np.ndarray, query_ids_valid: Sequence | np.ndarray
) -> float:
    """Identity-balanced mAP (Jaguar Re-ID metric): mean over identities of their mean AP.

    Args:
        per_query_ap: ``[Q_valid]`` APs (``RetrievalMetrics.per_query_ap``).
        query_ids_valid: ``[Q_valid]`` identities of those queries.
    """
    ap = np.asarray(per_query_ap, dtype=np.float64)
    ids = np.asarray(query_ids_valid)
    _check_ap_ids(ap, ids)
    return float(_grouped_means(ap, ids)[1].mean())


def pair_roc_auc(scores: Sequence[float] | np.ndarray, labels: Sequence | np.ndarray) -> float:
    """ROC-AUC of pair similarity scores against same-identity labels (scikit-learn).

    Args:
        scores: ``float[P]`` similarities, higher = more likely the same identity.
        labels: ``[P]`` 1/True for same-identity pairs, 0/False otherwise.

    Raises:
        DataError: On length mismatch, non-finite scores, non-binary labels or one class only.
    """
    from sklearn.metrics import roc_auc_score

    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels)
    if s.ndim != 1 or s.shape != y.shape:
        raise DataError(f"scores {s.shape} and labels {y.shape} must be 1-D of equal length")
    if not np.isfinite(s).all():
        raise DataError(f"pair score row {int(np.flatnonzero(~np.isfinite(s))[0])} is not finite")
    if y.dtype != bool and not np.isin(y, (0, 1)).all():
        raise DataError(f"pair labels must be 0/1 or bool, got values {np.unique(y)[:5]}")
    y = y.astype(bool)
    if y.all() or not y.any():
        raise DataError("pair ROC-AUC needs both same-identity and different-identity pairs")
    return float(roc_auc_score(y, s))
