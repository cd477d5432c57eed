"""Retrieval post-processing: exact kNN (faiss), query expansion, re-ranking, pair scores.

The re-ranking function is ``fieldvision.retrieval.rerank.rerank``; it is not re-exported
here because its name would shadow the ``rerank`` submodule.
"""

from fieldvision.retrieval.expansion import alpha_query_expansion, average_query_expansion
from fieldvision.retrieval.index import knn
from fieldvision.retrieval.pairs import pair_similarities, rerank_pair_similarities
from fieldvision.retrieval.rerank import RerankResult, rerank_pair_distances

__all__ = [
    "RerankResult",
    "alpha_query_expansion",
    "average_query_expansion",
    "knn",
    "pair_similarities",
    "rerank_pair_distances",
    "rerank_pair_similarities",
]
