"""Re-ID containers: samples with identities and cameras, the Kaggle layout, splits, embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fieldvision.data.checks import MAX_LISTED, check_unique
from fieldvision.errors import DataError


@dataclass(frozen=True)
class ReIDSamples:
    """A validated list of images with (optional) identities and cameras.

    Attributes:
        paths: Image files, N of them.
        names: Unique image names (the CSV value, or ``identity/file`` /
            ``identity/camera/file`` for folders).
        identities: Identity of each image, or None for unlabelled images.
        origins: Where each sample came from, for error messages (``"train.csv row 3"``).
        source: The file or folder the samples were read from.
        cameras: Camera (or site) of each image, or None when the data does not say.
            Re-ID evaluation uses it to skip gallery images of the query's identity taken
            by the query's camera.
    """

    paths: tuple[Path, ...]
    names: tuple[str, ...]
    identities: tuple[str, ...] | None
    origins: tuple[str, ...]
    source: str
    cameras: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def labelled(self) -> bool:
        """True when every sample has an identity."""
        return self.identities is not None

    @property
    def has_cameras(self) -> bool:
        """True when every sample has a camera id."""
        return self.cameras is not None

    def label_ids(self) -> tuple[np.ndarray, list[str]]:
        """Integer labels ``int64[N]`` and the sorted identity names they index.

        Raises:
            DataError: The samples have no identities.
        """
        if self.identities is None:
            raise DataError(f"{self.source}: images have no identities")
        classes = sorted(set(self.identities))
        lookup = {c: i for i, c in enumerate(classes)}
        return np.array([lookup[i] for i in self.identities], np.int64), classes

    def subset(self, indices: Sequence[int] | np.ndarray) -> ReIDSamples:
        """The samples at `indices` (in that order)."""
        idx = [int(i) for i in indices]
        return ReIDSamples(
            paths=tuple(self.paths[i] for i in idx),
            names=tuple(self.names[i] for i in idx),
            identities=None if self.identities is None else tuple(self.identities[i] for i in idx),
            origins=tuple(self.origins[i] for i in idx),
            source=self.source,
            cameras=None if self.cameras is None else tuple(self.cameras[i] for i in idx),
        )

    @staticmethod
    def concat(parts: Sequence[ReIDSamples], source: str) -> ReIDSamples:
        """Concatenate sample lists (names must stay unique).

        Identities (cameras) are kept only when every part has them.

        Raises:
            DataError: An image name occurs in two parts.
        """
        ids = _join_optional([p.identities for p in parts])
        cameras = _join_optional([p.cameras for p in parts])
        out = ReIDSamples(
            paths=sum((p.paths for p in parts), ()),
            names=sum((p.names for p in parts), ()),
            identities=ids,
            origins=sum((p.origins for p in parts), ()),
            source=source,
            cameras=cameras,
        )
        check_unique(out.names, out.origins, source)
        return out


def _join_optional(columns: Sequence[tuple[str, ...] | None]) -> tuple[str, ...] | None:
    """Concatenate per-part columns; None when any part lacks the column."""
    out: tuple[str, ...] = ()
    for column in columns:
        if column is None:
            return None
        out += column
    return out


@dataclass(frozen=True)
class KaggleReID:
    """The Kaggle Jaguar Re-ID layout.

    Attributes:
        train: Labelled training images.
        test: Images referenced by the pairs file (labelled when a truth file exists), or None.
        pairs: ``row_id, query_image, gallery_image`` table (renamed to these columns), or None.
        root: Dataset folder.
    """

    train: ReIDSamples
    test: ReIDSamples | None
    pairs: pd.DataFrame | None
    root: Path


@dataclass(frozen=True)
class SingletonReport:
    """Identities that have a single image: they cannot be closed-set queries."""

    identities: tuple[str, ...]
    n_queries: int
    n_excluded: int

    @property
    def message(self) -> str:
        """A one-paragraph warning for the user ('' when there is nothing to say)."""
        if not self.identities:
            return ""
        shown = ", ".join(self.identities[:MAX_LISTED])
        more = (
            ""
            if len(self.identities) <= MAX_LISTED
            else f" and {len(self.identities) - MAX_LISTED} more"
        )
        return (
            f"{len(self.identities)} identit{'y has' if len(self.identities) == 1 else 'ies have'} "
            f"a single image ({shown}{more}): such an image has no other image of its animal to "
            "find, so it is excluded from the queries and kept in the gallery"
        )


@dataclass(frozen=True)
class Split:
    """Indices of a train / held-out split (into the samples it was made from)."""

    train: np.ndarray
    heldout: np.ndarray
    protocol: str  # "closed" (held-out images) or "open" (held-out identities)


@dataclass(frozen=True)
class EmbeddingSet:
    """Embeddings with their image names (and identities when known).

    Attributes:
        embeddings: float32[N, D], L2-normalised rows.
        names: Image names, unique.
        identities: Identities or None.
        meta: Free-form JSON-able metadata (model, tta, ...).
    """

    embeddings: np.ndarray
    names: tuple[str, ...]
    identities: tuple[str, ...] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def dim(self) -> int:
        """Embedding size D."""
        return int(self.embeddings.shape[1])

    def index_of(self) -> dict[str, int]:
        """Map image name -> row."""
        return {n: i for i, n in enumerate(self.names)}
