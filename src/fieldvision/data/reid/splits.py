"""Re-ID query selection and train / held-out splits (closed-set and open-set)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from fieldvision.data.reid.samples import SingletonReport, Split
from fieldvision.errors import DataError
from fieldvision.seeding import numpy_rng


def closed_set_queries(identities: Sequence[str]) -> tuple[np.ndarray, SingletonReport]:
    """Which images can be closed-set queries (their identity has another image).

    Returns:
        ``(bool[N] query mask, report of single-image identities)``.
    """
    counts = Counter(identities)
    mask = np.array([counts[i] > 1 for i in identities], bool)
    singles = tuple(sorted(i for i, c in counts.items() if c == 1))
    return mask, SingletonReport(singles, int(mask.sum()), int((~mask).sum()))


def closed_set_split(
    identities: Sequence[str], holdout_fraction: float = 0.25, seed: int = 0
) -> Split:
    """Hold out a fraction of each identity's images (stratified).

    Every identity with at least two images keeps at least one training image and holds
    out at least one; single-image identities stay in training.

    Raises:
        DataError: No identity has two images (nothing to hold out).
    """
    if not 0.0 < holdout_fraction < 1.0:
        raise DataError(f"holdout fraction must be in (0, 1), got {holdout_fraction}")
    ids = np.asarray(identities, dtype=object)
    rng = numpy_rng(seed, 101)
    train: list[int] = []
    held: list[int] = []
    for ident in sorted(set(identities)):
        members = rng.permutation(np.flatnonzero(ids == ident))
        n = len(members)
        n_hold = 0 if n < 2 else min(n - 1, max(1, round(n * holdout_fraction)))
        held.extend(members[:n_hold].tolist())
        train.extend(members[n_hold:].tolist())
    if not held:
        raise DataError("cannot make a closed-set split: no identity has two or more images")
    return Split(np.sort(np.array(train, np.int64)), np.sort(np.array(held, np.int64)), "closed")


def open_set_split(
    identities: Sequence[str], holdout_fraction: float = 0.25, seed: int = 0
) -> Split:
    """Hold out whole identities (those are never trained on).

    Held-out identities are drawn among those with at least two images (so they can be
    queries); at least two identities stay in training.

    Raises:
        DataError: Fewer than three identities, or none with two images to hold out.
    """
    if not 0.0 < holdout_fraction < 1.0:
        raise DataError(f"holdout fraction must be in (0, 1), got {holdout_fraction}")
    counts = Counter(identities)
    if len(counts) < 3:
        raise DataError(f"open-set split needs at least 3 identities, got {len(counts)}")
    eligible = sorted(i for i, c in counts.items() if c >= 2)
    if not eligible:
        raise DataError("open-set split: no identity has two or more images")
    n_hold = min(len(eligible), len(counts) - 2, max(1, round(len(counts) * holdout_fraction)))
    rng = numpy_rng(seed, 102)
    held_ids = set(rng.choice(np.array(eligible, dtype=object), size=n_hold, replace=False))
    is_held = np.array([i in held_ids for i in identities], bool)
    return Split(np.flatnonzero(~is_held), np.flatnonzero(is_held), "open")
