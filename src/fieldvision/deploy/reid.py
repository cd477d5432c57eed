"""Re-ID embeddings with ONNX Runtime: the same ``.npz`` as ``reid embed --runtime torch``.

As `fieldvision.pipelines.reid.embed`: images are listed by `read_image_list` (identity
folders, a flat folder or a CSV), read as RGBA with the run's pixel bound, their RGB
channels scaled to [0, 1] and resized to ``data.image_size`` with the antialiased bilinear
filter of `EvalTransform` (`fieldvision.deploy.images.resize`); with flip TTA the
embedding of an image and of its mirror are summed; rows are L2-normalised; the file is
written by the same `save_embeddings` (arrays ``embeddings``, ``names``, ``identities``,
``meta``). No torch import.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from fieldvision.console import progress_iter
from fieldvision.data.images import read_rgba
from fieldvision.data.reid.embeddings import save_embeddings
from fieldvision.data.reid.readers import read_image_list
from fieldvision.data.reid.samples import EmbeddingSet
from fieldvision.deploy.images import resize, to_chw
from fieldvision.deploy.session import open_deployment

__all__ = ["WEIGHTS", "embed", "embed_paths"]

#: The embedding network of a re-ID run (as `fieldvision.pipelines.reid.embed.WEIGHTS`).
WEIGHTS = "train"


def embed_paths(
    session: object,
    paths: Sequence[Path],
    size: tuple[int, int],
    batch_size: int = 64,
    tta: bool = True,
    reader: Callable[[Path], np.ndarray] = read_rgba,
    progress: bool = False,
) -> np.ndarray:
    """L2-normalised float32[N, E] embeddings of images with an ONNX embedder session."""
    (output,) = session.get_outputs()  # type: ignore[attr-defined]
    if len(paths) == 0:
        dim = output.shape[-1]
        return np.zeros((0, dim if isinstance(dim, int) else 0), np.float32)
    starts = range(0, len(paths), batch_size)
    parts = []
    for start in progress_iter(starts, "embedding", len(starts), enabled=progress):
        chunk = paths[start : start + batch_size]
        batch = np.stack([resize(to_chw(reader(p))[:3], size) for p in chunk])  # (B, 3, h, w)
        emb = session.run([output.name], {"image": batch})[0]  # type: ignore[attr-defined]
        if tta:  # left-right only: animals have an up
            mirrored = np.ascontiguousarray(batch[..., ::-1])
            emb = emb + session.run([output.name], {"image": mirrored})[0]  # type: ignore[attr-defined]
        parts.append(emb)
    total = np.concatenate(parts).astype(np.float32)  # (N, E)
    norm = np.linalg.norm(total, axis=1, keepdims=True)
    return (total / np.maximum(norm, 1e-12)).astype(np.float32)


def embed(
    run: str | os.PathLike[str],
    images: str | os.PathLike[str],
    out: str | os.PathLike[str],
    tta: bool | None = None,
    progress: bool = True,
    image_root: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
    runtime: str = "onnx",
    onnx: str | os.PathLike[str] | None = None,
) -> EmbeddingSet:
    """``fieldvision reid embed --runtime onnx|onnx-int8``.

    Args:
        run: A finished re-ID run.
        images: Identity folders, a flat folder of images, or a CSV.
        out: The ``.npz`` to write (after every input was validated).
        tta: Flip TTA (default: the run's ``inference.tta``).
        progress: Progress bar on stderr.
        image_root: Folder the CSV's image names are relative to.
        overrides: ``--set`` values of runtime fields.
        runtime: ``onnx`` (FP32) or ``onnx-int8``.
        onnx: The export folder (default ``RUN/export``).

    Returns:
        The `EmbeddingSet` written to `out`.

    Raises:
        RunError: See `open_deployment`; DataError: unreadable images or listing.
    """
    dep = open_deployment(run, "reid", runtime, onnx, overrides)
    s = dep.setting
    samples = read_image_list(
        images,
        s("data.image_column"),
        s("data.identity_column"),
        image_root,
        camera_column=s("data.camera_column"),
    )
    use_tta = bool(s("inference.tta")) if tta is None else tta
    size = tuple(int(v) for v in s("data.image_size"))
    reader = functools.partial(read_rgba, max_pixels=int(s("data.max_image_pixels")))
    emb = embed_paths(
        dep.session(WEIGHTS),
        samples.paths,
        size,  # type: ignore[arg-type]
        int(s("inference.batch_size")),
        use_tta,
        reader,
        progress,
    )
    result = EmbeddingSet(
        emb,
        samples.names,
        samples.identities,
        {
            "run": str(Path(run).resolve()),
            "source": samples.source,
            "tta": use_tta,
            "backbone": s("model.backbone"),
            "image_size": list(size),
            "runtime": runtime,
        },
    )
    save_embeddings(out, result)
    return result
