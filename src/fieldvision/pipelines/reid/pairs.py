"""Pair similarities in [0, 1] (cosine, QE, re-ranking) and the Kaggle pairs submission."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from fieldvision.config import apply_runtime_overrides
from fieldvision.errors import DataError
from fieldvision.io import write_csv
from fieldvision.pipelines.reid.config import InferenceSection
from fieldvision.pipelines.reid.data import image_reader, load_data
from fieldvision.pipelines.reid.embed import embed_images, load_run

__all__ = ["expanded", "pair_scores", "pairs", "rerank_params"]


def expanded(emb: np.ndarray, inf: InferenceSection) -> np.ndarray:
    """Every row query-expanded against the set itself (αQE when ``qe_alpha`` is set)."""
    from fieldvision.retrieval.expansion import alpha_query_expansion, average_query_expansion

    if inf.qe_k <= 0 or len(emb) < 2:
        return emb
    if inf.qe_alpha is None:
        return average_query_expansion(emb, emb, inf.qe_k, also_gallery=inf.qe_dba)[0]
    return alpha_query_expansion(emb, emb, inf.qe_k, inf.qe_alpha, also_gallery=inf.qe_dba)[0]


def rerank_params(inf: InferenceSection, n: int) -> tuple[int, int]:
    """``(k1, k2)`` clipped to a set of `n` images (neighbour lists cannot be longer)."""
    k1 = max(1, min(inf.rerank_k1, n - 1))
    return k1, max(1, min(inf.rerank_k2, k1))


def pair_scores(
    emb: np.ndarray,
    index_of: dict[str, int],
    pair_list: Sequence[tuple[str, str]],
    inf: InferenceSection,
    method: str | None = None,
) -> np.ndarray:
    """Similarity in [0, 1] of each pair, by `method` (default ``inf.pair_score``):
    ``cosine``, ``qe``, ``rerank`` or ``qe_rerank`` (every image is query and gallery)."""
    from fieldvision.retrieval.pairs import pair_similarities, rerank_pair_similarities

    method = method or inf.pair_score
    x = expanded(emb, inf) if method in ("qe", "qe_rerank") else emb
    if method in ("cosine", "qe") or len(x) < 2:
        return pair_similarities(x, index_of, pair_list)
    k1, k2 = rerank_params(inf, len(x))
    return rerank_pair_similarities(x, index_of, pair_list, k1, k2, inf.rerank_lambda)


def pairs(
    run: str | os.PathLike[str],
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    progress: bool = True,
    overrides: Sequence[str] = (),
) -> pd.DataFrame:
    """Write the Kaggle submission: one similarity in [0, 1] per row of the pairs file.

    Returns:
        The submission table (``row_id, similarity`` with the configured names), in the
        order of the pairs file.
    """
    _, cfg, model = load_run(run)
    cfg = apply_runtime_overrides(cfg, overrides)
    dc = cfg.data
    kag = load_data(data, dc, require_test=True).kaggle
    test = kag.test if kag is not None else None
    table = kag.pairs if kag is not None else None
    if test is None or table is None:  # load_data(require_test=True) already raised
        raise DataError(f"{data}: no pairs file {dc.test_csv}")
    emb = embed_images(
        model,
        test.paths,
        tuple(dc.image_size),  # type: ignore[arg-type]
        cfg.inference.batch_size,
        cfg.inference.tta,
        device=cfg.train.device,
        progress=progress,
        reader=image_reader(dc),
    )
    pair_list = list(zip(table["query_image"], table["gallery_image"], strict=True))
    scores = pair_scores(emb, {n: i for i, n in enumerate(test.names)}, pair_list, cfg.inference)
    submission = pd.DataFrame({dc.row_id_column: table["row_id"], dc.similarity_column: scores})
    write_csv(out, submission)
    return submission
