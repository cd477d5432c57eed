"""One inference loop for every pipeline: views (TTA), batching, device, AMP → NumPy arrays.

`predict_views` runs ``call(model, batch)`` over a dataset once per batch and, inside the
batch, once per `View` (identity, horizontal flip, vertical flip): images are decoded once
and flipped on the device, which is cheaper than a data pass per view. It returns one dict
of arrays per view, so callers can average them (`mean_views`) or keep a single view (the
no-TTA ablation, tile weights that flips would permute).

Batches are dicts with ``image: Tensor[B, 3, H, W]`` in [0, 1] (the one image contract);
other tensors (e.g. ``meta``) travel with the batch unchanged by the views. On CUDA the
forward runs under autocast (bf16 where supported, else fp16) and outputs are cast back to
float32; on CPU it runs in fp32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from fieldvision.console import progress_iter
from fieldvision.runtime import resolve_device

__all__ = ["IDENTITY", "View", "flip_views", "mean_views", "predict_views"]


@dataclass(frozen=True)
class View:
    """A deterministic test-time view of a batch of images.

    Attributes:
        name: Label (``identity``, ``hflip``, ``vflip``).
        hflip: Mirror left-right.
        vflip: Mirror top-bottom.
    """

    name: str
    hflip: bool = False
    vflip: bool = False

    def __call__(self, images: Tensor) -> Tensor:
        """``Tensor[B, C, H, W] -> Tensor[B, C, H, W]``."""
        dims = [d for d, on in ((-1, self.hflip), (-2, self.vflip)) if on]
        return images.flip(dims) if dims else images


IDENTITY = View("identity")
_HFLIP = View("hflip", hflip=True)
_VFLIP = View("vflip", vflip=True)


def flip_views(tta: bool, vertical: bool = True) -> tuple[View, ...]:
    """The views of flip TTA: identity first, then h-flip (and v-flip when `vertical`).

    Top-down photos (pasture, boards, leaves) have no up; animals and people do, so re-ID
    uses ``vertical=False``. Without `tta`: the identity view only.
    """
    if not tta:
        return (IDENTITY,)
    return (IDENTITY, _HFLIP, _VFLIP) if vertical else (IDENTITY, _HFLIP)


def _autocast(device: str) -> contextlib.AbstractContextManager[Any]:
    if device != "cuda":
        return contextlib.nullcontext()
    half = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=half)


@torch.no_grad()
def predict_views(
    model: nn.Module,
    data: Dataset | DataLoader | Iterable[Mapping[str, Any]],
    call: Callable[[nn.Module, dict[str, Any]], Mapping[str, Tensor]],
    views: Sequence[View] = (IDENTITY,),
    device: str = "auto",
    batch_size: int = 32,
    num_workers: int = 0,
    progress: bool = False,
    description: str = "predicting",
) -> list[dict[str, np.ndarray]]:
    """Run `call` over `data` for every view; return one dict of arrays per view.

    Args:
        model: Set to eval mode and moved to `device` (it stays there).
        data: A map-style Dataset (batched here, in order), a DataLoader, or any iterable
            of batch dicts.
        call: ``(model, batch) -> {name: Tensor[B, ...]}``; the batch's ``image`` is
            already the view's.
        views: Views to run, e.g. ``flip_views(tta=True)``.
        device: ``auto`` | ``cpu`` | ``cuda``.
        batch_size: Batch size when `data` is a Dataset.
        num_workers: DataLoader workers when `data` is a Dataset.
        progress: Show a progress bar.
        description: Progress-bar label.

    Returns:
        ``[ {name: np.ndarray[N, ...] float32} for each view ]`` in `views` order; empty
        dicts when `data` is empty (`call` never ran, so its keys are unknown).
    """
    dev = resolve_device(device)
    model = model.eval().to(dev)
    loader: Any = data
    if isinstance(data, Dataset):
        loader = DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    if progress:
        loader = progress_iter(
            loader, description, len(loader) if hasattr(loader, "__len__") else None
        )
    chunks: list[dict[str, list[np.ndarray]]] = [{} for _ in views]
    for batch in loader:
        batch = {k: v.to(dev) if torch.is_tensor(v) else v for k, v in batch.items()}
        for v, view in enumerate(views):
            viewed = {**batch, "image": view(batch["image"])}
            with _autocast(dev):
                out = call(model, viewed)
            for key, value in out.items():
                chunks[v].setdefault(key, []).append(value.float().cpu().numpy())
    return [{k: np.concatenate(parts) for k, parts in c.items()} for c in chunks]


def mean_views(outputs: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Element-wise mean over views of each output (TTA averaging)."""
    if not outputs:
        return {}
    return {key: np.mean([o[key] for o in outputs], axis=0) for key in outputs[0]}
