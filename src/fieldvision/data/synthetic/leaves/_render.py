"""One leaf photo: background, blades, distractors, lesions, light and camera."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fieldvision.data.synthetic.leaves._camera import expose
from fieldvision.data.synthetic.leaves._distractors import add_distractors
from fieldvision.data.synthetic.leaves._leaf import draw_leaves, sample_blades
from fieldvision.data.synthetic.leaves._lesions import LEAF_CLASSES, add_lesions
from fieldvision.data.synthetic.leaves._scene import (
    SceneStyle,
    background,
    jitter_style,
    make_style,
)


@dataclass(frozen=True)
class LeafLayers:
    """A rendered photo and what is where in it.

    Attributes:
        image: uint8[H, W, 3] RGB photo.
        mask: uint8[H, W] lesion mask, 255 on lesion pixels (all zero for ``healthy``).
        leaf: bool[H, W] visible leaf (any blade covering at least half the pixel).
        distractors: bool[H, W] pixels covered by hard-negative marks (not lesions).
    """

    image: np.ndarray
    mask: np.ndarray
    leaf: np.ndarray
    distractors: np.ndarray


def render_leaf_layers(
    label: str,
    size: tuple[int, int],
    rng: np.random.Generator,
    distractors: float = 0.5,
    style: SceneStyle | None = None,
) -> LeafLayers:
    """Render one photo of class `label` and return it with its leaf and distractor maps.

    Args:
        label: One of `LEAF_CLASSES`.
        size: ``(H, W)`` in pixels.
        rng: Generator of this image (``numpy_rng(seed, stream, index)``).
        distractors: Probability in [0, 1] that the image carries hard negatives.
        style: The field plot's style (this image gets a jittered copy); None draws a new
            one from `rng`.

    Returns:
        The photo, its lesion mask, leaf map and distractor map.
    """
    if label not in LEAF_CLASSES:
        raise ValueError(f"unknown class {label!r}; expected one of {LEAF_CLASSES}")
    h, w = (int(v) for v in size)
    style = make_style(rng) if style is None else jitter_style(style, rng)
    scene = background(style, rng, h, w)
    canvas = draw_leaves(scene, sample_blades(rng, h, w, style), style, rng)
    covered = add_distractors(canvas, style, rng, distractors)
    mask = add_lesions(canvas, label, rng)
    image = expose(canvas.image, style, rng)
    return LeafLayers(image, mask, canvas.top >= 0, covered & (mask == 0))


def render_leaf(
    label: str, size: tuple[int, int], rng: np.random.Generator, distractors: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Render one rice-leaf photo of class `label` with its lesion mask.

    Args:
        label: One of `LEAF_CLASSES`: ``"healthy"``, ``"blast"``, ``"brown_spot"``,
            ``"blight"``.
        size: ``(H, W)`` in pixels.
        rng: Generator of this image (``numpy_rng(seed, stream, index)``).
        distractors: Probability in [0, 1] that the image carries lesion-like hard
            negatives (soil specks, droplets, glare, debris, dead tips).

    Returns:
        ``(image uint8[H, W, 3] RGB, mask uint8[H, W])``; the mask is 255 on lesion pixels
        and all zero for healthy leaves.
    """
    layers = render_leaf_layers(label, size, rng, distractors)
    return layers.image, layers.mask
