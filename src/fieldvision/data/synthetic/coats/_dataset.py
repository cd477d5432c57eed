"""The Kaggle-layout dataset writer: images per identity, train / test split, tables."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fieldvision.data.synthetic.coats._identity import make_identity
from fieldvision.data.synthetic.coats._render import render_coat_image
from fieldvision.io import write_csv, write_json
from fieldvision.seeding import numpy_rng

# Stream ids for numpy_rng so identities, images and counts never share random numbers
# (`_identity` uses stream 1).
_IMAGE_STREAM = 2
_COUNT_STREAM = 3
_SPLIT_STREAM = 4


@dataclass(frozen=True)
class SynthReIDSummary:
    """What `generate_coat_dataset` wrote."""

    root: Path
    n_identities: int
    n_train_images: int
    n_test_images: int
    n_pairs: int
    images_per_identity: dict[str, int]


def image_counts(
    n_identities: int, per_id: int, seed: int = 0, long_tail: bool = True, minimum: int = 2
) -> np.ndarray:
    """Images per identity: a long tail (lognormal) with mean close to `per_id`.

    Like the real data (13–183 images per jaguar), a few identities are common and a few
    have only `minimum` images.

    Returns:
        int64[n_identities].
    """
    if n_identities <= 0:
        return np.zeros(0, np.int64)
    if not long_tail:
        return np.full(n_identities, max(per_id, minimum), np.int64)
    rng = numpy_rng(seed, _COUNT_STREAM)
    raw = rng.lognormal(0.0, 0.6, size=n_identities)
    counts = np.round(raw / raw.mean() * per_id)
    counts[np.argsort(raw)[: max(1, n_identities // 10)]] = minimum  # the rare animals
    return np.clip(counts, minimum, 6 * per_id).astype(np.int64)


def generate_coat_dataset(
    out: str | os.PathLike[str],
    n_identities: int = 40,
    per_id: int = 12,
    seed: int = 0,
    size: tuple[int, int] = (128, 128),
    test_fraction: float = 0.2,
    background_leak: float = 0.3,
    occlusion_prob: float = 0.35,
    difficulty: float = 1.0,
    long_tail: bool = True,
    write_image: Callable[[Path, np.ndarray], object] | None = None,
) -> SynthReIDSummary:
    """Write a synthetic dataset in the Kaggle Jaguar Re-ID layout.

    Files written under `out`::

        train.csv        filename,ground_truth
        train/*.png      RGBA training images
        test.csv         row_id,query_image,gallery_image (every ordered pair, q != g)
        test/*.png       RGBA held-out images (the same identities, unseen images)
        test_truth.csv   filename,ground_truth for the test images (for evaluation)
        synth.json       generator parameters

    Args:
        out: Output directory (created).
        n_identities: Number of animals.
        per_id: Mean images per animal (before the train/test split).
        seed: Seed of the whole dataset.
        size: ``(H, W)`` of every image.
        test_fraction: Fraction of each identity's images moved to ``test/`` (animals with
            fewer than 4 images keep all of theirs in ``train/``).
        background_leak: Fraction of site-bound identities (see `make_identity`).
        occlusion_prob: See `render_coat_image`.
        difficulty: See `render_coat_image`.
        long_tail: Draw a long-tailed number of images per identity (else `per_id` each).
        write_image: ``(path, rgba)`` writer; defaults to `fieldvision.data.images.write_image`.

    Returns:
        A summary of what was written.
    """
    if write_image is None:
        from fieldvision.data.images import write_image as _write

        write_image = _write
    root = Path(out)
    counts = image_counts(n_identities, per_id, seed, long_tail)
    split_rng = numpy_rng(seed, _SPLIT_STREAM)
    train_rows: list[tuple[str, str]] = []
    test_rows: list[tuple[str, str]] = []
    for ident_idx, count in enumerate(counts):
        identity = make_identity(ident_idx, seed, background_leak=background_leak)
        n_test = int(round(count * test_fraction)) if count >= 4 else 0
        is_test = np.zeros(int(count), bool)
        is_test[split_rng.choice(int(count), size=n_test, replace=False)] = True
        for img_idx in range(int(count)):
            rng = numpy_rng(seed, _IMAGE_STREAM, ident_idx, img_idx)
            rgba = render_coat_image(identity, rng, size, 0.9, occlusion_prob, difficulty)
            rows, folder = (test_rows, "test") if is_test[img_idx] else (train_rows, "train")
            name = f"{folder}_{len(rows):05d}.png"
            write_image(root / folder / name, rgba)
            rows.append((name, identity.name))
    train = pd.DataFrame(train_rows, columns=["filename", "ground_truth"])
    truth = pd.DataFrame(test_rows, columns=["filename", "ground_truth"])
    names = truth["filename"].to_numpy()
    q_idx, g_idx = np.nonzero(~np.eye(len(names), dtype=bool))  # every ordered pair, q != g
    pairs = pd.DataFrame(
        {
            "row_id": np.arange(len(q_idx)),
            "query_image": names[q_idx],
            "gallery_image": names[g_idx],
        }
    )
    write_csv(root / "train.csv", train)
    write_csv(root / "test.csv", pairs)
    write_csv(root / "test_truth.csv", truth)
    write_json(
        root / "synth.json",
        {
            "generator": "fieldvision.data.synthetic.coats",
            "n_identities": n_identities,
            "per_id": per_id,
            "seed": seed,
            "size": list(size),
            "test_fraction": test_fraction,
            "background_leak": background_leak,
            "occlusion_prob": occlusion_prob,
            "difficulty": difficulty,
            "long_tail": long_tail,
        },
    )
    return SynthReIDSummary(
        root=root,
        n_identities=n_identities,
        n_train_images=len(train),
        n_test_images=len(truth),
        n_pairs=len(pairs),
        images_per_identity={f"coat_{i:03d}": int(c) for i, c in enumerate(counts)},
    )
