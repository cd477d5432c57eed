"""k-reciprocal re-ranking (Zhong et al., CVPR 2017), exact and scalable.

Reproduces "Re-ranking Person Re-identification with k-reciprocal Encoding" as its authors'
reference code computes it, on the combined set of ``N = Q + G`` images (queries first):

1. ``d(i, j)``: squared Euclidean distance (``2 - 2·cos`` for unit vectors); each row is
   divided by its maximum over all ``N`` images (the reference divides by the column max of
   the symmetric matrix, then transposes: the same thing), giving ``dn(i, j)`` in [0, 1].
2. ``R(i, k)``: the ``k + 1`` nearest images of ``i`` (self included) that also have ``i``
   among their ``k + 1`` nearest. ``R*(i)`` = ``R(i, k1)`` plus ``R(c, round(k1 / 2))`` for
   every ``c`` in ``R(i, k1)`` whose half set overlaps ``R(i, k1)`` in *more than* 2/3 of its
   members (the reference code's strict ``>``; the paper writes ``>=``). ``round`` is
   NumPy's round-half-to-even, as in the reference.
3. ``V[i, j] = exp(-dn(i, j))`` on ``R*(i)``, normalised to sum 1; local query expansion
   replaces ``V[i]`` by the mean of ``V`` over the ``k2`` nearest images (skipped for k2=1).
4. ``jaccard(i, j) = 1 - Σ min(V[i], V[j]) / Σ max(V[i], V[j])`` and
   ``final = (1 - λ)·jaccard + λ·dn``.

Ranks break ties in distance by image index (a stable sort); neighbour sets are
therefore well defined even with duplicate images.

Scaling: one exact all-vs-all pass (tiled BLAS + faiss k-selection heaps, see
:func:`~fieldvision.retrieval.index.self_knn_and_farthest_l2`) gives every image's nearest
neighbours and its farthest image (the row maximum), with no ``N × N`` matrix or argsort;
``V`` is a sparse CSR matrix with a few dozen nonzeros per row; Jaccard overlaps are
generated only for image pairs that share a nonzero of ``V``. Every other pair has Jaccard
distance exactly 1, so its final distance is ``(1 - λ) + λ·dn`` and it ranks by ``d``.
Queries are processed in chunks, so memory grows as ``N · k1 · k2`` plus
``chunk_size · G``, never ``Q × G`` (except for the dense output when you ask for it).
Time is dominated by the ``N² · D`` pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from fieldvision.errors import ConfigError, DataError
from fieldvision.retrieval.index import as_embeddings, check_same_dim, self_knn_and_farthest_l2

__all__ = ["RerankResult", "build_kreciprocal_graph", "rerank", "rerank_pair_distances"]

# Extra faiss neighbours fetched beyond what is needed, so that float32 near-ties can be
# re-sorted exactly in float64 before the lists are cut.
_KNN_MARGIN = 8
_PAIR_BATCH = 1 << 13
# Elements of the temporary arrays built per batch (neighbour-list comparisons, Jaccard
# overlap terms); bounds temporary memory to a few hundred MB.
_ENTRY_BUDGET = 1 << 23


@dataclass(frozen=True)
class RerankResult:
    """Re-ranked distances.

    Attributes:
        distances: ``float32[Q, G]`` for dense output, or ``float32[Q, top]`` sorted
            ascending for top-k output.
        indices: None for dense output, else ``int64[Q, top]`` gallery indices.
    """

    distances: np.ndarray
    indices: np.ndarray | None = None


@dataclass(frozen=True)
class KReciprocalGraph:
    """Per-image k-reciprocal encoding of a set of ``N`` images.

    Attributes:
        features: ``float32[N, D]`` embeddings.
        v: ``csr_array[N, N]`` float64, the (query-expanded) encoding ``V``; rows sum to 1.
        row_max: ``float64[N]``, the largest squared distance from each image (0 -> 1).
    """

    features: np.ndarray
    v: sparse.csr_array
    row_max: np.ndarray


def _check_params(k1: int, k2: int, lambda_value: float) -> None:
    if int(k1) != k1 or k1 < 1:
        raise ConfigError(f"rerank k1 must be an integer >= 1, got {k1}")
    if int(k2) != k2 or k2 < 1:
        raise ConfigError(f"rerank k2 must be an integer >= 1, got {k2}")
    if not 0.0 <= float(lambda_value) <= 1.0:
        raise ConfigError(f"rerank lambda_value must be in [0, 1], got {lambda_value}")


def _pair_sq_dist(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distance of rows ``x[a]`` and ``x[b]`` in float64, ``(P,)``.

    The difference form is exact for duplicate rows (0), so their ties stay exact ties.
    Rows are gathered in float32 and subtracted in float64 (the cast is exact).
    """
    out = np.empty(len(a), dtype=np.float64)
    for start in range(0, len(a), _PAIR_BATCH):
        stop = start + _PAIR_BATCH
        diff = np.subtract(x[a[start:stop]], x[b[start:stop]], dtype=np.float64)  # (p, D)
        out[start:stop] = np.einsum("pd,pd->p", diff, diff)
    return out


def _neighbour_table(
    x: np.ndarray, cuts: tuple[int, ...], block_size: int, num_threads: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest rows of every row (self included), exact at the list lengths in `cuts`.

    Only the *sets* ``nbr[i, :c]`` for ``c`` in `cuts` are used downstream, so a row's list
    must be exact at those cut points. One fused faiss pass finds ``max(cuts) + margin``
    candidates in float32 and each row's farthest row. Rows where a cut falls between two
    float32 distances closer than their rounding-error bound (ties, duplicates, near-ties)
    have their candidates recomputed in float64 and sorted by (distance, index), exactly as
    a full stable argsort orders them; elsewhere the float32 order is already exact there.

    Returns:
        ``(int64[N, max(cuts)] neighbour indices, float64[N] largest squared distance)``.
    """
    n, dim = x.shape
    k = max(cuts)
    dist32, cand, far = self_knn_and_farthest_l2(x, k + _KNN_MARGIN, block_size, num_threads)
    k_search = cand.shape[1]
    # Error bound of float32 |a|² + |b|² - 2a·b on centred rows: ~(D + 2)·u·(|a| + |b|)².
    centred = x - x.mean(axis=0, dtype=np.float64)
    norm = np.einsum("nd,nd->n", centred, centred)  # (N,)
    tol = 4.0 * (dim + 2) * float(np.finfo(np.float32).eps) * (norm + norm.max())  # (N,)
    ambiguous = np.zeros(n, dtype=bool)
    for cut in cuts:
        if 0 < cut < k_search:
            ambiguous |= dist32[:, cut] - dist32[:, cut - 1] <= tol
    rows = np.flatnonzero(ambiguous)
    step = max(1, _PAIR_BATCH // k_search)
    for start in range(0, rows.size, step):
        sub = rows[start : start + step]
        block = np.sort(cand[sub], axis=1)  # by index first ...
        diff = np.subtract(x[block], x[sub, None, :], dtype=np.float64)  # (b, ks, D)
        exact = np.einsum("bkd,bkd->bk", diff, diff)
        order = np.argsort(exact, axis=1, kind="stable")  # ... then stably by distance
        cand[sub] = np.take_along_axis(block, order, 1)
    row_max = _pair_sq_dist(x, np.arange(n), far)
    return cand[:, :k], row_max


def _reciprocal_mask(nbr: np.ndarray) -> np.ndarray:
    """``mask[i, a]``: row ``i`` is in the neighbour list of ``nbr[i, a]``; ``(N, k)`` bool."""
    n, k = nbr.shape
    mask = np.empty((n, k), dtype=bool)
    step = max(1, _ENTRY_BUDGET // (k * k))
    for start in range(0, n, step):
        back = nbr[nbr[start : start + step]]  # (b, k, k): lists of i's neighbours
        rows = np.arange(start, start + back.shape[0])[:, None, None]
        mask[start : start + step] = (back == rows).any(axis=2)
    return mask


def _encoding_support(nbr: np.ndarray, k1: int) -> np.ndarray:
    """Sorted keys ``i * N + j`` of the expanded k-reciprocal sets ``R*(i)``."""
    n = nbr.shape[0]
    fwd = nbr[:, : min(k1 + 1, n)]  # (N, k1 + 1)
    half = nbr[:, : min(int(np.around(k1 / 2.0)) + 1, n)]  # (N, kh + 1)
    recip, recip_half = _reciprocal_mask(fwd), _reciprocal_mask(half)
    r_set = np.where(recip, fwd, -1)  # (N, k1 + 1): R(i, k1), -1 for non-members
    parts = []
    step = max(1, _ENTRY_BUDGET // (fwd.shape[1] ** 2 * half.shape[1]))
    for start in range(0, n, step):
        pi, pa = np.nonzero(recip[start : start + step])
        pi = pi + start  # (P,) rows i, each with a candidate c in R(i, k1)
        pc = fwd[pi, pa]
        cand, cmask = half[pc], recip_half[pc]  # (P, kh + 1): R(c, kh) as list + mask
        in_r = (cand[:, :, None] == r_set[pi][:, None, :]).any(axis=2)  # (P, kh + 1)
        shared = cmask & in_r
        # Same float expression as the reference, so boundary cases compare identically.
        accept = shared.sum(axis=1) > (2.0 / 3.0) * cmask.sum(axis=1)
        ext_rows = np.broadcast_to(pi[accept, None], cand[accept].shape)[cmask[accept]]
        parts.append(pi * n + pc)
        parts.append(ext_rows * n + cand[accept][cmask[accept]])
    keys = np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
    return keys[np.concatenate([[True], keys[1:] != keys[:-1]])] if keys.size else keys


def build_kreciprocal_graph(
    features: np.ndarray,
    k1: int = 20,
    k2: int = 6,
    block_size: int = 2048,
    num_threads: int | None = None,
) -> KReciprocalGraph:
    """Build the sparse k-reciprocal encoding ``V`` of all rows of `features`.

    Args:
        features: ``float32[N, D]`` embeddings (the combined query + gallery set).
        k1: Size of the k-reciprocal neighbourhood.
        k2: Neighbours averaged by local query expansion (1 disables it).
        block_size: Tile size of the all-vs-all distance pass (memory ``block_size²``).
        num_threads: faiss threads; None uses the CPUs available to this process.

    Returns:
        The graph; memory is ``O(N · k1 · k2)``.
    """
    _check_params(k1, k2, 0.0)
    x = as_embeddings(features)
    n = x.shape[0]
    if n == 0:
        return KReciprocalGraph(x, sparse.csr_array((0, 0), dtype=np.float64), np.zeros(0))
    k_q = min(k2, n)
    # lists are cut at k1 + 1 (R(i, k1)), round(k1 / 2) + 1 (R(i, k1 / 2)) and k2 (QE)
    cuts = (min(k1 + 1, n), min(int(np.around(k1 / 2.0)) + 1, n), k_q)
    nbr, row_max = _neighbour_table(x, cuts, block_size, num_threads)  # (N, max(cuts))
    # All images identical: the reference divides 0 by 0; we take dn = 0 instead.
    row_max = np.where(row_max > 0, row_max, 1.0)

    keys = _encoding_support(nbr, k1)
    rows, cols = keys // n, keys % n  # sorted by row, then column
    weight = np.exp(-_pair_sq_dist(x, rows, cols) / row_max[rows])
    weight /= np.bincount(rows, weights=weight, minlength=n)[rows]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
    v = sparse.csr_array((weight, cols, indptr), shape=(n, n))
    if k2 != 1:  # local query expansion: mean of V over the k2 nearest images
        qe = sparse.csr_array(
            (np.full(n * k_q, 1.0 / k_q), nbr[:, :k_q].ravel(), np.arange(0, n * k_q + 1, k_q)),
            shape=(n, n),
        )
        v = (qe @ v).tocsr()
        v.sort_indices()
    return KReciprocalGraph(x, v, row_max)


def _row_batches(v_rows: sparse.csr_array, col_len: np.ndarray, chunk_size: int):
    """Split query rows into batches of at most `chunk_size` rows and ~_ENTRY_BUDGET entries."""
    cum = np.concatenate([[0], np.cumsum(col_len[v_rows.indices])])
    per_row = cum[v_rows.indptr[1:]] - cum[v_rows.indptr[:-1]]  # overlap terms per query row
    start, n_rows = 0, v_rows.shape[0]
    while start < n_rows:
        stop, total = start, 0
        while stop < n_rows and stop - start < chunk_size:
            if stop > start and total + per_row[stop] > _ENTRY_BUDGET:
                break
            total += per_row[stop]
            stop += 1
        yield start, stop
        start = stop


def _overlap_sums(
    a_rows: sparse.csr_array, g_csc: sparse.csc_array
) -> tuple[np.ndarray, np.ndarray]:
    """``S[r, j] = Σ_l min(A[r, l], G[j, l])`` for the pairs sharing a nonzero.

    Every (row, shared column, gallery row) term is generated once; pairs that share no
    nonzero never appear, so the work is ``Σ_l nnz(A[:, l]) · nnz(G[:, l])`` plus one
    zero-filled ``(R, G)`` accumulator.

    Returns:
        ``(flat, sums)``: flat indices ``r * G + j`` of the sharing pairs (with repeats) and
        ``S`` at those indices.
    """
    n_rows, n_gal = a_rows.shape[0], g_csc.shape[0]
    entry_row = np.repeat(np.arange(n_rows) * n_gal, np.diff(a_rows.indptr))  # (E,) r * G
    starts = g_csc.indptr[a_rows.indices]
    lens = g_csc.indptr[a_rows.indices + 1] - starts  # gallery rows sharing each column
    # position in g_csc of every overlap term: its column's start + its offset in the column
    shift = starts - (np.cumsum(lens) - lens)  # (E,)
    pos = np.arange(int(lens.sum())) + np.repeat(shift, lens)  # (T,)
    mins = np.minimum(np.repeat(a_rows.data, lens), g_csc.data[pos])  # (T,)
    flat = np.repeat(entry_row, lens) + g_csc.indices[pos]  # (T,) r * G + j
    sums = np.bincount(flat, weights=mins, minlength=n_rows * n_gal)  # (R * G,)
    return flat, sums[flat]


def rerank(
    query: np.ndarray,
    gallery: np.ndarray,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    top: int | None = None,
    chunk_size: int = 256,
    num_threads: int | None = None,
    block_size: int = 2048,
) -> RerankResult:
    """k-reciprocal re-ranking of a gallery for every query (see the module docstring).

    Args:
        query: ``float32[Q, D]`` embeddings (L2-normalised for cosine retrieval).
        gallery: ``float32[G, D]`` embeddings.
        k1: k-reciprocal neighbourhood size (paper default 20).
        k2: Local query expansion size (paper default 6; 1 disables it).
        lambda_value: Weight of the original distance in the final distance.
        top: None for the dense ``Q × G`` matrix; an integer for the `top` best gallery
            items per query (``min(top, G)`` columns), computed without a ``Q × G`` matrix.
        chunk_size: Query rows processed together.
        num_threads: faiss threads; None uses the CPUs available to this process.
        block_size: Tile size of the all-vs-all neighbour pass.

    Returns:
        RerankResult with final distances in [0, 1] (and gallery indices for `top`).

    Raises:
        DataError: Non-2-D or non-finite input, or a dimension mismatch.
        ConfigError: Invalid k1, k2, lambda_value or top.
    """
    _check_params(k1, k2, lambda_value)
    if top is not None and (int(top) != top or top < 0):
        raise ConfigError(f"rerank top must be None or an integer >= 0, got {top}")
    query = as_embeddings(query, "query")
    gallery = as_embeddings(gallery, "gallery")
    check_same_dim(query, gallery)
    n_q, n_g = query.shape[0], gallery.shape[0]
    n_top = None if top is None else min(int(top), n_g)
    if n_q == 0 or n_g == 0 or n_top == 0:
        width = n_g if n_top is None else n_top
        dist = np.zeros((n_q, width), np.float32)
        return RerankResult(dist, None if n_top is None else np.zeros((n_q, width), np.int64))

    graph = build_kreciprocal_graph(np.vstack([query, gallery]), k1, k2, block_size, num_threads)
    g_csc = graph.v[n_q:].tocsc()  # (G, N): which gallery rows hold each column
    q_rows = graph.v[:n_q]
    # float64: with tightly clustered embeddings the row maxima are small, and float32
    # cancellation in |q|² + |g|² - 2 q·g would be magnified by 1 / row_max.
    gallery64 = gallery.astype(np.float64)
    g_norm = np.einsum("gd,gd->g", gallery64, gallery64)  # (G,)
    ones = np.ones((n_g, 1))
    gal_aug = np.hstack([gallery64, ones, g_norm[:, None]])  # (G, D + 2)
    out_d = np.empty((n_q, n_g if n_top is None else n_top), np.float32)
    out_i = None if n_top is None else np.empty((n_q, n_top), np.int64)
    for start, stop in _row_batches(q_rows, np.diff(g_csc.indptr), chunk_size):
        q = query[start:stop].astype(np.float64)
        scale = lambda_value / graph.row_max[start:stop]  # (c,)
        q_norm = np.einsum("qd,qd->q", q, q)
        # One matmul gives (1 - λ) + λ·dn for every gallery item: the final distance of
        # pairs that share no nonzero of V (Jaccard distance exactly 1).
        q_aug = np.hstack(
            [
                q * (-2.0 * scale)[:, None],
                (scale * q_norm + (1.0 - lambda_value))[:, None],
                scale[:, None],
            ]
        )  # (c, D + 2)
        final = q_aug @ gal_aug.T  # (c, G) float64
        np.maximum(final, 1.0 - lambda_value, out=final)  # d >= 0
        flat, shared = _overlap_sums(q_rows[start:stop], g_csc)
        # (1 - λ)·jaccard + λ·dn with jaccard = 1 - S / (2 - S): rows of V sum to 1, so
        # Σmax = 2 - Σmin. Repeated flat indices write the same value.
        final.reshape(-1)[flat] -= (1.0 - lambda_value) * shared / (2.0 - shared)
        if out_i is None:
            out_d[start:stop] = final
            continue
        if n_top < n_g:
            part = np.argpartition(final, n_top - 1, axis=1)[:, :n_top]  # (c, top) unordered
        else:
            part = np.broadcast_to(np.arange(n_g), final.shape)
        part = np.sort(part, axis=1)  # ties keep gallery order after the stable sort below
        vals = np.take_along_axis(final, part, 1)
        order = np.argsort(vals, axis=1, kind="stable")
        out_d[start:stop] = np.take_along_axis(vals, order, 1)
        out_i[start:stop] = np.take_along_axis(part, order, 1)
    return RerankResult(out_d, out_i)


def rerank_pair_distances(
    embeddings: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    symmetric: bool = True,
    num_threads: int | None = None,
) -> np.ndarray:
    """Re-ranked distances for listed pairs, every image being both query and gallery.

    The combined set is `embeddings` itself (each image once). Only the listed pairs are
    scored, from the sparse encoding: ``O(N · k1 · k2 + P · k1 · k2)`` memory.

    Args:
        embeddings: ``float32[N, D]``.
        first: ``int[P]`` row indices of the first images.
        second: ``int[P]`` row indices of the second images.
        k1, k2, lambda_value: As in :func:`rerank`.
        symmetric: Average ``final(a, b)`` and ``final(b, a)`` (they differ only through the
            per-row normalisation of the original distance); otherwise ``final(a, b)``.
        num_threads: faiss threads.

    Returns:
        ``float32[P]`` final distances in [0, 1].

    Raises:
        DataError: On non-finite embeddings or pair indices out of range.
        ConfigError: Invalid k1, k2 or lambda_value.
    """
    _check_params(k1, k2, lambda_value)
    x = as_embeddings(embeddings)
    first = np.asarray(first, dtype=np.int64).ravel()
    second = np.asarray(second, dtype=np.int64).ravel()
    if first.shape != second.shape:
        raise DataError(f"got {first.size} first and {second.size} second pair indices")
    for name, idx in (("first", first), ("second", second)):
        bad = np.flatnonzero((idx < 0) | (idx >= x.shape[0]))
        if bad.size:
            raise DataError(
                f"pair row {bad[0]}: {name} index {idx[bad[0]]} is outside the "
                f"{x.shape[0]} embeddings"
            )
    if first.size == 0:
        return np.zeros(0, np.float32)
    graph = build_kreciprocal_graph(x, k1, k2, num_threads=num_threads)
    shared = np.empty(first.size, dtype=np.float64)
    for start in range(0, first.size, _PAIR_BATCH):
        stop = start + _PAIR_BATCH
        va, vb = graph.v[first[start:stop]], graph.v[second[start:stop]]  # (p, N) each
        shared[start:stop] = np.asarray(va.minimum(vb).sum(axis=1)).ravel()
    jaccard = 1.0 - shared / (2.0 - shared)
    d = _pair_sq_dist(graph.features, first, second)
    dn = d / graph.row_max[first]
    if symmetric:
        dn = 0.5 * (dn + d / graph.row_max[second])
    final = (1.0 - lambda_value) * jaccard + lambda_value * dn
    return np.clip(final, 0.0, 1.0).astype(np.float32)
