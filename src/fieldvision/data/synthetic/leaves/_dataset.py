"""`generate_leaf_dataset`: a MIL dataset of leaf photos with image labels and lesion masks."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fieldvision.console import progress_iter
from fieldvision.data.images import write_image
from fieldvision.data.synthetic.leaves._lesions import LEAF_CLASSES
from fieldvision.data.synthetic.leaves._render import render_leaf_layers
from fieldvision.data.synthetic.leaves._scene import make_style
from fieldvision.errors import ConfigError
from fieldvision.io import write_csv, write_json
from fieldvision.seeding import numpy_rng

# Stream ids for numpy_rng so labels, groups, plot styles and images never share numbers.
_LABEL_STREAM = 1
_GROUP_STREAM = 2
_STYLE_STREAM = 3
_IMAGE_STREAM = 4


@dataclass(frozen=True)
class SynthMILSummary:
    """What `generate_leaf_dataset` wrote.

    Attributes:
        n_images: Number of images.
        classes: Class names, ``"healthy"`` first.
        per_class: Images per class.
        lesion_fraction: Mean lesion-mask fraction of the frame, per class.
        out: The dataset folder.
    """

    n_images: int
    classes: tuple[str, ...]
    per_class: dict[str, int]
    lesion_fraction: dict[str, float]
    out: Path


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _check_size(size: int | tuple[int, int]) -> tuple[int, int]:
    if _is_int(size):
        hw: tuple = (size, size)
    elif isinstance(size, tuple | list):
        hw = tuple(size)
    else:
        hw = ()
    if len(hw) != 2 or not all(_is_int(v) for v in hw):
        raise ConfigError(f"size must be an int or an (H, W) pair of ints, got {size!r}")
    if min(hw) < 64:
        raise ConfigError(f"size must be at least 64 px per side, got {size!r}")
    return int(hw[0]), int(hw[1])


def _check_args(
    n: int, size: int | tuple[int, int], classes: int, distractors: float, groups: int | None
) -> tuple[tuple[int, int], int]:
    """Validate the arguments; return ``((H, W), number of groups)``."""
    if not _is_int(classes) or not 2 <= classes <= len(LEAF_CLASSES):
        raise ConfigError(
            f"classes must be an int in 2..{len(LEAF_CLASSES)} (healthy + diseases), "
            f"got {classes!r}"
        )
    if not _is_int(n) or n < 2 * classes:
        raise ConfigError(
            f"n must be an int of at least 2 images per class ({2 * classes} for "
            f"classes={classes}), got {n!r}"
        )
    hw = _check_size(size)
    if isinstance(distractors, bool) or not isinstance(distractors, int | float):
        raise ConfigError(f"distractors must be a number in [0, 1], got {distractors!r}")
    if not 0.0 <= float(distractors) <= 1.0:
        raise ConfigError(f"distractors must be in [0, 1], got {distractors!r}")
    n_groups = max(2, n // 4) if groups is None else groups
    if not _is_int(n_groups) or not 1 <= n_groups <= n:
        raise ConfigError(f"groups must be an int in 1..n ({n}), got {groups!r}")
    return hw, int(n_groups)


def generate_leaf_dataset(
    out: str | os.PathLike[str],
    n: int = 400,
    size: int | tuple[int, int] = 1024,
    classes: int = 3,
    seed: int = 0,
    distractors: float = 0.5,
    groups: int | None = None,
    progress: bool = True,
) -> SynthMILSummary:
    """Write a synthetic rice-leaf MIL dataset (image labels only, lesion masks to measure).

    Files written under `out`::

        images/leaf_0000.png   RGB photos
        masks/leaf_0000.png    uint8 0/255 lesion masks (all zero for healthy leaves)
        labels.csv             image,label,group,mask (paths relative to `out`)
        synth.json             generator, arguments, per-class counts, lesion fractions

    Classes are balanced (round-robin, then shuffled with the seed). Each image belongs to
    a field plot (``group``, e.g. ``plot_007``); images of a plot share its background and
    lighting style, and plots are drawn independently of the labels, so grouped folds are
    meaningful and the style is no shortcut. Files are byte-identical for a seed.

    Args:
        out: Output folder (created); files of the same names are replaced.
        n: Number of images (at least 2 per class).
        size: Side in pixels, or ``(H, W)``; at least 64.
        classes: 2..4: ``healthy`` plus the first ``classes - 1`` of ``blast``,
            ``brown_spot``, ``blight``.
        seed: Seed of everything.
        distractors: Probability in [0, 1] that an image carries lesion-like hard
            negatives (any class).
        groups: Number of field plots; default ``max(2, n // 4)``.
        progress: Show a progress bar.

    Returns:
        A summary of what was written.

    Raises:
        ConfigError: An argument is out of range.
    """
    hw, n_groups = _check_args(n, size, classes, distractors, groups)
    root = Path(out)
    names = LEAF_CLASSES[:classes]
    labels = np.array(names)[np.arange(n) % classes][numpy_rng(seed, _LABEL_STREAM).permutation(n)]
    plot = (np.arange(n) % n_groups)[numpy_rng(seed, _GROUP_STREAM).permutation(n)]
    styles = [make_style(numpy_rng(seed, _STYLE_STREAM, g)) for g in range(n_groups)]
    width = max(4, len(str(n - 1)))
    rows, fractions = [], {c: [] for c in names}
    for i in progress_iter(range(n), "rendering leaves", total=n, enabled=progress):
        label, g = str(labels[i]), int(plot[i])
        layers = render_leaf_layers(
            label, hw, numpy_rng(seed, _IMAGE_STREAM, i), float(distractors), styles[g]
        )
        name = f"leaf_{i:0{width}d}.png"
        write_image(root / "images" / name, layers.image)
        write_image(root / "masks" / name, layers.mask)
        rows.append((f"images/{name}", label, f"plot_{g:03d}", f"masks/{name}"))
        fractions[label].append(float(np.count_nonzero(layers.mask)) / layers.mask.size)
    write_csv(root / "labels.csv", pd.DataFrame(rows, columns=["image", "label", "group", "mask"]))
    per_class = {c: len(fractions[c]) for c in names}
    mean_fraction = {c: round(float(np.mean(fractions[c])), 6) for c in names}
    write_json(
        root / "synth.json",
        {
            "generator": "fieldvision.data.synthetic.leaves",
            "n": n,
            "size": list(hw),
            "classes": list(names),
            "seed": seed,
            "distractors": float(distractors),
            "groups": n_groups,
            "per_class": per_class,
            "lesion_fraction": mean_fraction,
        },
    )
    return SynthMILSummary(n, tuple(names), per_class, mean_fraction, root)
