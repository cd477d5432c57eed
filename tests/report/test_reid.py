"""Re-ID report: figures and Markdown sections."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fieldvision.report.reid import (
    RetrievalExample,
    plot_cmc,
    plot_per_identity_ap,
    plot_retrieval_grid,
    plot_training_curve,
    write_reid_report,
)


def _example(correct):
    img = np.full((12, 10, 3), 128, np.uint8)
    return RetrievalExample(img, [img] * len(correct), correct, "coat_001")


def test_retrieval_grid_frames_matches_green_and_misses_red():
    fig = plot_retrieval_grid([_example([True, False]), _example([False, True])])
    axes = fig.get_axes()
    assert len(axes) == 6  # 2 rows x (query + 2)
    top_left_gallery = axes[1].get_images()[0].get_array()
    assert top_left_gallery.shape == (12 + 8, 10 + 8, 3)
    assert tuple(top_left_gallery[0, 0]) == (40, 170, 60)  # green border: correct
    assert tuple(axes[2].get_images()[0].get_array()[0, 0]) == (210, 40, 40)  # red: wrong
    assert tuple(top_left_gallery[10, 9]) == (128, 128, 128)  # the image itself is intact


def test_cmc_and_per_identity_plots():
    fig = plot_cmc({"raw": [0.5, 0.7, 0.9], "+QE": [0.6, 0.8, 1.0]})
    lines = fig.get_axes()[0].get_lines()
    assert len(lines) == 2 and list(lines[0].get_xdata()) == [1, 2, 3]
    bars = plot_per_identity_ap({"b": 0.9, "a": 0.2, "c": 0.5}).get_axes()[0].patches
    assert [round(p.get_height(), 2) for p in bars] == [0.2, 0.5, 0.9]  # sorted ascending
    assert plot_per_identity_ap({}).get_axes()


def test_training_curve(tmp_path):
    assert plot_training_curve(tmp_path / "none.csv") is None
    frame = pd.DataFrame(
        {"epoch": [0, 0, 1, 1], "val_map": [np.nan, 0.2, np.nan, 0.4],
         "train_loss_epoch": [3.0, np.nan, 2.0, np.nan]}
    )  # fmt: skip
    frame.to_csv(tmp_path / "metrics.csv", index=False)
    fig = plot_training_curve(tmp_path / "metrics.csv")
    assert fig is not None and list(fig.get_axes()[0].get_lines()[0].get_ydata()) == [0.2, 0.4]


def test_write_report(tmp_path):
    variants = {"raw": {"mAP": 0.5, "rank1": 0.6}, "+QE": {"mAP": 0.55, "rank1": 0.65}}
    results = {
        "protocol": "closed",
        "sets": {"validation": {"variants": variants, "n_queries": 4, "n_gallery": 9,
                                "warning": "2 identities have a single image"}},
        "background": {
            "full_mAP": 0.5, "full_rank1": 0.6, "foreground_mAP": 0.45, "foreground_rank1": 0.5,
            "background_mAP": 0.1, "background_rank1": 0.1, "chance_mAP": 0.1,
            "chance_rank1": 0.1, "verdict": "identification rests mainly on the animal",
        },
    }  # fmt: skip
    path = write_reid_report(
        tmp_path, results, {"validation": {"raw": [0.6, 1.0]}}, {"a": 0.4}, [_example([True])]
    )
    text = path.read_text()
    assert "| raw | 0.5000 | 0.6000 |" in text and "| +QE | 0.5500 |" in text
    assert "single image" in text and "rests mainly on the animal" in text
    for png in ("cmc_validation.png", "per_identity_ap.png", "retrieval_grid.png"):
        assert (tmp_path / png).is_file() and f"]({png})" in text
