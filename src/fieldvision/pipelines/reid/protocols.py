"""Which images of a labelled set are queries, and which gallery items each may match.

A trained run knows which images and identities it was trained on (``split.json``); any
labelled dataset can then be evaluated under one of three protocols. In every protocol a
query is ranked against the other items of the set, and a gallery item is skipped when it
has the query's identity *and* camera (torchreid's Market-1501 rule; without camera ids in
the data each image is its own camera, which only removes the query itself).

=========  ==================================================  ==========================
protocol   queries                                             gallery
=========  ==================================================  ==========================
closed     images not trained on, of identities trained on     every image of the set
open       images of identities never trained on                those images only
all        every image (leave-one-out)                          every image of the set
=========  ==================================================  ==========================

On the run's own data, ``closed`` and ``open`` are exactly its validation split (held-out
images, resp. held-out identities); on new data, ``open`` measures new individuals and
``closed`` new photos of known ones. ``all`` on training images is optimistic: say so.
A query needs at least one valid match (another image of its identity that the camera rule
keeps); queries without one are excluded and reported.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from fieldvision.data.reid import ReIDSamples
from fieldvision.errors import DataError

__all__ = ["PROTOCOLS", "EvaluationSet", "evaluation_set"]

PROTOCOLS = ("closed", "open", "all")


@dataclass(frozen=True)
class EvaluationSet:
    """The items, queries and cameras of one evaluation.

    Attributes:
        samples: The items (gallery) of the set.
        query_mask: bool[N] which items are queries.
        cams: Camera id per item (``int`` per image when the data has none).
        protocol: The protocol used.
        warning: Why some candidate queries were excluded ('' when none were).
    """

    samples: ReIDSamples
    query_mask: np.ndarray
    cams: np.ndarray
    protocol: str
    warning: str


def _cams(samples: ReIDSamples) -> np.ndarray:
    if samples.cameras is not None:
        return np.asarray(samples.cameras, dtype=object)
    return np.arange(len(samples))


def _has_match(ids: np.ndarray, cams: np.ndarray) -> np.ndarray:
    """bool[N]: the item has another item of its identity on a different (id, cam) key."""
    pairs = Counter(zip(ids.tolist(), cams.tolist(), strict=True))
    per_id = Counter(ids.tolist())
    return np.array(
        [per_id[i] - pairs[(i, c)] > 0 for i, c in zip(ids.tolist(), cams.tolist(), strict=True)],
        bool,
    )


def evaluation_set(
    samples: ReIDSamples,
    protocol: str,
    trained_names: Collection[str] = (),
    trained_identities: Collection[str] = (),
) -> EvaluationSet:
    """Select the items and queries of `samples` under `protocol` (see the module table).

    Args:
        samples: A labelled set.
        protocol: ``closed``, ``open`` or ``all``.
        trained_names: Image names the run was trained on.
        trained_identities: Identities the run was trained on.

    Raises:
        DataError: Unlabelled samples, unknown protocol, or no query with a valid match.
    """
    if protocol not in PROTOCOLS:
        raise DataError(f"unknown protocol {protocol!r}; choose one of: {', '.join(PROTOCOLS)}")
    if samples.identities is None:
        raise DataError(f"{samples.source}: evaluation needs identities (labelled images)")
    ids = np.asarray(samples.identities, dtype=object)
    known = set(trained_identities)
    if protocol == "open":
        keep = np.flatnonzero([i not in known for i in ids])
        if len(keep) == 0:
            raise DataError(
                f"{samples.source}: every identity was trained on, so there is no open set",
                hint="use --protocol closed or all, or data with new individuals",
            )
        samples = samples.subset(keep)
        ids = ids[keep]
        candidates = np.ones(len(samples), bool)
    elif protocol == "closed":
        seen = set(trained_names)
        candidates = np.array(
            [n not in seen and i in known for n, i in zip(samples.names, ids, strict=True)], bool
        )
        if not candidates.any():
            raise DataError(
                f"{samples.source}: no image is both unseen in training and of a trained "
                "identity, so there is no closed-set query",
                hint="use --protocol open or all",
            )
    else:
        candidates = np.ones(len(samples), bool)
    cams = _cams(samples)
    matchable = _has_match(ids, cams)
    query_mask = candidates & matchable
    excluded = int((candidates & ~matchable).sum())
    if not query_mask.any():
        raise DataError(
            f"{samples.source}: no query has another image of its identity to find"
            + (" from another camera" if samples.cameras is not None else "")
        )
    warning = ""
    if excluded:
        why = "from another camera" if samples.cameras is not None else "in the set"
        warning = (
            f"{excluded} candidate quer{'y has' if excluded == 1 else 'ies have'} no other "
            f"image of the same identity {why}: excluded from the queries, kept in the gallery"
        )
    return EvaluationSet(samples, query_mask, cams, protocol, warning)
