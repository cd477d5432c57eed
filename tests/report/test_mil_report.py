"""MIL report: heatmap rendering, figures and the Markdown report."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib import colormaps

from fieldvision.data.images import read_rgb
from fieldvision.errors import DataError
from fieldvision.report.mil import (
    LESION_COLOUR,
    OUTLINE_COLOUR,
    HeatmapExample,
    plot_budget_curve,
    plot_confusion,
    plot_heatmap_grid,
    render_heatmap,
    write_heatmap_png,
    write_mil_report,
)

CLASSES = ("healthy", "rust", "scab")


def _grid(height, width, step):
    return np.array(
        [(x, y, x + step, y + step) for y in range(0, height, step) for x in range(0, width, step)]
    )


def _example(scores=(0.1, 0.4, 0.7, 1.0), selected=(True, False, False, False), **kwargs):
    image = kwargs.pop("image", np.full((40, 40, 3), 90, np.uint8))
    return HeatmapExample(
        image, _grid(40, 40, 20), np.array(scores), np.array(selected), "leaf", **kwargs
    )


def _reference(ex, alpha=0.6, cmap="inferno", width=1):
    """Per-pixel loops: mean score of covering tiles, alpha blend, then selected borders."""
    img = ex.image.astype(np.float64)
    h, w = img.shape[:2]
    lut = (colormaps[cmap](np.linspace(0, 1, 256))[:, :3] * 255).round()
    total, count = np.zeros((h, w)), np.zeros((h, w))
    for (x1, y1, x2, y2), s in zip(ex.boxes, ex.scores, strict=True):
        total[y1:y2, x1:x2] += s
        count[y1:y2, x1:x2] += 1
    out = img.copy()
    for r in range(h):
        for c in range(w):
            if count[r, c]:
                level = total[r, c] / count[r, c]
                a = alpha * level
                out[r, c] = (1 - a) * img[r, c] + a * lut[int(np.rint(level * 255))]
    for (x1, y1, x2, y2), sel in zip(ex.boxes, ex.selected, strict=True):
        if sel:
            ring = np.zeros((h, w), bool)
            ring[y1:y2, x1:x2] = True
            ring[y1 + width : y2 - width, x1 + width : x2 - width] = False
            out[ring] = OUTLINE_COLOUR
    return out


def test_render_shape_dtype_and_untiled_pixels_unchanged():
    image = np.random.default_rng(0).integers(0, 255, (50, 60, 3), dtype=np.uint8)
    ex = HeatmapExample(image, np.array([[0, 0, 20, 20]]), np.array([0.8]), np.array([False]))
    out = render_heatmap(ex)
    assert out.shape == (50, 60, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[20:, :], image[20:, :])
    np.testing.assert_array_equal(out[:, 20:], image[:, 20:])
    assert not np.array_equal(out[:20, :20], image[:20, :20])


def test_selected_tiles_are_outlined_and_unselected_are_not():
    out = render_heatmap(_example(selected=(True, False, False, True)), outline=2)
    outline = tuple(OUTLINE_COLOUR)
    for r, c in [(0, 0), (1, 10), (19, 19), (10, 18), (20, 20), (39, 30), (25, 38)]:
        assert tuple(out[r, c]) == outline, (r, c)  # borders of tiles 0 and 3
    for r, c in [(0, 25), (10, 21), (19, 39), (21, 0), (39, 10), (10, 10), (30, 30)]:
        assert tuple(out[r, c]) != outline, (r, c)  # unselected borders, interiors


def test_overlay_strength_increases_with_score():
    black = np.zeros((40, 40, 3), np.uint8)
    out = render_heatmap(_example(selected=(False,) * 4, image=black)).astype(float)
    brightness = [out[y : y + 20, x : x + 20].mean() for y in (0, 20) for x in (0, 20)]
    assert brightness == sorted(brightness) and len(set(brightness)) == 4
    zero = render_heatmap(_example(scores=(0, 0, 0, 0), selected=(False,) * 4, image=black))
    np.testing.assert_array_equal(zero, black)  # score 0 -> no overlay at all


@pytest.mark.parametrize(
    ("boxes", "scores", "selected"),
    [
        (_grid(24, 32, 8), None, None),  # grid tiles
        ([[0, 0, 16, 16], [8, 4, 30, 20], [5, 10, 12, 24], [20, 0, 40, 9]], None, None),
    ],
)
def test_render_matches_per_pixel_reference(boxes, scores, selected):
    rng = np.random.default_rng(1)
    boxes = np.array(boxes)
    n = len(boxes)
    image = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
    ex = HeatmapExample(image, boxes, rng.random(n), rng.random(n) < 0.5)
    clipped = boxes.copy()
    clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, 32)
    expected = _reference(HeatmapExample(image, clipped, ex.scores, ex.selected))
    got = render_heatmap(ex, outline=1).astype(float)
    assert np.abs(got - expected).max() <= 1.0


def test_value_range_none_scales_to_min_max():
    ex = _example(scores=(10.0, 20.0, 30.0, 40.0), value_range=None, selected=(False,) * 4)
    same = _example(scores=(0.0, 1 / 3, 2 / 3, 1.0), selected=(False,) * 4)
    np.testing.assert_array_equal(render_heatmap(ex), render_heatmap(same))
    constant = _example(scores=(5.0,) * 4, value_range=None, selected=(False,) * 4)
    np.testing.assert_array_equal(render_heatmap(constant), constant.image)


def test_lesion_contours_are_drawn():
    mask = np.zeros((40, 40), bool)
    mask[5:15, 25:35] = True
    out = render_heatmap(_example(mask=mask, selected=(False,) * 4), outline=1)
    assert tuple(out[5, 30]) == tuple(LESION_COLOUR) and tuple(out[10, 25]) == tuple(LESION_COLOUR)
    assert tuple(out[10, 30]) != tuple(LESION_COLOUR)  # inside the lesion: overlay only


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"image": np.zeros((40, 40), np.uint8)}, "uint8"),
        ({"scores": np.array([0.1, 0.2])}, "4 scores"),
        ({"scores": np.array([0.1, np.nan, 0.2, 0.3])}, "finite"),
        ({"mask": np.zeros((4, 4), bool)}, "does not match"),
        ({"value_range": (1.0, 1.0)}, "low < high"),
        ({"boxes": np.array([[5, 0, 0, 5]] * 4)}, "reversed"),
        ({"boxes": np.array([[0.5, 0, 4, 4]] * 4)}, "integer"),
    ],
)
def test_render_bad_input(change, match):
    base = _example()
    fields = {f: getattr(base, f) for f in ("image", "boxes", "scores", "selected", "title")}
    fields.update(change)
    with pytest.raises(DataError, match=match):
        render_heatmap(HeatmapExample(**fields))


def test_write_heatmap_png_round_trips(tmp_path):
    ex = _example(mask=np.eye(40, dtype=bool))
    path = write_heatmap_png(tmp_path / "tile.png", ex)
    np.testing.assert_array_equal(read_rgb(path), render_heatmap(ex))


def test_budget_curve_and_confusion_figures():
    curve = [
        {"budget": 8, "tile_fraction": 0.5, "macro_f1": 0.8, "auc": 0.9},
        {"budget": 2, "tile_fraction": 0.125, "macro_f1": 0.6, "auc": 0.7},
    ]
    ax = plot_budget_curve(curve, {"macro_f1": 0.85, "auc": 0.95}).get_axes()[0]
    lines = ax.get_lines()
    solid = [ln for ln in lines if ln.get_linestyle() == "-"]
    dashed = [ln for ln in lines if ln.get_linestyle() == "--"]
    assert list(solid[0].get_xdata()) == [0.125, 0.5]  # sorted by tile fraction
    assert list(solid[0].get_ydata()) == [0.6, 0.8]
    assert sorted(ln.get_ydata()[0] for ln in dashed) == [0.85, 0.95]
    fig = plot_confusion([[3, 1, 0], [0, 2, 0], [1, 0, 4]], CLASSES, "full")
    texts = [t.get_text() for t in fig.get_axes()[0].texts]
    assert texts[:3] == ["3", "1", "0"] and len(texts) == 9
    with pytest.raises(DataError, match="3 class names"):
        plot_confusion([[1, 0], [0, 1]], CLASSES, "x")


def test_heatmap_grid_groups_by_class():
    examples = [_example(label=k % 2) for k in range(5)] + [_example(label=2)]
    fig = plot_heatmap_grid(examples, CLASSES, per_class=2)
    images = [ax for ax in fig.get_axes() if ax.get_images()]
    assert len(fig.get_axes()) == 3 * 2 and len(images) == 2 + 2 + 1
    assert images[0].get_title() == "healthy: leaf"
    unlabelled = plot_heatmap_grid([_example(), _example(), _example()], CLASSES, per_class=2)
    assert len(unlabelled.get_axes()) == 2 * 2


def _metrics(accuracy, macro_f1, auc, tiles, **extra):
    out = {
        "accuracy": accuracy,
        "macro_f1": macro_f1,
        "auc": auc,
        "n": 20,
        "per_class": {c: {"precision": 0.5, "recall": 0.5, "f1": macro_f1, "support": 7}
                      for c in CLASSES},
        "confusion": [[5, 1, 1], [0, 6, 1], [1, 0, 5]],
        "tiles_per_image": tiles,
        "tile_fraction": tiles / 64,
        "ms_per_image": 40.0 * tiles / 64,
        "gflops_per_image": 2.0 * tiles / 64,
    }  # fmt: skip
    out.update(extra)
    return out


def test_write_report(tmp_path):
    loc = {"pointing_game": 0.75, "lesion_recall": 0.6, "component_recall": 0.7, "n": 20}
    results = {
        "glance": _metrics(0.85, 0.8, float("nan"), 16, localisation=loc,
                           auc_note="AUC undefined: class(es) ['scab'] absent from y_true"),
        "full": _metrics(0.9, 0.88, 0.95, 64),
    }  # fmt: skip
    curve = [
        {"budget": b, "tile_fraction": b / 64, "macro_f1": 0.6 + b / 200, "auc": 0.9,
         "ms_per_image": 40.0 * b / 64}
        for b in (4, 8, 16, 32)
    ]  # fmt: skip
    examples = [_example(label=k % 3) for k in range(6)]
    path = write_mil_report(tmp_path, results, curve, examples, CLASSES)
    assert path == tmp_path / "report.md"
    text = path.read_text()
    assert "| metric | full | glance |" in text  # full first, whatever the dict order
    for row in (
        "| accuracy | 0.9000 | 0.8500 |",
        "| macro-F1 | 0.8800 | 0.8000 |",
        "| ROC-AUC | 0.9500 | nan |",
        "| tiles / image | 64.0000 | 16.0000 |",
        "| tile fraction | 1.0000 | 0.2500 |",
        "| ms / image | 40.0000 | 10.0000 |",
        "| GFLOPs / image | 2.0000 | 0.5000 |",
        "| pointing game | nan | 0.7500 |",
        "| lesion pixel recall | nan | 0.6000 |",
        "| rust | 0.8800 | 0.8000 | 7 |",
        "| 16 | 0.2500 | 0.6800 | 0.9000 | 10.0000 |",
    ):
        assert row in text, row
    assert "absent from y_true" in text
    for png in ("budget_curve.png", "confusion_full.png", "confusion_glance.png", "heatmaps.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG" and f"]({png})" in text


def test_report_without_curve_or_examples(tmp_path):
    write_mil_report(tmp_path, {"full": _metrics(0.9, 0.88, 0.95, 64)}, [], [], CLASSES)
    text = (tmp_path / "report.md").read_text()
    assert "| metric | full |" in text and "glance" not in text.split("## Per-class")[1]
    assert not (tmp_path / "budget_curve.png").exists()
    assert not (tmp_path / "heatmaps.png").exists()
    assert (tmp_path / "confusion_full.png").is_file()
