"""`MILSamples`: the validated container of a multiple-instance dataset (one label per image)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fieldvision.errors import DataError

__all__ = ["MILSamples"]


@dataclass(frozen=True)
class MILSamples:
    """Images with an optional image-level label, group and localisation ground truth.

    Attributes:
        paths: Image files.
        names: Unique image names (the CSV value, or ``class/file`` for class folders).
        labels: Class name per image, or None for unlabelled images.
        groups: Group per image (images of a group never straddle folds), or None.
        masks: Lesion-mask file per image (None entries where absent), or None.
        boxes: Box file per image (``x1 y1 x2 y2 [type]`` lines), or None.
        origins: Where each sample came from, for error messages.
        source: The file or folder the samples were read from.
    """

    paths: tuple[Path, ...]
    names: tuple[str, ...]
    labels: tuple[str, ...] | None
    groups: tuple[str, ...] | None
    masks: tuple[Path | None, ...] | None
    boxes: tuple[Path | None, ...] | None
    origins: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def classes(self) -> tuple[str, ...]:
        """Sorted class names present in the labels (empty when unlabelled)."""
        return tuple(sorted(set(self.labels or ())))

    def label_ids(self, classes: Sequence[str]) -> np.ndarray:
        """int64[N] indices of the labels into `classes`.

        Raises:
            DataError: Unlabelled samples, or a label that is not one of `classes`.
        """
        if self.labels is None:
            raise DataError(f"{self.source}: images have no labels")
        lookup = {c: i for i, c in enumerate(classes)}
        unknown = sorted({lab for lab in self.labels if lab not in lookup})
        if unknown:
            first = next(
                o for o, lab in zip(self.origins, self.labels, strict=True) if lab in unknown
            )
            raise DataError(
                f"{self.source}: label(s) {', '.join(map(repr, unknown))} are not classes of "
                f"the run ({', '.join(classes)}); first at {first}"
            )
        return np.array([lookup[lab] for lab in self.labels], np.int64)

    def has_localisation(self, i: int) -> bool:
        """True when image `i` has a lesion mask or a box file."""
        return bool(
            (self.masks is not None and self.masks[i] is not None)
            or (self.boxes is not None and self.boxes[i] is not None)
        )

    def subset(self, indices: Sequence[int] | np.ndarray) -> MILSamples:
        """The samples at `indices` (in that order)."""
        idx = [int(i) for i in indices]

        def pick(values: tuple | None) -> tuple | None:
            return None if values is None else tuple(values[i] for i in idx)

        return MILSamples(
            tuple(self.paths[i] for i in idx),
            tuple(self.names[i] for i in idx),
            pick(self.labels),
            pick(self.groups),
            pick(self.masks),
            pick(self.boxes),
            tuple(self.origins[i] for i in idx),
            self.source,
        )
