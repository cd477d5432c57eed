"""The one way the pipelines batch a map-style dataset for training and validation."""

from __future__ import annotations

from torch.utils.data import DataLoader, Dataset

from fieldvision.seeding import torch_generator

__all__ = ["batch_loader"]


def batch_loader(
    dataset: Dataset, batch_size: int, *, train: bool, num_workers: int = 0, seed: int = 0
) -> DataLoader:
    """A training loader (shuffled by a seeded generator, last partial batch dropped when
    the dataset holds more than one batch) or a validation loader (in order, complete)."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=train,
        drop_last=train and len(dataset) > batch_size,  # type: ignore[arg-type]
        num_workers=num_workers,
        generator=torch_generator(seed),
    )
