"""Re-identification evaluation: raw / +QE / +re-rank retrieval metrics on any labelled
dataset, the background-reliance diagnostic and the report.

Sets evaluated:

* the chosen set of ``--data`` under a protocol (`protocols`): ``validation`` when it is
  the run's own data (default protocol: the run's), ``evaluation`` for any other labelled
  dataset (default protocol ``all``: every image queries all the others);
* ``test``: the Kaggle test images when their identities are known (``test_truth.csv``, as
  the synthetic data has): every image queries all the others, the competition's setting;
  the pair ROC-AUC of the submission scores over the pairs file is reported too.

Camera / site ids from the data (a ``camera`` column or camera sub-folders) feed the
same-identity-same-camera exclusion; without them each image is its own camera, which only
removes the query itself. Re-ranking treats the set as one collection (each image is query
and gallery once), exactly as the pair submission does.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fieldvision.console import console
from fieldvision.data.images import read_rgba
from fieldvision.data.reid import ReIDSamples
from fieldvision.errors import DataError, RunError
from fieldvision.metrics.retrieval import (
    evaluate_ranking,
    identity_balanced_map,
    pair_roc_auc,
    per_identity_ap,
)
from fieldvision.pipelines.reid.background import background_reliance
from fieldvision.pipelines.reid.config import InferenceSection, ReIDPipelineConfig
from fieldvision.pipelines.reid.data import ReIDData, image_reader, load_data
from fieldvision.pipelines.reid.embed import embed_images, load_run
from fieldvision.pipelines.reid.fit import SPLIT_FILE
from fieldvision.pipelines.reid.pairs import expanded, pair_scores, rerank_params
from fieldvision.pipelines.reid.protocols import PROTOCOLS, evaluation_set
from fieldvision.report.reid import RetrievalExample, write_reid_report

__all__ = ["VARIANTS", "evaluate", "evaluate_set", "variant_distances"]

VARIANTS = ("raw", "+QE", "+re-rank", "+QE +re-rank")


def variant_distances(
    emb: np.ndarray, q_idx: np.ndarray, inf: InferenceSection, variant: str
) -> np.ndarray:
    """Distances ``float[Q, N]`` of the queries ``emb[q_idx]`` to every item of the set.

    ``raw``: ``1 - cos``; ``+QE``: the same after query expansion of every item;
    ``+re-rank`` / ``+QE +re-rank``: the k-reciprocal final distance with the set as one
    collection.
    """
    from fieldvision.retrieval.rerank import rerank_pair_distances

    x = expanded(emb, inf) if "QE" in variant else emb
    if "re-rank" not in variant or len(x) < 2:
        return 1.0 - x[q_idx] @ x.T
    n = len(x)
    k1, k2 = rerank_params(inf, n)
    first = np.repeat(q_idx, n)
    second = np.tile(np.arange(n), len(q_idx))
    final = rerank_pair_distances(x, first, second, k1, k2, inf.rerank_lambda, symmetric=False)
    return final.reshape(len(q_idx), n)


def _metrics(dist: np.ndarray, ids: np.ndarray, q_idx: np.ndarray, cams: np.ndarray) -> dict:
    res = evaluate_ranking(dist, ids[q_idx], ids, cams[q_idx], cams, max_rank=10)
    valid_ids = ids[q_idx][res.valid_query_mask]
    out: dict[str, Any] = res.as_dict()
    out["identity_balanced_mAP"] = identity_balanced_map(res.per_query_ap, valid_ids)
    # Pair ROC-AUC over every (query, gallery item) pair the camera rule keeps.
    same = ids[q_idx][:, None] == ids[None, :]  # (Q, N)
    keep = ~(same & (cams[q_idx][:, None] == cams[None, :]))
    try:
        out["pair_roc_auc"] = pair_roc_auc(-dist[keep], same[keep])
    except DataError:
        out["pair_roc_auc"] = float("nan")
    out["cmc"] = [float(v) for v in res.cmc]
    out["_per_identity"] = per_identity_ap(res.per_query_ap, valid_ids)
    return out


def evaluate_set(
    emb: np.ndarray,
    identities: Sequence[str],
    query_mask: np.ndarray,
    inf: InferenceSection,
    cams: np.ndarray | None = None,
) -> dict[str, dict[str, Any]]:
    """Metrics of every variant for one set (see module docstring).

    Args:
        emb: float32[N, E] embeddings of the set.
        identities: N identities.
        query_mask: bool[N] queries.
        inf: Inference settings (QE, re-ranking).
        cams: Camera id per item (default: one per image).

    Returns:
        ``{variant: metrics}`` with mAP, mINP, rank1/5/10, identity_balanced_mAP,
        pair_roc_auc, cmc, and (private) ``_per_identity`` and ``_dist``.

    Raises:
        DataError: No query with a match.
    """
    ids = np.asarray(identities)
    cams = np.arange(len(ids)) if cams is None else np.asarray(cams)
    q_idx = np.flatnonzero(query_mask)
    if len(q_idx) == 0:
        raise DataError("no usable queries: every identity has a single image")
    out = {}
    for variant in VARIANTS:
        dist = variant_distances(emb, q_idx, inf, variant)
        m = _metrics(dist, ids, q_idx, cams)
        m["_dist"] = dist
        out[variant] = m
    return out


def _has_alpha(paths: Sequence[Path], limit: int = 16) -> bool:
    return any((read_rgba(p)[..., 3] < 255).any() for p in list(paths)[:limit])


def _examples(
    samples: ReIDSamples, dist: np.ndarray, q_idx: np.ndarray, n: int = 4, top: int = 5
) -> list[RetrievalExample]:
    ids = np.asarray(samples.identities)
    out = []
    picks = np.linspace(0, len(q_idx) - 1, num=min(n, len(q_idx))).round().astype(int)
    for row in picks:
        qi = q_idx[row]
        order = [j for j in np.argsort(dist[row], kind="stable") if j != qi][:top]
        out.append(
            RetrievalExample(
                query=read_rgba(samples.paths[qi])[..., :3],
                gallery=[read_rgba(samples.paths[j])[..., :3] for j in order],
                correct=[bool(ids[j] == ids[qi]) for j in order],
                title=str(ids[qi]),
            )
        )
    return out


def _public(variants: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {v: {k: x for k, x in m.items() if not k.startswith("_")} for v, m in variants.items()}


def _read_split(run: Path) -> dict[str, Any]:
    path = run / SPLIT_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise RunError(f"{path}: missing or unreadable", hint="train the run again") from None


def evaluate(
    run: str | os.PathLike[str],
    data: str | os.PathLike[str],
    protocol: str | None = None,
    progress: bool = True,
    report: bool = True,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """Evaluate a trained run on a labelled dataset; write metrics.json and report.md.

    Args:
        run: Finished run directory.
        data: Any labelled dataset (the run's own, or new animals / new photos).
        protocol: ``closed``, ``open`` or ``all`` (see `protocols`); default: the run's
            protocol on its own data, ``all`` on other data.
        progress: Progress bars.
        report: Write ``report.md`` and figures.
        overrides: ``--set`` values of runtime fields (QE, re-ranking, device, ...).

    Returns:
        ``{"protocol", "own_data", "sets": {name: {"variants": {variant: metrics}, ...}},
        "background": {...} or None}``.

    Raises:
        DataError: Unlabelled data, or a protocol without usable queries on it.
    """
    from fieldvision.config import apply_runtime_overrides

    run_dir, cfg, model = load_run(run)
    cfg = apply_runtime_overrides(cfg, overrides)
    if protocol is not None and protocol not in PROTOCOLS:
        raise DataError(f"--protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    split = _read_split(run_dir.path)
    d = load_data(data, cfg.data)
    samples = d.samples
    names = set(samples.names)
    trained_names = split["train"]
    own = all(n in names for n in trained_names + split["heldout"])
    run_protocol = split.get("protocol", "closed")
    protocol = protocol or (run_protocol if own else "all")
    trained_ids: set[str] = set()
    if own:
        lookup = dict(zip(samples.names, samples.identities or (), strict=True))
        trained_ids = {lookup[n] for n in trained_names}
    else:
        # Identities of the training images, as recorded by the run's own data reader.
        trained_ids = set(split.get("train_identities", []))
    chosen = evaluation_set(samples, protocol, trained_names, trained_ids)
    items, qmask = chosen.samples, chosen.query_mask
    size = tuple(cfg.data.image_size)
    dev, inf, reader = cfg.train.device, cfg.inference, image_reader(cfg.data)
    set_name = "validation" if own and protocol == run_protocol else "evaluation"
    emb = embed_images(
        model,
        items.paths,
        size,  # type: ignore[arg-type]
        inf.batch_size,
        inf.tta,
        device=dev,
        progress=progress,
        description=f"embedding {set_name} images",
        reader=reader,
    )
    variants = evaluate_set(emb, items.identities or (), qmask, inf, chosen.cams)
    sets: dict[str, dict[str, Any]] = {
        set_name: {
            "variants": _public(variants),
            "n_queries": int(qmask.sum()),
            "n_gallery": len(items) - 1,
            "cameras": items.cameras is not None,
            "warning": chosen.warning,
        }
    }
    curves = {set_name: {v: m["cmc"] for v, m in variants.items()}}
    per_identity = variants["raw"]["_per_identity"]
    q_idx = np.flatnonzero(qmask)
    examples = _examples(items, variants["raw"]["_dist"], q_idx) if report else []

    test = d.kaggle.test if d.kaggle is not None else None
    if test is not None and test.labelled and len(test) >= 2:
        with_test = _evaluate_test(model, test, d, cfg, progress, reader)
        if with_test is not None:
            sets["test"], curves["test"] = with_test

    background = None
    if split.get("with_mask", False) and cfg.data.use_mask != "no" and _has_alpha(items.paths):
        background = background_reliance(
            model,
            items,
            emb,
            q_idx,
            size,
            inf,
            dev,
            cfg.seed,
            chosen.cams,
            reader,  # type: ignore[arg-type]
        )
    results = {"protocol": protocol, "own_data": own, "sets": sets, "background": background}
    run_dir.update_metrics("evaluate", results)
    if report:
        write_reid_report(
            run_dir.path,
            results,
            curves,
            per_identity,
            examples,
            run_dir.path / "train" / "metrics.csv",
        )
    if chosen.warning:
        console.print(f"[yellow]warning:[/] {chosen.warning}")
    return results


def _evaluate_test(
    model: Any,
    test: ReIDSamples,
    d: ReIDData,
    cfg: ReIDPipelineConfig,
    progress: bool,
    reader: Callable[[Path], np.ndarray],
) -> tuple[dict[str, Any], dict[str, list[float]]] | None:
    """The Kaggle test set with known identities: every image queries all the others."""
    inf = cfg.inference
    try:
        chosen = evaluation_set(test, "all")
    except DataError:
        return None
    t_emb = embed_images(
        model,
        test.paths,
        tuple(cfg.data.image_size),
        inf.batch_size,
        inf.tta,
        device=cfg.train.device,
        progress=progress,
        description="embedding test images",
        reader=reader,
    )
    t_var = evaluate_set(t_emb, test.identities or (), chosen.query_mask, inf, chosen.cams)
    block: dict[str, Any] = {
        "variants": _public(t_var),
        "n_queries": int(chosen.query_mask.sum()),
        "n_gallery": len(test) - 1,
        "cameras": test.cameras is not None,
        "warning": chosen.warning,
    }
    table = d.kaggle.pairs if d.kaggle is not None else None
    if table is not None and len(table):
        lookup = dict(zip(test.names, test.identities or (), strict=True))
        plist = list(zip(table["query_image"], table["gallery_image"], strict=True))
        scores = pair_scores(t_emb, {n: i for i, n in enumerate(test.names)}, plist, inf)
        labels = np.array([lookup[a] == lookup[b] for a, b in plist])
        try:
            block["pair_auc_submission"] = pair_roc_auc(scores, labels)
        except DataError:
            block["pair_auc_submission"] = None
        block["pair_score"] = inf.pair_score
    return block, {v: m["cmc"] for v, m in t_var.items()}
