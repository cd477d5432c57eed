"""Grouped k-fold assignment: no group (e.g. a sampling date) straddles two folds.

Images taken on the same day share light, season and plot; splitting them across folds
leaks those and inflates the cross-validated score. Folds are assigned per group.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from fieldvision.errors import ConfigError, DataError

__all__ = ["fold_table", "grouped_folds"]


def grouped_folds(
    groups: Sequence[object],
    n_folds: int = 5,
    seed: int = 0,
    stratify: Sequence[object] | None = None,
) -> np.ndarray:
    """Assign every sample a fold id so that all samples of a group share one fold.

    Without `stratify`, groups are shuffled (seeded) and dealt to folds so fold sizes (in
    samples) are balanced (scikit-learn ``GroupKFold``). With `stratify` (one label per
    sample, e.g. the state or a binned target), ``StratifiedGroupKFold`` also balances the
    label distribution across folds.

    Args:
        groups: Group key per sample (N values).
        n_folds: Number of folds, ≥ 2 and ≤ the number of distinct groups.
        seed: Seed of the group shuffle; the same seed gives the same folds.
        stratify: Optional label per sample (N values).

    Returns:
        Array[N] int64 fold ids in ``[0, n_folds)``.

    Raises:
        ConfigError: `n_folds` < 2 or more folds than groups.
        DataError: `stratify` has a different length than `groups`.
    """
    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

    group_arr = np.asarray(pd.Series(list(groups), dtype=object).astype(str))
    n = len(group_arr)
    if n_folds < 2:
        raise ConfigError(f"n_folds must be at least 2, got {n_folds}")
    n_groups = len(np.unique(group_arr))
    if n_folds > n_groups:
        raise ConfigError(
            f"n_folds={n_folds} but there are only {n_groups} group(s) (e.g. sampling dates)",
            hint=f"use at most {n_groups} folds" if n_groups >= 2 else "add more groups",
        )
    folds = np.full(n, -1, dtype=np.int64)
    x_dummy = np.zeros((n, 1))
    if stratify is None:
        # GroupKFold balances sample counts greedily in group order; relabelling the groups
        # through a seeded permutation makes the assignment seed-dependent but reproducible.
        uniques, codes = np.unique(group_arr, return_inverse=True)
        perm = np.random.default_rng(seed).permutation(len(uniques))
        splitter = GroupKFold(n_splits=n_folds)
        splits = splitter.split(x_dummy, groups=perm[codes])
    else:
        labels = np.asarray(pd.Series(list(stratify), dtype=object).astype(str))
        if len(labels) != n:
            raise DataError(f"stratify has {len(labels)} values but groups has {n}")
        splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        splits = splitter.split(x_dummy, labels, groups=group_arr)
    for fold, (_, val_idx) in enumerate(splits):
        folds[val_idx] = fold
    return folds


def fold_table(
    image_ids: Sequence[object], groups: Sequence[object], folds: Sequence[int]
) -> pd.DataFrame:
    """Folds as a table (for ``folds.csv``): columns ``image_id``, ``group``, ``fold``.

    Raises:
        DataError: The three inputs have different lengths.
    """
    lengths = {len(image_ids), len(groups), len(folds)}
    if len(lengths) != 1:
        raise DataError(
            f"image_ids ({len(image_ids)}), groups ({len(groups)}) and folds ({len(folds)}) "
            "must have the same length"
        )
    return pd.DataFrame(
        {
            "image_id": list(image_ids),
            "group": list(groups),
            "fold": np.asarray(folds, dtype=np.int64),
        }
    )
