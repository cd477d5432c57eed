"""Dense NumPy k-reciprocal re-ranking, structured like the authors' reference code.

Zhong et al., "Re-ranking Person Re-identification with k-reciprocal Encoding", CVPR 2017.
This is the baseline that ``benchmarks/rerank_scale.py`` measures ``fieldvision`` against:
it materialises the ``(Q + G) × (Q + G)`` distance matrix, its full argsort and a dense
``V``, and loops over images in Python exactly as the published code does. Two deliberate
differences keep comparisons exact: distances are computed in float64 by default (the
original casts to float16, torchreid to float32, which makes near-ties sort arbitrarily),
and the argsort is stable (ties rank by index).
"""

from __future__ import annotations

import numpy as np

__all__ = ["rerank_reference"]


def rerank_reference(
    query: np.ndarray,
    gallery: np.ndarray,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    dtype: type = np.float64,
) -> np.ndarray:
    """Dense re-ranked distances ``(Q, G)``; memory and time grow as ``(Q + G)²``.

    Args:
        query: ``float32[Q, D]`` embeddings.
        gallery: ``float32[G, D]`` embeddings.
        k1: k-reciprocal neighbourhood size.
        k2: Local query expansion size (1 disables it).
        lambda_value: Weight of the original distance.
        dtype: Storage type of the dense matrices.

    Returns:
        ``dtype[Q, G]`` final distances.
    """
    query_num = query.shape[0]
    feat = np.vstack([query, gallery]).astype(np.float64)
    sq = (feat * feat).sum(axis=1)
    # squared Euclidean distance of every pair, like cdist(...) ** 2 in the original
    original_dist = np.maximum(sq[:, None] + sq[None, :] - 2.0 * feat @ feat.T, 0.0)
    original_dist = original_dist.astype(dtype)
    del feat
    all_num = original_dist.shape[0]
    original_dist = np.transpose(original_dist / np.max(original_dist, axis=0))
    V = np.zeros_like(original_dist)
    initial_rank = np.argsort(original_dist, axis=1, kind="stable").astype(np.int32)
    half = int(np.around(k1 / 2.0))

    for i in range(all_num):
        forward = initial_rank[i, : k1 + 1]
        backward = initial_rank[forward, : k1 + 1]
        k_reciprocal = forward[np.where(backward == i)[0]]
        expansion = k_reciprocal
        for candidate in k_reciprocal:
            c_forward = initial_rank[candidate, : half + 1]
            c_backward = initial_rank[c_forward, : half + 1]
            c_reciprocal = c_forward[np.where(c_backward == candidate)[0]]
            if len(np.intersect1d(c_reciprocal, k_reciprocal)) > 2.0 / 3 * len(c_reciprocal):
                expansion = np.append(expansion, c_reciprocal)
        expansion = np.unique(expansion)
        weight = np.exp(-original_dist[i, expansion])
        V[i, expansion] = weight / np.sum(weight)

    original_dist = original_dist[:query_num]
    if k2 != 1:
        V_qe = np.zeros_like(V)
        for i in range(all_num):
            V_qe[i] = np.mean(V[initial_rank[i, :k2]], axis=0)
        V = V_qe
        del V_qe
    del initial_rank
    inv_index = [np.where(V[:, i] != 0)[0] for i in range(all_num)]

    jaccard_dist = np.zeros_like(original_dist)
    for i in range(query_num):
        temp_min = np.zeros(all_num, dtype=dtype)
        nonzero = np.where(V[i] != 0)[0]
        for col in nonzero:
            rows = inv_index[col]
            temp_min[rows] += np.minimum(V[i, col], V[rows, col])
        jaccard_dist[i] = 1 - temp_min / (2.0 - temp_min)

    final_dist = jaccard_dist * (1 - lambda_value) + original_dist * lambda_value
    return final_dist[:, query_num:]
