"""Ranking a gallery for every query from embedding files (QE, re-ranking)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from fieldvision.data.reid import load_embeddings
from fieldvision.errors import DataError
from fieldvision.io import write_csv

__all__ = ["search"]


def search(
    query: str | os.PathLike[str],
    gallery: str | os.PathLike[str],
    out: str | os.PathLike[str],
    top: int = 10,
    qe: int = 0,
    rerank: bool = False,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
) -> pd.DataFrame:
    """Rank gallery images for every query; write ``ranks.csv``.

    An image present in both files (same name) is never returned for itself.

    Returns:
        Table ``query, rank, gallery, score`` (+ ``same_identity`` when both files carry
        identities); score is the cosine similarity, or ``1 - re-ranked distance``.

    Raises:
        DataError: Unreadable files or embeddings of different dimensions.
    """
    from fieldvision.retrieval.expansion import average_query_expansion
    from fieldvision.retrieval.index import knn
    from fieldvision.retrieval.rerank import rerank as rerank_fn

    if top < 1:
        raise DataError(f"--top must be at least 1, got {top}")
    q_set, g_set = load_embeddings(query), load_embeddings(gallery)
    if len(q_set) and len(g_set) and q_set.dim != g_set.dim:
        raise DataError(
            f"{query} has {q_set.dim}-dimensional embeddings but {gallery} has {g_set.dim}",
            hint="embed query and gallery with the same run",
        )
    q, g = q_set.embeddings, g_set.embeddings
    if qe > 0 and len(q) and len(g):
        q, g = average_query_expansion(q, g, qe, also_gallery=True)
    g_index = g_set.index_of()
    self_col = np.array([g_index.get(n, -1) for n in q_set.names], np.int64)  # (Q,)
    want = min(top + 1, len(g_set))
    if rerank and len(q) and len(g):
        res = rerank_fn(q, g, k1=k1, k2=k2, lambda_value=lambda_value, top=want)
        idx, score = res.indices, 1.0 - res.distances
    else:
        score, idx = knn(q, g, want)
    rows: list[dict[str, Any]] = []
    for i, name in enumerate(q_set.names):
        keep = idx[i] != self_col[i]
        for rank, (j, s) in enumerate(zip(idx[i][keep][:top], score[i][keep][:top], strict=True)):
            row = {"query": name, "rank": rank + 1, "gallery": g_set.names[j], "score": float(s)}
            if q_set.identities is not None and g_set.identities is not None:
                row["same_identity"] = q_set.identities[i] == g_set.identities[j]
            rows.append(row)
    columns = ["query", "rank", "gallery", "score"]
    if q_set.identities is not None and g_set.identities is not None:
        columns.append("same_identity")
    table = pd.DataFrame(rows, columns=columns)
    write_csv(out, table)
    return table


# --------------------------------------------------------------------------- pairs
