"""Re-identification evaluation: raw / +QE / +re-rank retrieval metrics, the
background-reliance diagnostic and the report.

Sets evaluated:

* ``validation``: the run's held-out split (``split.json``). closed protocol: held-out
  images query every other image of the training data; open: held-out identities' images
  query each other.
* ``test``: the Kaggle test images when identities are known (``test_truth.csv``, as the
  synthetic data has): every image queries all the others, the competition's setting; the
  pair ROC-AUC of the submission scores over the pairs file is reported too.

Within a set the query is also in the gallery; it is removed from its own ranking through a
per-image camera id (torchreid's same-identity-same-camera rule), so only the image itself
is dropped. Re-ranking treats the set as one collection (each image is query and gallery
once), exactly as the pair submission does.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fieldvision.console import console
from fieldvision.data.images import read_rgba
from fieldvision.data.reid import ReIDSamples, closed_set_queries
from fieldvision.errors import DataError, RunError
from fieldvision.metrics.retrieval import (
    evaluate_ranking,
    identity_balanced_map,
    pair_roc_auc,
    per_identity_ap,
)
from fieldvision.pipelines.reid import (
    SPLIT_FILE,
    embed_images,
    expanded,
    load_data,
    load_run,
    pair_scores,
    rerank_params,
    update_metrics,
)
from fieldvision.pipelines.reid_config import InferenceSection
from fieldvision.report.reid import RetrievalExample, write_reid_report
from fieldvision.seeding import numpy_rng

__all__ = ["VARIANTS", "background_reliance", "evaluate", "evaluate_set", "variant_distances"]

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


def _metrics(dist: np.ndarray, ids: np.ndarray, q_idx: np.ndarray) -> dict[str, Any]:
    cams = np.arange(len(ids))
    res = evaluate_ranking(dist, ids[q_idx], ids, cams[q_idx], cams, max_rank=10)
    valid_ids = ids[q_idx][res.valid_query_mask]
    out: dict[str, Any] = res.as_dict()
    out["identity_balanced_mAP"] = identity_balanced_map(res.per_query_ap, valid_ids)
    # Pair ROC-AUC over every (query, other image) pair of the set.
    not_self = q_idx[:, None] != np.arange(len(ids))[None, :]  # (Q, N)
    same = ids[q_idx][:, None] == ids[None, :]
    try:
        out["pair_roc_auc"] = pair_roc_auc(-dist[not_self], same[not_self])
    except DataError:
        out["pair_roc_auc"] = float("nan")
    out["cmc"] = [float(v) for v in res.cmc]
    out["_per_identity"] = per_identity_ap(res.per_query_ap, valid_ids)
    return out


def evaluate_set(
    emb: np.ndarray, identities: Sequence[str], query_mask: np.ndarray, inf: InferenceSection
) -> dict[str, dict[str, Any]]:
    """Metrics of every variant for one set (see module docstring).

    Returns:
        ``{variant: metrics}`` with mAP, mINP, rank1/5/10, identity_balanced_mAP,
        pair_roc_auc, cmc, and (private) ``_per_identity`` and ``_dist``.

    Raises:
        DataError: No query with a match.
    """
    ids = np.asarray(identities)
    q_idx = np.flatnonzero(query_mask)
    if len(q_idx) == 0:
        raise DataError("no usable queries: every identity has a single image")
    out = {}
    for variant in VARIANTS:
        dist = variant_distances(emb, q_idx, inf, variant)
        m = _metrics(dist, ids, q_idx)
        m["_dist"] = dist
        out[variant] = m
    return out


def background_reliance(
    model: Any,
    samples: ReIDSamples,
    gallery_emb: np.ndarray,
    q_idx: np.ndarray,
    size: tuple[int, int],
    inf: InferenceSection,
    device: str = "auto",
    seed: int = 0,
) -> dict[str, Any]:
    """mAP of foreground-only and background-only queries against the unchanged gallery.

    Args:
        model: Embedding model.
        samples: The set (labelled; alpha masks in the images).
        gallery_emb: float32[N, E] full-image embeddings of the set.
        q_idx: int[Q] query indices into the set.
        size: Model input size.
        inf: Inference settings (TTA, batch size).
        device: Device.
        seed: Seed of the chance baseline (random rankings).

    Returns:
        full / foreground / background / chance mAP and rank-1, the share of the full
        mAP gain over chance that background alone achieves, and a one-line verdict.
    """
    ids = np.asarray(samples.identities)
    cams = np.arange(len(ids))
    paths = [samples.paths[i] for i in q_idx]
    scores: dict[str, Any] = {}
    for view, emb in (
        ("full", gallery_emb[q_idx]),
        ("foreground", None),
        ("background", None),
    ):
        if emb is None:
            emb = embed_images(
                model, paths, size, inf.batch_size, inf.tta, view=view, device=device
            )
        res = evaluate_ranking(1.0 - emb @ gallery_emb.T, ids[q_idx], ids, cams[q_idx], cams)
        scores[f"{view}_mAP"] = res.mAP
        scores[f"{view}_rank1"] = res.rank1
    rng = numpy_rng(seed, 7)
    chance = [
        evaluate_ranking(rng.random((len(q_idx), len(ids))), ids[q_idx], ids, cams[q_idx], cams)
        for _ in range(5)
    ]
    scores["chance_mAP"] = float(np.mean([c.mAP for c in chance]))
    scores["chance_rank1"] = float(np.mean([c.rank1 for c in chance]))
    gain = scores["full_mAP"] - scores["chance_mAP"]
    ok = gain > 1e-9
    share = (scores["background_mAP"] - scores["chance_mAP"]) / gain if ok else float("nan")
    kept = (scores["foreground_mAP"] - scores["chance_mAP"]) / gain if ok else float("nan")
    scores["background_share"] = float(share)
    scores["foreground_retained"] = float(kept)
    if not ok:
        verdict = "The model does not beat chance on full images; the diagnostic is inconclusive."
    else:
        facts = (
            f"background alone recovers {max(share, 0.0):.0%} of the model's mAP gain over "
            f"chance; the animal alone keeps {max(kept, 0.0):.0%} of it"
        )
        if share >= 0.5:
            verdict = f"Strong background reliance: {facts}. Try stronger random-background "
            verdict += "augmentation (train.background_p) or masked training images."
        elif share >= 0.1 or kept < 0.8:
            verdict = f"Some background reliance: {facts}."
        else:
            verdict = f"Identification rests on the animal: {facts}."
    scores["verdict"] = verdict
    return scores


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


def evaluate(
    run: str | os.PathLike[str],
    data: str | os.PathLike[str],
    protocol: str | None = None,
    progress: bool = True,
    report: bool = True,
) -> dict[str, Any]:
    """Evaluate a trained run (see module docstring); write metrics.json and report.md.

    Args:
        run: Finished run directory.
        data: The dataset the run was trained on.
        protocol: ``closed`` or ``open``; must match the run's split (default: the run's).
        progress: Progress bars.
        report: Write ``report.md`` and figures.

    Returns:
        ``{"protocol", "sets": {name: {"variants": {variant: metrics}, ...}},
        "background": {...} or None}``.

    Raises:
        RunError: Protocol mismatch or data that do not match the run's split.
    """
    run = Path(run)
    cfg, model = load_run(run)
    split_path = run / SPLIT_FILE
    try:
        split = json.loads(split_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise RunError(f"{split_path}: missing or unreadable", hint="train the run again") from None
    run_protocol = split.get("protocol", "closed")
    if protocol is not None and protocol != run_protocol:
        raise RunError(
            f"{run} was trained with the {run_protocol} protocol; --protocol {protocol} needs a "
            f"run trained with train.protocol={protocol}",
            hint=f"fieldvision reid train ... --set train.protocol={protocol}",
        )
    d = load_data(data, cfg.data)
    samples = d.samples
    index = {n: i for i, n in enumerate(samples.names)}
    missing = [n for n in split["train"] + split["heldout"] if n not in index]
    if missing:
        raise RunError(
            f"{data}: {len(missing)} image(s) of the run's split are not in the data "
            f"(e.g. {missing[0]!r})",
            hint="evaluate with the dataset the run was trained on",
        )
    held = np.array([index[n] for n in split["heldout"]], np.int64)
    if run_protocol == "closed":
        items = samples
        ok, rep = closed_set_queries(samples.identities or ())
        qmask = np.zeros(len(samples), bool)
        qmask[held] = True
        qmask &= ok
    else:
        items = samples.subset(held)
        qmask, rep = closed_set_queries(items.identities or ())
    size = tuple(cfg.data.image_size)
    dev = cfg.train.device
    inf = cfg.inference
    sets: dict[str, dict[str, Any]] = {}
    curves: dict[str, dict[str, list[float]]] = {}
    emb = embed_images(
        model,
        items.paths,
        size,
        inf.batch_size,
        inf.tta,
        device=dev,
        progress=progress,  # type: ignore[arg-type]
        description="embedding validation images",
    )
    variants = evaluate_set(emb, items.identities or (), qmask, inf)
    sets["validation"] = {
        "variants": _public(variants),
        "n_queries": int(qmask.sum()),
        "n_gallery": len(items) - 1,
        "warning": rep.message,
    }
    curves["validation"] = {v: m["cmc"] for v, m in variants.items()}
    per_identity = variants["raw"]["_per_identity"]
    q_idx = np.flatnonzero(qmask)
    examples = _examples(items, variants["raw"]["_dist"], q_idx) if report else []

    test = d.kaggle.test if d.kaggle is not None else None
    if test is not None and test.labelled and len(test) >= 2:
        t_emb = embed_images(
            model,
            test.paths,
            size,
            inf.batch_size,
            inf.tta,
            device=dev,
            progress=progress,  # type: ignore[arg-type]
            description="embedding test images",
        )
        t_mask, t_rep = closed_set_queries(test.identities or ())
        if t_mask.any():
            t_var = evaluate_set(t_emb, test.identities or (), t_mask, inf)
            block: dict[str, Any] = {
                "variants": _public(t_var),
                "n_queries": int(t_mask.sum()),
                "n_gallery": len(test) - 1,
                "warning": t_rep.message,
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
            sets["test"] = block
            curves["test"] = {v: m["cmc"] for v, m in t_var.items()}

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
            cfg.seed,  # type: ignore[arg-type]
        )
    results = {"protocol": run_protocol, "sets": sets, "background": background}
    update_metrics(run, "evaluate", results)
    if report:
        write_reid_report(run, results, curves, per_identity, examples, run / "metrics.csv")
    if rep.message:
        console.print(f"[yellow]warning:[/] {rep.message}")
    return results
