"""Re-identification pipeline: synth / fit / embed / search / pairs (evaluate: `reid_eval`).

A run directory holds::

    config.yaml        the resolved `ReIDPipelineConfig`
    split.json         train / held-out image names and the validation protocol
    best.ckpt, last.ckpt, metrics.csv, done.json   (Lightning, resumable)
    model.safetensors  the best embedding network, exported after training
    metrics.json       training summary ("fit") and evaluation results ("evaluate")
    report.md + *.png  written by ``evaluate``

Everything here is library code returning plain results; the CLI only parses and prints.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from fieldvision.config import config_to_dict, load_config
from fieldvision.console import console, progress_iter
from fieldvision.data.reid import (
    EmbeddingSet,
    KaggleReID,
    ReIDDataset,
    ReIDSamples,
    check_images,
    closed_set_queries,
    closed_set_split,
    detect_layout,
    load_embeddings,
    open_set_split,
    read_identity_csv,
    read_identity_folders,
    read_image_list,
    read_kaggle,
    save_embeddings,
)
from fieldvision.data.samplers import PKSampler
from fieldvision.data.transforms import EvalTransform, TrainTransform
from fieldvision.errors import DataError, RunError
from fieldvision.io import atomic_path, write_csv, write_json, write_yaml
from fieldvision.models.reid import ReIDModel
from fieldvision.pipelines.reid_config import InferenceSection, ReIDDataSection, ReIDPipelineConfig
from fieldvision.runtime import resolve_device
from fieldvision.seeding import seed_everything, torch_generator

__all__ = [
    "ReIDData",
    "embed",
    "embed_images",
    "expanded",
    "fit",
    "load_data",
    "load_run",
    "pair_scores",
    "pairs",
    "read_metrics",
    "rerank_params",
    "search",
    "synth",
    "update_metrics",
]

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.yaml"
SPLIT_FILE = "split.json"
METRICS_FILE = "metrics.json"


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class ReIDData:
    """Labelled training images, plus the Kaggle test side when the layout has one."""

    samples: ReIDSamples
    kaggle: KaggleReID | None
    layout: str


def load_data(data: str | os.PathLike[str], cfg: ReIDDataSection) -> ReIDData:
    """Read a dataset in the configured (or detected) layout.

    Raises:
        DataError: See the readers in `fieldvision.data.reid`.
    """
    path = Path(data)
    layout = detect_layout(path, cfg.train_csv) if cfg.layout == "auto" else cfg.layout
    if layout == "kaggle":
        kag = read_kaggle(
            path,
            cfg.train_csv,
            cfg.train_dir,
            cfg.test_csv,
            cfg.test_dir,
            cfg.truth_csv,
            cfg.image_column,
            cfg.identity_column,
            cfg.row_id_column,
            cfg.query_column,
            cfg.gallery_column,
        )
        return ReIDData(kag.train, kag, layout)
    if layout == "csv":
        samples = read_identity_csv(path, None, cfg.image_column, cfg.identity_column)
        return ReIDData(samples, None, layout)
    return ReIDData(read_identity_folders(path), None, "folders")


def synth(
    out: str | os.PathLike[str],
    identities: int = 40,
    per_id: int = 12,
    seed: int = 0,
    size: int = 128,
    background_leak: float = 0.3,
) -> Any:
    """Write a synthetic rosette-coat dataset in the Kaggle layout (see `coats`)."""
    from fieldvision.data.synthetic.coats import generate_coat_dataset

    if identities < 2:
        raise DataError(f"--identities must be at least 2, got {identities}")
    if per_id < 2:
        raise DataError(f"--per-id must be at least 2, got {per_id}")
    return generate_coat_dataset(
        out, identities, per_id, seed, (size, size), background_leak=background_leak
    )


# --------------------------------------------------------------------------- run dir


def read_metrics(run: str | os.PathLike[str]) -> dict[str, Any]:
    """The run's ``metrics.json`` ({} when absent)."""
    import json

    path = Path(run) / METRICS_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise RunError(f"{path}: not valid JSON", hint="delete it; it is rewritten") from None


def update_metrics(run: str | os.PathLike[str], section: str, values: dict[str, Any]) -> Path:
    """Replace one section of ``metrics.json`` atomically, keeping the others."""
    merged = read_metrics(run)
    merged[section] = values
    return write_json(Path(run) / METRICS_FILE, merged)


def _check_run_config(run: Path, cfg: ReIDPipelineConfig) -> None:
    """A run directory may only be resumed with the same config (epochs may grow)."""
    path = run / CONFIG_FILE
    if not path.is_file():
        return
    old = config_to_dict(load_config(ReIDPipelineConfig, path))
    new = config_to_dict(cfg)
    for d in (old, new):
        d["train"].pop("epochs", None)
    if old != new:
        changed = sorted(
            f"{s}.{k}"
            for s in new
            if isinstance(new[s], dict)
            for k in new[s]
            if old.get(s, {}).get(k) != new[s][k]
        )
        changed += sorted(s for s in new if not isinstance(new[s], dict) and old.get(s) != new[s])
        raise RunError(
            f"{run} holds a run with a different config ({', '.join(changed)})",
            hint="use a new --out directory, or the same config to resume",
        )


def load_run(run: str | os.PathLike[str]) -> tuple[ReIDPipelineConfig, ReIDModel]:
    """Load a finished run's config and exported model (eval mode, CPU).

    Raises:
        RunError: Not a re-ID run directory, or training has not finished.
    """
    run = Path(run)
    cfg_path = run / CONFIG_FILE
    if not cfg_path.is_file():
        raise RunError(f"{run}: not a reid run directory (no {CONFIG_FILE})")
    cfg = load_config(ReIDPipelineConfig, cfg_path)
    weights = run / MODEL_FILE
    if not weights.is_file():
        raise RunError(
            f"{run}: no {MODEL_FILE}; training has not finished",
            hint="run `fieldvision reid train` again with the same --out to resume",
        )
    from safetensors.torch import load_file

    mcfg = cfg.model.to_model_config()
    mcfg.pretrained = False  # the exported weights replace any initial weights
    model = ReIDModel.from_config(mcfg)
    try:
        model.load_state_dict(load_file(str(weights)))
    except (RuntimeError, OSError) as exc:
        raise RunError(f"{weights}: does not match the run's model config ({exc})") from None
    return cfg, model.eval()


def _export_model(model: torch.nn.Module, path: Path) -> Path:
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp))
    return path


# --------------------------------------------------------------------------- fit


def _use_mask(cfg: ReIDDataSection, has_alpha: np.ndarray | None) -> bool:
    if cfg.use_mask == "yes":
        return True
    if cfg.use_mask == "no":
        return False
    return bool(has_alpha is not None and has_alpha.any())


def _validation_items(
    samples: ReIDSamples, split_idx: tuple[np.ndarray, np.ndarray], protocol: str
) -> tuple[np.ndarray, np.ndarray, str]:
    """Items (indices into samples) and query mask of the validation retrieval task.

    closed: every image is in the gallery, held-out images are the queries.
    open: only held-out identities' images; each one queries the others.
    """
    _train_idx, held_idx = split_idx
    ids = samples.identities or ()
    if protocol == "closed":
        items = np.arange(len(samples))
        qmask = np.zeros(len(samples), bool)
        qmask[held_idx] = True
        ok, report = closed_set_queries(ids)
        return items, qmask & ok, report.message
    items = np.asarray(held_idx)
    ok, report = closed_set_queries([ids[i] for i in items])
    return items, ok, report.message


def fit(
    data: str | os.PathLike[str],
    run: str | os.PathLike[str],
    cfg: ReIDPipelineConfig,
    progress: bool = True,
) -> dict[str, Any]:
    """Train a re-ID model on `data` into the run directory `run` (resumable).

    Returns:
        Summary: best validation mAP / rank-1, epochs, identities, images, paths.

    Raises:
        DataError: Bad input data. RunError: `run` holds a run with another config.
    """
    from fieldvision.training.reid import ReIDSystem, load_model_weights
    from fieldvision.training.trainer import build_trainer, fit_resumable

    run = Path(run)
    _check_run_config(run, cfg)
    seed_everything(cfg.seed)
    d = load_data(data, cfg.data)
    samples = d.samples
    if cfg.data.verify_images:  # decode everything once: a bad file fails here, not mid-epoch
        has_alpha = check_images(
            samples,
            progress=(lambda it: progress_iter(it, "checking images", len(samples)))
            if progress
            else None,
        )
    else:  # a sample is enough to know whether the images carry masks
        has_alpha = check_images(samples.subset(range(min(16, len(samples)))))
    with_mask = _use_mask(cfg.data, has_alpha)
    ids = samples.identities or ()
    split_fn = closed_set_split if cfg.train.protocol == "closed" else open_set_split
    split = split_fn(ids, cfg.train.holdout_fraction, cfg.seed)
    run.mkdir(parents=True, exist_ok=True)
    write_yaml(run / CONFIG_FILE, config_to_dict(cfg))
    write_json(
        run / SPLIT_FILE,
        {
            "protocol": split.protocol,
            "with_mask": with_mask,
            "train": [samples.names[i] for i in split.train],
            "heldout": [samples.names[i] for i in split.heldout],
        },
    )
    train_samples = samples.subset(split.train)
    labels, classes = train_samples.label_ids()
    tcfg = cfg.train
    size = tuple(cfg.data.image_size)
    transform = TrainTransform(
        size=size,  # type: ignore[arg-type]
        crop_scale=tcfg.crop_scale,
        flip_p=tcfg.flip_p,
        brightness=tcfg.brightness,
        saturation=tcfg.saturation,
        erase_p=tcfg.erase_p,
        background_p=tcfg.background_p if with_mask else 0.0,
    )
    train_ds = ReIDDataset(
        train_samples.paths, labels, transform, with_mask=with_mask, seed=cfg.seed
    )
    sampler = PKSampler(labels, tcfg.p, tcfg.k, seed=cfg.seed)
    train_loader = DataLoader(
        train_ds,
        batch_sampler=sampler,
        num_workers=tcfg.num_workers,
        generator=torch_generator(cfg.seed),
    )
    items, qmask, warning = _validation_items(samples, (split.train, split.heldout), split.protocol)
    if warning:
        console.print(f"[yellow]warning:[/] {warning}")
    all_labels, _ = samples.label_ids()
    val_ds = ReIDDataset(
        [samples.paths[i] for i in items],
        all_labels[items],
        EvalTransform(size),  # type: ignore[arg-type]
    )
    val_loader = DataLoader(
        val_ds, batch_size=cfg.inference.batch_size, num_workers=tcfg.num_workers
    )
    mcfg = cfg.model.to_model_config()
    model = ReIDModel.from_config(mcfg)
    system = ReIDSystem(
        model,
        num_classes=len(classes),
        loss=mcfg.loss,
        margin=mcfg.margin,
        scale=mcfg.scale,
        label_smoothing=mcfg.label_smoothing,
        triplet_weight=mcfg.triplet_weight,
        triplet_margin=mcfg.triplet_margin,
        mixup_alpha=tcfg.mixup_alpha,
        mixup_prob=tcfg.mixup_prob,
        optim=tcfg.optim(),
        val_query_mask=qmask,
        seed=cfg.seed,
    )
    trainer = build_trainer(
        run,
        max_epochs=tcfg.epochs,
        device=tcfg.device,
        precision=tcfg.precision,
        accumulate_grad_batches=tcfg.accumulate_grad_batches,
        monitor="val_map",
        mode="max",
        patience=tcfg.patience,
        progress=progress,
        gradient_clip_val=tcfg.gradient_clip_val,
        check_val_every_n_epoch=tcfg.val_every,
        log_every_n_steps=max(1, min(10, len(sampler))),
    )
    result = fit_resumable(trainer, system, train_loader, val_loader, run)
    best = Path(result.best_path) if result.best_path else run / "last.ckpt"
    if not best.is_file():
        best = run / "last.ckpt"
    load_model_weights(model, best)
    _export_model(model, run / MODEL_FILE)
    summary = {
        "best_val_map": result.best_score,
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "resumed": result.resumed,
        "checkpoint": str(best),
        "protocol": split.protocol,
        "n_identities": len(set(ids)),
        "n_train_identities": len(classes),
        "n_train_images": len(split.train),
        "n_heldout_images": len(split.heldout),
        "n_val_queries": int(qmask.sum()),
        "with_mask": with_mask,
        "backbone": mcfg.backbone,
    }
    update_metrics(run, "fit", summary)
    return summary


# --------------------------------------------------------------------------- embed


@torch.no_grad()
def embed_images(
    model: ReIDModel,
    paths: Sequence[Path],
    size: tuple[int, int],
    batch_size: int = 64,
    tta: bool = True,
    view: str = "full",
    device: str = "auto",
    num_workers: int = 0,
    progress: bool = False,
    description: str = "embedding",
) -> np.ndarray:
    """Embed images with an eval-mode model.

    Args:
        model: The embedding network.
        paths: Image files.
        size: ``(H, W)`` input size.
        batch_size: Images per forward pass.
        tta: Flip TTA: mean of the image's and its mirror's embedding, re-normalised.
        view: ``full``, ``foreground`` or ``background`` (needs alpha masks; see
            `EvalTransform`).
        device: ``auto``, ``cpu`` or ``cuda``.
        num_workers: DataLoader workers.
        progress: Show a progress bar.
        description: Progress-bar label.

    Returns:
        float32[N, E] L2-normalised embeddings (``[0, E]`` for no paths).
    """
    dev = resolve_device(device)
    model = model.to(dev).eval()
    if len(paths) == 0:
        return np.zeros((0, model.embedding_dim), np.float32)
    ds = ReIDDataset(list(paths), None, EvalTransform(size, view=view))
    loader = DataLoader(ds, batch_size=batch_size, num_workers=num_workers)
    out: list[torch.Tensor] = []
    batches: Any = loader
    if progress:
        batches = progress_iter(loader, description, len(loader))
    autocast: Any = contextlib.nullcontext()
    if dev == "cuda":  # mixed precision on GPU; the embedding is cast back to fp32 below
        half = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        autocast = torch.autocast("cuda", dtype=half)
    for batch in batches:
        x = batch["image"].to(dev)
        with autocast:
            emb = model(x)["embedding"].float()  # (B, E)
            if tta:
                emb = emb + model(x.flip(-1))["embedding"].float()
        out.append(torch.nn.functional.normalize(emb, dim=1).cpu())
    return torch.cat(out).numpy().astype(np.float32)


def embed(
    run: str | os.PathLike[str],
    images: str | os.PathLike[str],
    out: str | os.PathLike[str],
    tta: bool | None = None,
    progress: bool = True,
    image_root: str | os.PathLike[str] | None = None,
) -> EmbeddingSet:
    """Embed a folder (per identity, or flat) or a CSV of images with a trained run.

    `image_root` is the folder CSV image names are relative to (default: the CSV's).

    Returns:
        The `EmbeddingSet` written to `out` (``.npz``).
    """
    cfg, model = load_run(run)
    samples = read_image_list(images, cfg.data.image_column, cfg.data.identity_column, image_root)
    use_tta = cfg.inference.tta if tta is None else tta
    emb = embed_images(
        model,
        samples.paths,
        tuple(cfg.data.image_size),  # type: ignore[arg-type]
        cfg.inference.batch_size,
        use_tta,
        device=cfg.train.device,
        progress=progress,
    )
    result = EmbeddingSet(
        emb,
        samples.names,
        samples.identities,
        {
            "run": str(Path(run).resolve()),
            "source": samples.source,
            "tta": use_tta,
            "backbone": cfg.model.backbone,
            "image_size": list(cfg.data.image_size),
        },
    )
    save_embeddings(out, result)
    return result


# --------------------------------------------------------------------------- search


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
) -> pd.DataFrame:
    """Write the Kaggle submission: one similarity in [0, 1] per row of the pairs file.

    Returns:
        The submission table (``row_id, similarity`` with the configured names), in the
        order of the pairs file.
    """
    cfg, model = load_run(run)
    dc = cfg.data
    kag = read_kaggle(
        data,
        dc.train_csv,
        dc.train_dir,
        dc.test_csv,
        dc.test_dir,
        dc.truth_csv,
        dc.image_column,
        dc.identity_column,
        dc.row_id_column,
        dc.query_column,
        dc.gallery_column,
        require_test=True,
    )
    test, table = kag.test, kag.pairs
    if test is None or table is None:  # read_kaggle(require_test=True) already raised
        raise DataError(f"{data}: no pairs file {dc.test_csv}")
    emb = embed_images(
        model,
        test.paths,
        tuple(dc.image_size),  # type: ignore[arg-type]
        cfg.inference.batch_size,
        cfg.inference.tta,
        device=cfg.train.device,
        progress=progress,
    )
    pair_list = list(zip(table["query_image"], table["gallery_image"], strict=True))
    scores = pair_scores(emb, {n: i for i, n in enumerate(test.names)}, pair_list, cfg.inference)
    submission = pd.DataFrame({dc.row_id_column: table["row_id"], dc.similarity_column: scores})
    write_csv(out, submission)
    return submission
