"""Seeding for reproducible runs, and per-object generators instead of global RNG.

torch is imported inside the functions that need it, so `numpy_rng` (used by readers and
the synthetic generators) costs no torch import.
"""

from __future__ import annotations

import os
import random
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["numpy_rng", "seed_everything", "torch_generator"]


def seed_everything(seed: int) -> int:
    """Seed Python, NumPy and torch (CPU and CUDA) global generators; return `seed`."""
    import torch

    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return seed


def numpy_rng(seed: int, *streams: int) -> np.random.Generator:
    """Independent NumPy generator for `(seed, *streams)`; use one per object, never global."""
    return np.random.default_rng(np.random.SeedSequence([seed, *streams]))


def torch_generator(seed: int) -> torch.Generator:
    """A CPU torch generator seeded with `seed`."""
    import torch

    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen
