"""Image transforms as plain tensor ops with an explicit ``torch.Generator``.

Conventions: ``img: Tensor[3, H, W]`` float in [0, 1] (models normalise inside), ``mask:
Tensor[1, H, W]`` float in [0, 1] (1 = animal) or None. Random ops take ``generator`` and
never touch the global RNG, so a sample's augmentation is reproducible from its seed
whichever worker process draws it.

Besides the usual re-ID augmentations (random resized crop, flip, colour jitter, random
erasing) there are the alpha-mask ops: `random_background` pastes the animal onto a random
colour / noise / texture (an augmentation that removes the background shortcut), and
`foreground_only` / `background_only` build the two views of the background-reliance
diagnostic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "EvalTransform",
    "TrainTransform",
    "background_only",
    "color_jitter",
    "foreground_only",
    "hflip",
    "mixup",
    "random_background",
    "random_erasing",
    "random_resized_crop",
    "resize",
    "to_tensor",
]


def _uniform(generator: torch.Generator | None, low: float = 0.0, high: float = 1.0) -> float:
    return float(low + (high - low) * torch.rand((), generator=generator))


def to_tensor(image: np.ndarray) -> tuple[Tensor, Tensor | None]:
    """Convert a uint8 RGB or RGBA array to float tensors.

    Args:
        image: uint8[H, W, 3] or uint8[H, W, 4].

    Returns:
        ``(img: Tensor[3, H, W] in [0, 1], mask: Tensor[1, H, W] in [0, 1] or None)``; the
        mask is the alpha channel when there is one.
    """
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"expected an (H, W, 3|4) image, got shape {image.shape}")
    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0  # (C, H, W)
    if t.shape[0] == 4:
        return t[:3].contiguous(), t[3:].contiguous()
    return t, None


def resize(img: Tensor, size: tuple[int, int], mode: str = "bilinear") -> Tensor:
    """Resize ``img: Tensor[C, H, W]`` to ``size = (H', W')`` (antialiased when shrinking)."""
    if tuple(img.shape[-2:]) == tuple(size):
        return img
    antialias = mode in ("bilinear", "bicubic")
    kwargs = {"align_corners": False, "antialias": antialias} if antialias else {}
    return F.interpolate(img[None], size=size, mode=mode, **kwargs)[0]


def random_resized_crop(
    img: Tensor,
    mask: Tensor | None,
    size: tuple[int, int],
    generator: torch.Generator | None = None,
    scale: tuple[float, float] = (0.7, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> tuple[Tensor, Tensor | None]:
    """Crop a random area fraction in `scale` with aspect in `ratio`, resize to `size`.

    The same box is applied to `mask`. Falls back to the whole image after 10 failed draws.

    Returns:
        ``(img: Tensor[3, *size], mask: Tensor[1, *size] or None)``.
    """
    _, h, w = img.shape
    area = h * w
    box = (0, 0, h, w)
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * _uniform(generator, *scale)
        aspect = math.exp(_uniform(generator, *log_r))
        cw = round(math.sqrt(target * aspect))
        ch = round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(torch.randint(0, h - ch + 1, (), generator=generator))
            left = int(torch.randint(0, w - cw + 1, (), generator=generator))
            box = (top, left, ch, cw)
            break
    top, left, ch, cw = box
    img = resize(img[:, top : top + ch, left : left + cw], size)
    if mask is not None:
        mask = resize(mask[:, top : top + ch, left : left + cw], size)
    return img, mask


def hflip(img: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
    """Mirror left-right (last axis)."""
    return img.flip(-1), None if mask is None else mask.flip(-1)


def color_jitter(
    img: Tensor,
    generator: torch.Generator | None = None,
    brightness: float = 0.2,
    contrast: float = 0.2,
    saturation: float = 0.2,
) -> Tensor:
    """Random brightness, contrast and saturation factors in ``[1 - x, 1 + x]``.

    Args:
        img: Tensor[3, H, W] in [0, 1].

    Returns:
        Tensor[3, H, W] clamped to [0, 1].
    """
    out = img
    if brightness > 0:
        out = out * _uniform(generator, 1 - brightness, 1 + brightness)
    if contrast > 0:
        mean = _gray(out).mean()
        out = (out - mean) * _uniform(generator, 1 - contrast, 1 + contrast) + mean
    if saturation > 0:
        gray = _gray(out)  # (1, H, W)
        out = (out - gray) * _uniform(generator, 1 - saturation, 1 + saturation) + gray
    return out.clamp(0.0, 1.0)


def _gray(img: Tensor) -> Tensor:
    # ITU-R 601 luma, (3, H, W) -> (1, H, W)
    weights = img.new_tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
    return (img * weights).sum(dim=0, keepdim=True)


def random_erasing(
    img: Tensor,
    generator: torch.Generator | None = None,
    p: float = 0.25,
    scale: tuple[float, float] = (0.02, 0.2),
    ratio: tuple[float, float] = (0.3, 3.3),
) -> Tensor:
    """With probability `p`, replace a random rectangle with uniform noise.

    Args:
        img: Tensor[C, H, W] (any value range; the noise matches [min, max] of `img`).
    """
    if p <= 0 or _uniform(generator) >= p:
        return img
    c, h, w = img.shape
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = h * w * _uniform(generator, *scale)
        aspect = math.exp(_uniform(generator, *log_r))
        eh, ew = round(math.sqrt(target / aspect)), round(math.sqrt(target * aspect))
        if 0 < eh < h and 0 < ew < w:
            top = int(torch.randint(0, h - eh + 1, (), generator=generator))
            left = int(torch.randint(0, w - ew + 1, (), generator=generator))
            lo, hi = float(img.min()), float(img.max())
            noise = torch.rand((c, eh, ew), generator=generator) * (hi - lo) + lo
            out = img.clone()
            out[:, top : top + eh, left : left + ew] = noise.to(img.dtype)
            return out
    return img


def _random_backdrop(h: int, w: int, generator: torch.Generator | None) -> Tensor:
    """A random background Tensor[3, H, W] in [0, 1]: flat colour, smooth colour noise,
    stripes, or pixel noise."""
    kind = int(torch.randint(0, 4, (), generator=generator))
    c1 = torch.rand((3, 1, 1), generator=generator)
    if kind == 0:
        return c1.expand(3, h, w).clone()
    if kind == 1:
        cells = int(torch.randint(2, 9, (), generator=generator))
        grid = torch.rand((1, 3, cells, cells), generator=generator)
        return F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)[0].clamp(0, 1)
    if kind == 2:
        c2 = torch.rand((3, 1, 1), generator=generator)
        angle = _uniform(generator, 0, math.pi)
        freq = _uniform(generator, 0.1, 0.6)
        yy = torch.arange(h, dtype=torch.float32).view(h, 1)
        xx = torch.arange(w, dtype=torch.float32).view(1, w)
        wave = 0.5 + 0.5 * torch.sin(freq * (xx * math.cos(angle) + yy * math.sin(angle)))
        return c1 * (1 - wave) + c2 * wave  # (3, H, W)
    return (c1 + 0.25 * torch.randn((3, h, w), generator=generator)).clamp(0, 1)


def random_background(
    img: Tensor, mask: Tensor | None, generator: torch.Generator | None = None
) -> Tensor:
    """Composite the animal (``mask``) onto a random backdrop; no-op without a mask.

    Args:
        img: Tensor[3, H, W] in [0, 1].
        mask: Tensor[1, H, W] in [0, 1] or None.
    """
    if mask is None:
        return img
    backdrop = _random_backdrop(img.shape[1], img.shape[2], generator).to(img.dtype)
    return img * mask + backdrop * (1 - mask)


def foreground_only(img: Tensor, mask: Tensor | None, fill: float = 0.5) -> Tensor:
    """Keep the animal, paint the background grey (`fill`); no-op without a mask."""
    if mask is None:
        return img
    return img * mask + fill * (1 - mask)


def background_only(img: Tensor, mask: Tensor | None, fill: float = 0.5) -> Tensor:
    """Paint the animal grey (`fill`), keep the background; no-op without a mask.

    The silhouette stays visible as a grey shape: that is deliberate, since the diagnostic
    asks whether *background pixels* identify the animal, and any fill leaves some shape cue.
    """
    if mask is None:
        return img
    return img * (1 - mask) + fill * mask


def mixup(
    x: Tensor, alpha: float, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, float]:
    """Mix each sample with a random partner: ``lam * x + (1 - lam) * x[perm]``.

    Args:
        x: Tensor[B, ...] batch.
        alpha: Beta(alpha, alpha) concentration; ``alpha <= 0`` returns `x` unchanged.
        generator: Source of the permutation and of ``lam``.

    Returns:
        ``(mixed: Tensor[B, ...], perm: Tensor[B] int64, lam: float)``; the loss is
        ``lam * L(y) + (1 - lam) * L(y[perm])``.
    """
    b = x.shape[0]
    if alpha <= 0 or b < 2:
        return x, torch.arange(b, device=x.device), 1.0
    # torch has no public Beta sampler taking a generator: seed a NumPy one from it instead.
    seed = int(torch.randint(0, 2**62, (), generator=generator))
    lam = float(np.random.default_rng(seed).beta(alpha, alpha))
    perm = torch.randperm(b, generator=generator).to(x.device)
    return lam * x + (1 - lam) * x[perm], perm, lam


@dataclass
class TrainTransform:
    """Re-ID training augmentation.

    Order: random background (needs the full-frame mask) → random resized crop → flip →
    colour jitter → random erasing. Output stays in [0, 1]: models normalise inside.

    Args:
        size: Output ``(H, W)``.
        crop_scale: Area range of the random resized crop.
        flip_p: Horizontal flip probability.
        brightness: Colour jitter strength (also used for contrast).
        saturation: Saturation jitter strength.
        erase_p: Random erasing probability.
        background_p: Probability of replacing the background (only when a mask exists).
    """

    size: tuple[int, int] = (128, 128)
    crop_scale: tuple[float, float] = (0.7, 1.0)
    flip_p: float = 0.5
    brightness: float = 0.2
    saturation: float = 0.2
    erase_p: float = 0.25
    background_p: float = 0.5

    def __call__(
        self, img: Tensor, mask: Tensor | None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Augment one sample.

        Args:
            img: Tensor[3, H, W] in [0, 1].
            mask: Tensor[1, H, W] or None.
            generator: Randomness source.

        Returns:
            ``(img: Tensor[3, *size] in [0, 1], mask: Tensor[1, *size] or None)``.
        """
        if mask is not None and self.background_p > 0 and _uniform(generator) < self.background_p:
            img = random_background(img, mask, generator)
        img, mask = random_resized_crop(img, mask, self.size, generator, self.crop_scale)
        if _uniform(generator) < self.flip_p:
            img, mask = hflip(img, mask)
        img = color_jitter(img, generator, self.brightness, self.brightness, self.saturation)
        img = random_erasing(img, generator, self.erase_p)
        return img, mask


@dataclass
class EvalTransform:
    """Deterministic evaluation transform: resize and an optional diagnostic view.

    Args:
        size: Output ``(H, W)``.
        view: ``"full"``, ``"foreground"`` (background grey) or ``"background"`` (animal grey).
    """

    size: tuple[int, int] = (128, 128)
    view: str = "full"

    def __post_init__(self) -> None:
        if self.view not in ("full", "foreground", "background"):
            raise ValueError(f"view must be full, foreground or background, got {self.view!r}")

    def __call__(
        self, img: Tensor, mask: Tensor | None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Returns ``(img: Tensor[3, *size] in [0, 1], mask: Tensor[1, *size] or None)``."""
        img = resize(img, self.size)
        if mask is not None:
            mask = resize(mask, self.size)
        if self.view == "foreground":
            img = foreground_only(img, mask)
        elif self.view == "background":
            img = background_only(img, mask)
        return img, mask
