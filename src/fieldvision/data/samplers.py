"""P×K identity batch sampler for metric learning.

Every batch holds ``P`` identities with ``K`` images each, so that every anchor has
positives and negatives in the batch (needed by batch-hard triplet loss, and good for
margin losses on long-tailed data too). One epoch walks over every image about once:
each identity's images are shuffled and cut into chunks of ``K`` (an identity with fewer
than ``K`` images, or a short last chunk, is topped up by sampling its images with
replacement), then each batch takes ``P`` distinct identities, drawn with probability
proportional to the chunks they have left, and one chunk of each.

The order depends only on ``(seed, epoch)``: `set_epoch` (called by Lightning's loop or
the training system) gives a new, reproducible permutation each epoch. No global RNG.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from fieldvision.errors import ConfigError
from fieldvision.seeding import numpy_rng

__all__ = ["PKSampler"]


class PKSampler(Sampler[list[int]]):
    """Batch sampler yielding lists of ``P * K`` dataset indices.

    Args:
        labels: Identity label of every dataset item (any hashable values).
        p: Identities per batch.
        k: Images per identity per batch.
        seed: Base seed.
        max_chunks_per_identity: Cap on the chunks an identity contributes per epoch (None:
            no cap); caps over-represented identities in long-tailed data.

    Raises:
        ConfigError: ``p`` or ``k`` < 1, or fewer than ``p`` identities.

    Example:
        >>> DataLoader(dataset, batch_sampler=PKSampler(labels, p=8, k=4))
    """

    def __init__(
        self,
        labels: Sequence[object] | np.ndarray,
        p: int,
        k: int,
        seed: int = 0,
        max_chunks_per_identity: int | None = None,
    ) -> None:
        if p < 1 or k < 1:
            raise ConfigError(f"P×K sampler needs p >= 1 and k >= 1, got p={p}, k={k}")
        labels = np.asarray(labels)
        uniques, inverse = np.unique(labels, return_inverse=True)
        if len(uniques) < p:
            raise ConfigError(
                f"P×K sampler: p={p} identities per batch but the data has only {len(uniques)}",
                hint=f"set p <= {len(uniques)}",
            )
        order = np.argsort(inverse, kind="stable")
        bounds = np.cumsum(np.bincount(inverse, minlength=len(uniques)))[:-1]
        self._groups: list[np.ndarray] = np.split(order, bounds)  # indices per identity
        self.p = int(p)
        self.k = int(k)
        self.seed = int(seed)
        self.max_chunks = max_chunks_per_identity
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of epoch `epoch` (deterministic)."""
        self.epoch = int(epoch)

    def _chunks_per_identity(self) -> np.ndarray:
        n = np.array([int(np.ceil(len(g) / self.k)) for g in self._groups])
        return n if self.max_chunks is None else np.minimum(n, self.max_chunks)

    def __len__(self) -> int:
        """Number of batches in an epoch: all chunks, ``P`` per batch (epoch-independent)."""
        return int(self._chunks_per_identity().sum()) // self.p

    def __iter__(self) -> Iterator[list[int]]:
        rng = numpy_rng(self.seed, self.epoch)
        chunks: list[list[np.ndarray]] = []
        for group, n_chunks in zip(self._groups, self._chunks_per_identity(), strict=True):
            perm = rng.permutation(group)
            need = n_chunks * self.k
            if need > len(perm):  # top up with replacement
                perm = np.concatenate([perm, rng.choice(group, size=need - len(perm))])
            chunks.append([perm[i * self.k : (i + 1) * self.k] for i in range(n_chunks)])
        left = np.array([len(c) for c in chunks], dtype=np.float64)
        for _ in range(len(self)):
            # P distinct identities drawn with probability proportional to the chunks they
            # have left: big and small identities interleave through the epoch and drain
            # together. The small floor lets an exhausted identity fill a batch at the very
            # end (with a fresh random chunk) rather than leave it short.
            weights = left + 1e-6
            chosen = rng.choice(len(left), size=self.p, replace=False, p=weights / weights.sum())
            batch: list[int] = []
            for ident in chosen:
                if left[ident] >= 1:
                    left[ident] -= 1
                    chunk = chunks[ident][int(left[ident])]
                else:
                    chunk = rng.choice(self._groups[ident], size=self.k)
                batch.extend(int(i) for i in chunk)
            yield batch
