"""Embedding images with a trained run (flip TTA through the shared inference loop)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fieldvision.data.reid import EmbeddingSet, ReIDDataset, read_image_list, save_embeddings
from fieldvision.data.transforms import EvalTransform
from fieldvision.inference import flip_views, predict_views
from fieldvision.pipelines.reid.config import ReIDPipelineConfig
from fieldvision.pipelines.reid.data import image_reader
from fieldvision.runs import RunDir

__all__ = ["RUN_KIND", "WEIGHTS", "embed", "embed_images", "load_run"]

RUN_KIND = "reid"
#: The exported embedding network of a run, relative to the run directory.
WEIGHTS = "train/model.safetensors"


def load_run(run: str | os.PathLike[str]) -> tuple[RunDir, ReIDPipelineConfig, nn.Module]:
    """Open a finished re-ID run: directory, config and embedding network (eval, CPU).

    Raises:
        RunError: Not a finished re-ID run, or damaged weights.
    """
    run_dir, cfg = RunDir.open(run, RUN_KIND, ReIDPipelineConfig)
    return run_dir, cfg, run_dir.load_model(WEIGHTS)


def _embedding_call(model: nn.Module, batch: dict) -> dict[str, torch.Tensor]:
    return {"embedding": model(batch["image"])["embedding"]}


def embed_images(
    model: nn.Module,
    paths: Sequence[Path],
    size: tuple[int, int],
    batch_size: int = 64,
    tta: bool = True,
    view: str = "full",
    device: str = "auto",
    num_workers: int = 0,
    progress: bool = False,
    description: str = "embedding",
    reader: Callable[[Path], np.ndarray] | None = None,
) -> np.ndarray:
    """Embed images with an eval-mode model.

    Args:
        model: The embedding network (images in [0, 1], normalised inside).
        paths: Image files.
        size: ``(H, W)`` input size.
        batch_size: Images per forward pass.
        tta: Flip TTA: the L2-normalised mean of the image's and its mirror's embedding
            (left-right only: animals have an up).
        view: ``full``, ``foreground`` or ``background`` (needs alpha masks; see
            `EvalTransform`).
        device: ``auto``, ``cpu`` or ``cuda``.
        num_workers: DataLoader workers.
        progress: Show a progress bar.
        description: Progress-bar label.
        reader: Image reader (default: RGBA with the default pixel bound).

    Returns:
        float32[N, E] L2-normalised embeddings (``[0, E]`` for no paths).
    """
    if len(paths) == 0:
        return np.zeros((0, int(model.embedding_dim)), np.float32)
    kwargs = {} if reader is None else {"reader": reader}
    dataset = ReIDDataset(list(paths), None, EvalTransform(size, view=view), **kwargs)
    views = predict_views(
        model,
        dataset,
        _embedding_call,
        flip_views(tta, vertical=False),
        device=device,
        batch_size=batch_size,
        num_workers=num_workers,
        progress=progress,
        description=description,
    )
    emb = np.sum([v["embedding"] for v in views], axis=0)  # (N, E)
    norm = np.linalg.norm(emb, axis=1, keepdims=True)
    return (emb / np.maximum(norm, 1e-12)).astype(np.float32)


def embed(
    run: str | os.PathLike[str],
    images: str | os.PathLike[str],
    out: str | os.PathLike[str],
    tta: bool | None = None,
    progress: bool = True,
    image_root: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
) -> EmbeddingSet:
    """Embed a folder (per identity, or flat) or a CSV of images with a trained run.

    `image_root` is the folder CSV image names are relative to (default: the CSV's).
    `overrides` are ``--set`` values of runtime fields (device, batch size, ...).

    Returns:
        The `EmbeddingSet` written to `out` (``.npz``), after every input was validated.
    """
    from fieldvision.config import apply_runtime_overrides

    run_dir, cfg, model = load_run(run)
    cfg = apply_runtime_overrides(cfg, overrides)
    samples = read_image_list(
        images,
        cfg.data.image_column,
        cfg.data.identity_column,
        image_root,
        camera_column=cfg.data.camera_column,
    )
    use_tta = cfg.inference.tta if tta is None else tta
    emb = embed_images(
        model,
        samples.paths,
        tuple(cfg.data.image_size),  # type: ignore[arg-type]
        cfg.inference.batch_size,
        use_tta,
        device=cfg.train.device,
        progress=progress,
        reader=image_reader(cfg.data),
    )
    result = EmbeddingSet(
        emb,
        samples.names,
        samples.identities,
        {
            "run": str(run_dir.path.resolve()),
            "source": samples.source,
            "tta": use_tta,
            "backbone": cfg.model.backbone,
            "image_size": list(cfg.data.image_size),
            "runtime": "torch",
        },
    )
    save_embeddings(out, result)
    return result
