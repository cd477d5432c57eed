"""Shared fixture of the re-ID data tests: writers for tiny images, CSVs and Kaggle folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fieldvision.data.images import write_image


class ReIDFiles:
    """Writes the small files the re-ID reader tests read."""

    @staticmethod
    def image(path: Path, value: int = 100, alpha: bool = True) -> Path:
        """An 8×8 image; with `alpha`, a 4×4 opaque square on a transparent ground."""
        arr = np.full((8, 8, 4 if alpha else 3), value, np.uint8)
        if alpha:
            arr[..., 3] = 0
            arr[2:6, 2:6, 3] = 255
        return write_image(path, arr)

    @staticmethod
    def csv(path: Path, frame: pd.DataFrame) -> Path:
        """`frame` as a CSV without the index."""
        frame.to_csv(path, index=False)
        return path

    @classmethod
    def kaggle(cls, root: Path, nested: bool = False) -> Path:
        """A Kaggle layout: 7 train images of 3 identities, 3 test images, 6 pairs, truth."""
        train_dir = root / "train" / "train" if nested else root / "train"
        test_dir = root / "test"
        rows = [(f"t{i}.png", f"id{i % 3}") for i in range(7)]
        for i, (name, _) in enumerate(rows):
            cls.image(train_dir / name, 10 * i)
        cls.csv(root / "train.csv", pd.DataFrame(rows, columns=["filename", "ground_truth"]))
        names = ["q0.png", "q1.png", "q2.png"]
        for name in names:
            cls.image(test_dir / name)
        pairs = [
            (f"r{k}", a, b)
            for k, (a, b) in enumerate((a, b) for a in names for b in names if a != b)
        ]
        columns = ["row_id", "query_image", "gallery_image"]
        cls.csv(root / "test.csv", pd.DataFrame(pairs, columns=columns))
        cls.csv(
            root / "test_truth.csv",
            pd.DataFrame({"filename": names, "ground_truth": ["id0", "id0", "id1"]}),
        )
        return root


@pytest.fixture
def files() -> ReIDFiles:
    """Writers for images, CSVs and Kaggle folders (see `ReIDFiles`)."""
    return ReIDFiles()
