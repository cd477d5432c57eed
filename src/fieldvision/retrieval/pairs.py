"""Similarity in [0, 1] for listed image pairs (the Kaggle Jaguar Re-ID submission format).

Two scores are offered:

* :func:`pair_similarities`: ``(cos + 1) / 2`` of the two embeddings, clipped to [0, 1].
* :func:`rerank_pair_similarities`: ``1 - final`` where ``final`` is the k-reciprocal
  re-ranked distance (in [0, 1]) with every image acting as both query and gallery,
  averaged over both directions of the pair (the two directions differ only in the
  per-image normalisation of the original distance). ``1 - final`` is monotone, so it
  keeps the re-ranked order, and needs no calibration set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from fieldvision.errors import DataError
from fieldvision.retrieval.index import as_embeddings
from fieldvision.retrieval.rerank import rerank_pair_distances

__all__ = ["pair_similarities", "rerank_pair_similarities", "resolve_pairs"]


def resolve_pairs(
    index_of: Mapping[str, int], pairs: Sequence[tuple[str, str]], n_rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """Map image-name pairs to embedding rows.

    Args:
        index_of: Image name -> row of the embedding matrix.
        pairs: ``(name_a, name_b)`` rows.
        n_rows: Rows of the embedding matrix (indices must be below it).

    Returns:
        ``(int64[P], int64[P])`` row indices.

    Raises:
        DataError: Naming the first malformed row, unknown image name or bad index.
    """
    first = np.empty(len(pairs), dtype=np.int64)
    second = np.empty(len(pairs), dtype=np.int64)
    for row, pair in enumerate(pairs):
        if isinstance(pair, str) or len(pair) != 2:
            raise DataError(f"pair row {row}: expected two image names, got {pair!r}")
        for out, name in zip((first, second), pair, strict=True):
            index = index_of.get(name)
            if index is None:
                raise DataError(
                    f"pair row {row}: unknown image name {name!r}",
                    hint="every image in the pair list needs an embedding",
                )
            if not 0 <= int(index) < n_rows:
                raise DataError(
                    f"pair row {row}: image {name!r} maps to row {index}, "
                    f"outside the {n_rows} embeddings"
                )
            out[row] = int(index)
    return first, second


def pair_similarities(
    embeddings: np.ndarray,
    index_of: Mapping[str, int],
    pairs: Sequence[tuple[str, str]],
) -> np.ndarray:
    """Cosine similarity of each pair mapped to [0, 1] as ``(cos + 1) / 2``.

    Args:
        embeddings: ``float32[N, D]`` embeddings (normalised here, zero rows give 0.5).
        index_of: Image name -> embedding row.
        pairs: ``(name_a, name_b)`` rows.

    Returns:
        ``float32[P]`` similarities in [0, 1].
    """
    x = as_embeddings(embeddings)
    a, b = resolve_pairs(index_of, pairs, x.shape[0])
    xa, xb = x[a].astype(np.float64), x[b].astype(np.float64)  # (P, D)
    norms = np.linalg.norm(xa, axis=1) * np.linalg.norm(xb, axis=1)
    cos = np.einsum("pd,pd->p", xa, xb) / np.maximum(norms, 1e-12)
    return np.clip((cos + 1.0) / 2.0, 0.0, 1.0).astype(np.float32)


def rerank_pair_similarities(
    embeddings: np.ndarray,
    index_of: Mapping[str, int],
    pairs: Sequence[tuple[str, str]],
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
) -> np.ndarray:
    """k-reciprocal re-ranked similarity ``1 - final`` of each pair (see module docstring).

    All `embeddings` form the re-ranking set (each image is query and gallery once); only
    the listed pairs are scored, from the sparse encoding, so memory stays ``O(N · k1)``.

    Args:
        embeddings: ``float32[N, D]`` L2-normalised embeddings.
        index_of: Image name -> embedding row.
        pairs: ``(name_a, name_b)`` rows.
        k1, k2, lambda_value: Re-ranking parameters (see ``rerank``).

    Returns:
        ``float32[P]`` similarities in [0, 1].
    """
    x = as_embeddings(embeddings)
    a, b = resolve_pairs(index_of, pairs, x.shape[0])
    final = rerank_pair_distances(x, a, b, k1=k1, k2=k2, lambda_value=lambda_value)
    return np.clip(1.0 - final, 0.0, 1.0).astype(np.float32)
