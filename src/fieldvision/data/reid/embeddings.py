"""Embedding files: ``.npz`` archives of an `EmbeddingSet`.

Arrays: ``embeddings`` float32[N, D], ``names`` str[N], optional ``identities`` str[N]
and ``meta`` (a JSON string).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from fieldvision.data.checks import check_unique
from fieldvision.data.reid.samples import EmbeddingSet
from fieldvision.errors import DataError
from fieldvision.io import atomic_path


def save_embeddings(path: str | os.PathLike[str], emb: EmbeddingSet) -> Path:
    """Write an `EmbeddingSet` as ``.npz`` atomically."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {
        "embeddings": np.ascontiguousarray(emb.embeddings, np.float32),
        "names": np.array(emb.names, dtype=str),
        "meta": np.array(json.dumps(emb.meta, default=str)),
    }
    if emb.identities is not None:
        arrays["identities"] = np.array(emb.identities, dtype=str)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def load_embeddings(path: str | os.PathLike[str]) -> EmbeddingSet:
    """Read and validate an embeddings ``.npz``.

    Raises:
        DataError: Missing file or keys, wrong shapes or lengths, non-finite values,
            duplicate names.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: embeddings file not found")
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npz embeddings file ({exc})") from None
    for key in ("embeddings", "names"):
        if key not in data:
            raise DataError(f"{path}: missing array {key!r} (found {', '.join(sorted(data))})")
    emb = data["embeddings"]
    if emb.ndim != 2 or not np.issubdtype(emb.dtype, np.number):
        raise DataError(f"{path}: 'embeddings' must be a numeric (N, D) array, got {emb.shape}")
    names = tuple(str(n) for n in np.atleast_1d(data["names"]))
    if len(names) != emb.shape[0]:
        raise DataError(f"{path}: {emb.shape[0]} embeddings but {len(names)} names")
    if emb.size and not np.isfinite(emb).all():
        row = int(np.flatnonzero(~np.isfinite(emb).all(axis=1))[0])
        raise DataError(f"{path}: embedding row {row} ({names[row]!r}) has NaN or infinity")
    check_unique(names, [f"row {i}" for i in range(len(names))], str(path))
    identities = None
    if "identities" in data:
        identities = tuple(str(i) for i in np.atleast_1d(data["identities"]))
        if len(identities) != len(names):
            raise DataError(f"{path}: {len(names)} names but {len(identities)} identities")
    meta: dict[str, Any] = {}
    if "meta" in data:
        try:
            meta = json.loads(str(data["meta"]))
        except ValueError:
            raise DataError(f"{path}: 'meta' is not a JSON string") from None
    return EmbeddingSet(emb.astype(np.float32), names, identities, meta)
