"""Query expansion: average QE (Chum et al. 2007), αQE (Radenović et al. 2018), DBA.

Each query is replaced by a weighted sum of itself and its `k` most similar gallery
embeddings, then re-normalised, so that it also matches views its nearest neighbours
match. With ``also_gallery=True`` the gallery is first expanded the same way over its own
neighbours (database-side augmentation, DBA; an item is not its own neighbour), and
queries are expanded against the expanded gallery. Similarity is the inner product of
L2-normalised rows (cosine).
"""

from __future__ import annotations

import numpy as np

from fieldvision.errors import ConfigError
from fieldvision.retrieval.index import as_embeddings, check_same_dim, knn

__all__ = ["alpha_query_expansion", "average_query_expansion"]


def _normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm; all-zero rows stay zero. ``float32[N, D]``."""
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)


def _expand(
    rows: np.ndarray, base: np.ndarray, k: int, alpha: float | None, exclude_self: bool
) -> np.ndarray:
    """``rows + Σ_top-k w·base`` re-normalised; ``w = 1`` (alpha None) or ``max(sim, 0)^α``."""
    sim, idx = knn(rows, base, k, exclude_self=exclude_self)  # (R, k') each
    # αQE: negative cosines add nothing (and a fractional power of them is undefined)
    weight = np.ones_like(sim) if alpha is None else np.maximum(sim, 0.0) ** np.float32(alpha)
    out = rows.astype(np.float64)
    for j in range(idx.shape[1]):  # k is small; avoids an (R, k, D) temporary
        out += weight[:, j : j + 1] * base[idx[:, j]]
    return _normalise(out)


def _run(
    query: np.ndarray, gallery: np.ndarray, k: int, alpha: float | None, also_gallery: bool
) -> tuple[np.ndarray, np.ndarray]:
    if int(k) != k or k < 0:
        raise ConfigError(f"query expansion k must be an integer >= 0, got {k}")
    if alpha is not None and not alpha >= 0:
        raise ConfigError(f"query expansion alpha must be >= 0, got {alpha}")
    if k == 0:
        return query, gallery
    query = as_embeddings(query, "query")
    gallery = as_embeddings(gallery, "gallery")
    check_same_dim(query, gallery)
    if also_gallery:
        gallery = _expand(gallery, gallery, k, alpha, exclude_self=True)
    return _expand(query, gallery, k, alpha, exclude_self=False), gallery


def average_query_expansion(
    query: np.ndarray, gallery: np.ndarray, k: int, also_gallery: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Average query expansion: mean of the query and its top-`k` gallery neighbours.

    Args:
        query: ``float32[Q, D]`` L2-normalised embeddings.
        gallery: ``float32[G, D]`` L2-normalised embeddings.
        k: Neighbours averaged in; 0 returns the inputs unchanged.
        also_gallery: Expand the gallery over its own neighbours first (DBA).

    Returns:
        ``(query', gallery')``, L2-normalised ``float32`` (gallery unchanged unless
        `also_gallery`).
    """
    return _run(query, gallery, k, None, also_gallery)


def alpha_query_expansion(
    query: np.ndarray,
    gallery: np.ndarray,
    k: int,
    alpha: float = 3.0,
    also_gallery: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """αQE: the query plus its top-`k` neighbours weighted by ``max(cos, 0)^alpha``.

    ``alpha = 0`` reduces to average QE; larger values trust only the closest neighbours.

    Args:
        query: ``float32[Q, D]`` L2-normalised embeddings.
        gallery: ``float32[G, D]`` L2-normalised embeddings.
        k: Neighbours weighted in; 0 returns the inputs unchanged.
        alpha: Exponent on the cosine similarity.
        also_gallery: Expand the gallery over its own neighbours first (αDBA).

    Returns:
        ``(query', gallery')``, L2-normalised ``float32``.
    """
    return _run(query, gallery, k, float(alpha), also_gallery)
