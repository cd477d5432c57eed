"""`generate_pasture_dataset`: write a synthetic dataset in the Kaggle CSIRO layout."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fieldvision.console import progress_iter
from fieldvision.data.images import write_image
from fieldvision.data.synthetic.pasture._labels import sample_pasture_table
from fieldvision.data.synthetic.pasture._render import render_pasture
from fieldvision.data.synthetic.pasture._schema import (
    KAGGLE_TEST_COLUMNS,
    KAGGLE_TRAIN_COLUMNS,
    TARGET_NAMES,
)
from fieldvision.data.synthetic.pasture._stats import calibration_report
from fieldvision.io import write_csv, write_text
from fieldvision.seeding import numpy_rng

_STAMP_FRACTION = 0.25
_STRIP_FRACTION = 0.30


@dataclass(frozen=True)
class SynthImage:
    """One generated photo (a row of ``manifest.csv``)."""

    image_id: str
    split: str  # "train" or "test"
    image_path: str  # relative to the dataset directory, e.g. "train/ID1234567890.jpg"
    sampling_date: str
    state: str
    species: str
    month: int
    has_stamp: bool
    has_strip: bool
    strip: str  # "", "shadow", "frame", "tape"
    stamp_box: tuple[int, int, int, int] | None  # (y0, x0, y1, x1)
    true_green: float  # rendered (noise-free) components, grams
    true_dead: float
    true_clover: float
    cover: float  # fraction of pixels covered by vegetation
    visible_green: float  # fraction of pixels showing each component (after occlusion)
    visible_dead: float
    visible_clover: float


@dataclass(frozen=True)
class SynthSummary:
    """Result of `generate_pasture_dataset`."""

    out: Path
    n_train: int
    n_test: int
    size: tuple[int, int]
    seed: int
    images: tuple[SynthImage, ...]
    seconds: float
    report: str | None = None  # calibration report (Markdown) when a real table was given
    files: dict[str, Path] = field(default_factory=dict)

    def describe(self) -> str:
        """A few human-readable lines: what was written where, and how fast."""
        stamps = sum(im.has_stamp for im in self.images)
        strips = sum(im.has_strip for im in self.images)
        H, W = self.size
        lines = [
            f"{self.n_train} train + {self.n_test} test images ({W}x{H}, seed {self.seed}) "
            f"in {self.out} ({self.seconds:.1f} s)",
            f"{stamps} with a date stamp, {strips} with a bottom strip (see manifest.csv)",
        ]
        lines += [f"  {key}: {path}" for key, path in self.files.items()]
        return "\n".join(lines)

    def manifest(self) -> pd.DataFrame:
        """The per-image manifest as a DataFrame (also written to ``manifest.csv``)."""
        rows = []
        for im in self.images:
            row = asdict(im)
            box = row.pop("stamp_box")
            row["stamp_box"] = "" if box is None else " ".join(str(v) for v in box)
            rows.append(row)
        return pd.DataFrame(rows)


def _long_rows(frame: pd.DataFrame, split: str, with_meta: bool) -> pd.DataFrame:
    """Kaggle long rows, sorted by sample_id like the real files."""
    rows = []
    for r in frame.itertuples(index=False):
        path = f"{split}/{r.image_id}.jpg"
        for t in TARGET_NAMES:
            row = {"sample_id": f"{r.image_id}__{t}", "image_path": path}
            if with_meta:
                row |= {
                    "Sampling_Date": r.sampling_date,
                    "State": r.state,
                    "Species": r.species,
                    "Pre_GSHH_NDVI": r.ndvi,
                    "Height_Ave_cm": r.height,
                }
            row["target_name"] = t
            if with_meta:
                row["target"] = getattr(r, t)
            rows.append(row)
    cols = KAGGLE_TRAIN_COLUMNS if with_meta else KAGGLE_TEST_COLUMNS
    out = pd.DataFrame(rows, columns=cols)
    return out.sort_values("sample_id", kind="stable").reset_index(drop=True)


def _stamp_date(date: str) -> str:
    y, m, d = (int(v) for v in date.split("/"))
    return f"{y}/{m:02d}/{d:02d}"


def generate_pasture_dataset(
    out: str | Path,
    n_train: int = 160,
    n_test: int = 40,
    size: tuple[int, int] = (256, 512),
    seed: int = 0,
    real_table: str | Path | None = None,
    progress: bool = True,
    *,
    jpeg_quality: int = 92,
) -> SynthSummary:
    """Write a synthetic CSIRO-format pasture dataset.

    Args:
        out: Output directory (created); existing files of the same names are replaced.
        n_train: Images in ``train.csv`` / ``train/``.
        n_test: Images in ``test.csv`` / ``test/`` (their labels go to ``test_truth.csv``).
        size: ``(H, W)`` of the photos; 2:1 like the real 2000 x 1000 ones.
        seed: Everything (labels, pixels, ids) is a deterministic function of the seed.
        real_table: Optional real ``train.csv``: a real-vs-synthetic calibration report is
            written to ``calibration.md`` and returned in `SynthSummary.report`.
        progress: Show a progress bar while rendering.
        jpeg_quality: JPEG quality of the written photos.

    Returns:
        A `SynthSummary` with the per-image manifest.
    """
    if n_train < 0 or n_test < 0 or n_train + n_test == 0:
        raise ValueError(f"need at least one image, got n_train={n_train}, n_test={n_test}")
    H, W = size
    if H < 16 or W < 32:
        raise ValueError(f"size (H, W) must be at least (16, 32), got {size}")
    start = time.perf_counter()
    out = Path(out)
    n = n_train + n_test
    table = sample_pasture_table(n, seed)
    rng = numpy_rng(seed, 2)
    split = np.array(["train"] * n_train + ["test"] * n_test)[rng.permutation(n)]
    stamped = np.zeros(n, dtype=bool)
    stamped[rng.permutation(n)[: int(round(_STAMP_FRACTION * n))]] = True
    strips = np.array([""] * n, dtype=object)
    with_strip = rng.permutation(n)[: int(round(_STRIP_FRACTION * n))]
    strips[with_strip] = rng.choice(["shadow", "frame", "tape"], size=len(with_strip))

    images: list[SynthImage] = []
    rows = list(table.itertuples(index=False))
    for i in progress_iter(range(n), "rendering pastures", total=n, enabled=progress):
        r = rows[i]
        img, info = render_pasture(
            r.true_green,
            r.true_dead,
            r.true_clover,
            r.height,
            r.month,
            r.state,
            size=(H, W),
            rng=numpy_rng(seed, 3, i),
            stamp_text=_stamp_date(r.sampling_date) if stamped[i] else None,
            strip=str(strips[i]),
        )
        path = f"{split[i]}/{r.image_id}.jpg"
        write_image(out / path, img, quality=jpeg_quality)
        images.append(
            SynthImage(
                image_id=r.image_id,
                split=str(split[i]),
                image_path=path,
                sampling_date=r.sampling_date,
                state=r.state,
                species=r.species,
                month=int(r.month),
                has_stamp=info.has_stamp,
                has_strip=bool(info.strip),
                strip=info.strip,
                stamp_box=info.stamp_box,
                true_green=round(float(r.true_green), 4),
                true_dead=round(float(r.true_dead), 4),
                true_clover=round(float(r.true_clover), 4),
                cover=round(info.cover, 4),
                visible_green=round(info.visible[0], 4),
                visible_dead=round(info.visible[1], 4),
                visible_clover=round(info.visible[2], 4),
            )
        )

    train_rows = table[split == "train"]
    test_rows = table[split == "test"]
    files = {
        "train_csv": write_csv(out / "train.csv", _long_rows(train_rows, "train", True)),
        "test_csv": write_csv(out / "test.csv", _long_rows(test_rows, "test", False)),
        "test_truth_csv": write_csv(out / "test_truth.csv", _long_rows(test_rows, "test", True)),
    }
    summary = SynthSummary(
        out=out,
        n_train=n_train,
        n_test=n_test,
        size=(H, W),
        seed=seed,
        images=tuple(images),
        seconds=0.0,
        files=files,
    )
    files["manifest_csv"] = write_csv(out / "manifest.csv", summary.manifest())
    report = None
    if real_table is not None:
        real = pd.read_csv(real_table)
        synth = pd.read_csv(files["train_csv"])
        report = calibration_report(real, synth)
        files["calibration_md"] = write_text(out / "calibration.md", report)
    return SynthSummary(
        out=out,
        n_train=n_train,
        n_test=n_test,
        size=(H, W),
        seed=seed,
        images=tuple(images),
        seconds=time.perf_counter() - start,
        report=report,
        files=files,
    )
