"""Image-level classification metrics and weak-supervision localisation."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, roc_auc_score

from fieldvision.errors import DataError
from fieldvision.metrics.classification import (
    boxes_to_mask,
    classification_metrics,
    component_recall,
    lesion_recall,
    localisation_record,
    localisation_summary,
    pointing_game,
    read_box_file,
    tile_lesion_fraction,
)

NAMES3 = ("healthy", "rust", "scab")


def _grid(height, width, step):
    """Non-overlapping ``step``-pixel tiles covering the image, row-major, int[T, 4]."""
    return np.array(
        [(x, y, x + step, y + step) for y in range(0, height, step) for x in range(0, width, step)]
    )


# --- classification ----------------------------------------------------------------------


@pytest.mark.parametrize(("seed", "n_classes"), [(0, 2), (1, 3), (2, 5)])
def test_matches_sklearn_on_random_data(seed, n_classes):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, 200)
    y[:n_classes] = np.arange(n_classes)  # every class present
    prob = rng.dirichlet(np.ones(n_classes), 200)
    prob[np.arange(200), y] += rng.uniform(0, 0.6, 200)  # informative, rows no longer sum to 1
    names = [f"c{k}" for k in range(n_classes)]
    m = classification_metrics(y, prob, names)
    pred = prob.argmax(axis=1)
    assert m["n"] == 200
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["confusion"] == confusion_matrix(y, pred).tolist()
    for k, name in enumerate(names):
        assert m["per_class"][name]["f1"] == pytest.approx(f1_score(y == k, pred == k))
        assert m["per_class"][name]["support"] == int((y == k).sum())
    if n_classes == 2:
        assert m["auc"] == pytest.approx(roc_auc_score(y, prob[:, 1]))
    else:
        normalised = prob / prob.sum(axis=1, keepdims=True)
        # sklearn's OvR needs rows summing to 1; per-class AUCs do not depend on that.
        reference = np.mean([roc_auc_score(y == k, prob[:, k]) for k in range(n_classes)])
        assert m["auc"] == pytest.approx(reference)
        m_norm = classification_metrics(y, normalised, names)
        assert m_norm["auc"] == pytest.approx(
            roc_auc_score(y, normalised, multi_class="ovr", average="macro")
        )
    assert "auc_note" not in m


def test_hand_made_confusion_and_per_class():
    # true:  0 0 0 1 1 2 ; predicted: 0 0 1 1 2 2
    y = [0, 0, 0, 1, 1, 2]
    pred = [0, 0, 1, 1, 2, 2]
    prob = np.eye(3)[pred] * 0.7 + 0.1
    m = classification_metrics(y, prob, NAMES3)
    assert m["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert m["accuracy"] == pytest.approx(4 / 6)
    rust = m["per_class"]["rust"]
    assert (rust["precision"], rust["recall"], rust["support"]) == (0.5, 0.5, 2)
    scab = m["per_class"]["scab"]  # precision 1/2, recall 1 -> F1 2/3
    assert scab["f1"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)


def test_binary_auc_uses_positive_column():
    y = [0, 0, 1, 1]
    prob = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.1, 0.9]])
    # positives (0.4, 0.9) vs negatives (0.1, 0.8): 3 of 4 pairs ordered -> 0.75
    assert classification_metrics(y, prob, ("ok", "defect"))["auc"] == pytest.approx(0.75)


def test_absent_class_gives_nan_auc_with_note_and_nan_per_class_recall():
    y = [0, 0, 1, 1]
    prob = np.array([[0.8, 0.1, 0.1], [0.1, 0.2, 0.7], [0.1, 0.8, 0.1], [0.3, 0.6, 0.1]])
    m = classification_metrics(y, prob, NAMES3)
    assert np.isnan(m["auc"]) and "scab" in m["auc_note"]
    scab = m["per_class"]["scab"]
    assert scab["support"] == 0 and np.isnan(scab["recall"]) and scab["f1"] == 0.0
    # predicted-but-absent class counts in macro-F1 (as in sklearn), with F1 0
    assert m["macro_f1"] == pytest.approx(f1_score(y, prob.argmax(axis=1), average="macro"))


def test_class_neither_true_nor_predicted_is_left_out_of_macro_f1():
    m = classification_metrics([0, 1], np.array([[0.9, 0.1, 0.0], [0.1, 0.9, 0.0]]), NAMES3)
    assert m["macro_f1"] == 1.0 and np.isnan(m["per_class"]["scab"]["f1"])


@pytest.mark.parametrize(
    ("y", "prob", "names", "match"),
    [
        ([0, 1], np.zeros(2), ("a", "b"), "2-D"),
        ([0, 1], np.zeros((2, 2)), ("a",), "1 class names"),
        ([0, 0], np.zeros((2, 1)), ("a",), "at least 2 classes"),
        ([], np.zeros((0, 2)), ("a", "b"), "no images"),
        ([0], np.zeros((2, 2)), ("a", "b"), "2 entries"),
        ([0, 2], np.zeros((2, 2)), ("a", "b"), r"y_true\[1\] = 2"),
        ([0, -1], np.zeros((2, 2)), ("a", "b"), "not a class index"),
        ([0.0, 0.5], np.zeros((2, 2)), ("a", "b"), "fractional"),
        ([0, 1], np.array([[0.1, np.nan], [0.2, 0.3]]), ("a", "b"), "row 0 is not finite"),
    ],
)
def test_classification_bad_input(y, prob, names, match):
    with pytest.raises(DataError, match=match):
        classification_metrics(y, prob, names)


# --- boxes and masks ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("boxes", "expected_pixels", "expected_rows", "expected_cols"),
    [
        ([[1, 2, 4, 3]], 3, (2,), (1, 2, 3)),  # integer box -> mask[2:3, 1:4]
        ([[0.5, 0.5, 1.5, 1.2]], 4, (0, 1), (0, 1)),  # any overlapped pixel
        ([[-3, -3, 1, 1]], 1, (0,), (0,)),  # clipped to the image
        ([[2, 2, 2, 5]], 0, (), ()),  # zero width
        (np.zeros((0, 4)), 0, (), ()),
        ([], 0, (), ()),
    ],
)
def test_boxes_to_mask(boxes, expected_pixels, expected_rows, expected_cols):
    mask = boxes_to_mask(boxes, 5, 6)
    assert mask.shape == (5, 6) and mask.dtype == bool
    assert mask.sum() == expected_pixels
    rows, cols = np.nonzero(mask)
    assert tuple(sorted(set(rows.tolist()))) == expected_rows
    assert tuple(sorted(set(cols.tolist()))) == expected_cols


@pytest.mark.parametrize(
    ("boxes", "match"),
    [([[3, 0, 1, 2]], "x2 < x1"), ([[0, 0, 1]], r"\(K, 4\)"), ([[0, 0, np.inf, 1]], "finite")],
)
def test_boxes_to_mask_bad_input(boxes, match):
    with pytest.raises(DataError, match=match):
        boxes_to_mask(boxes, 4, 4)


def test_read_box_file(tmp_path):
    path = tmp_path / "00041000.txt"
    path.write_text("138 513 168 541 1\n\n  10 20 30 40\n5,6,7,8,3\n")
    np.testing.assert_array_equal(
        read_box_file(path), [[138, 513, 168, 541], [10, 20, 30, 40], [5, 6, 7, 8]]
    )
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    assert read_box_file(empty).shape == (0, 4)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("1 2 3 4\n1 2 3\n", "line 2.*4 fields|line 2.*3 fields"),
        ("\n1 2 3 4 5 6\n", "line 2"),
        ("1 2 x 4\n", "line 1.*numbers"),
        ("1 2 3 4 rust\n", "line 1.*numbers"),
        ("5 2 3 4 1\n", "line 1.*x2 < x1"),
        ("1 2 nan 4\n", "line 1.*finite"),
    ],
)
def test_read_box_file_malformed(tmp_path, text, match):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(DataError, match=match) as info:
        read_box_file(path)
    assert "bad.txt" in str(info.value)


def test_read_box_file_missing(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_box_file(tmp_path / "nope.txt")


# --- tile statistics ---------------------------------------------------------------------


def test_tile_lesion_fraction_equals_brute_force():
    rng = np.random.default_rng(3)
    mask = rng.random((37, 53)) < 0.3
    x1 = rng.integers(-5, 50, 60)
    y1 = rng.integers(-5, 34, 60)
    boxes = np.column_stack([x1, y1, x1 + rng.integers(1, 20, 60), y1 + rng.integers(1, 20, 60)])
    boxes = boxes[(boxes[:, 2] > 0) & (boxes[:, 3] > 0)]  # keep tiles that touch the image
    expected = []
    for bx1, by1, bx2, by2 in boxes:
        region = mask[max(by1, 0) : by2, max(bx1, 0) : bx2]
        expected.append(region.sum() / region.size)
    np.testing.assert_allclose(tile_lesion_fraction(mask, boxes), expected)


@pytest.mark.parametrize(
    ("mask", "boxes", "match"),
    [
        (np.zeros((4, 4), bool), [[10, 10, 12, 12]], "no pixel inside"),
        (np.zeros((4, 4), bool), [[0.5, 0, 2, 2]], "integer"),
        (np.zeros(4, bool), [[0, 0, 2, 2]], "2-D"),
    ],
)
def test_tile_lesion_fraction_bad_input(mask, boxes, match):
    with pytest.raises(DataError, match=match):
        tile_lesion_fraction(mask, boxes)


@pytest.mark.parametrize(
    ("scores", "fractions", "min_fraction", "expected"),
    [
        ([0.1, 0.9, 0.3], [0.0, 0.2, 0.0], 0.0, True),
        ([0.9, 0.1, 0.3], [0.0, 0.2, 0.0], 0.0, False),
        ([0.1, 0.9, 0.3], [0.0, 0.2, 0.0], 0.25, False),
        ([0.5, 0.5], [0.0, 1.0], 0.0, False),  # ties go to the first tile
    ],
)
def test_pointing_game(scores, fractions, min_fraction, expected):
    assert pointing_game(scores, fractions, min_fraction) is expected


@pytest.mark.parametrize(
    ("scores", "fractions", "match"),
    [([], [], "at least one"), ([0.1], [0.1, 0.2], "equal length"), ([np.nan], [0.0], "finite")],
)
def test_pointing_game_bad_input(scores, fractions, match):
    with pytest.raises(DataError, match=match):
        pointing_game(scores, fractions)


def _two_lesions():
    """8x8 image, 2x2 grid of 4-pixel tiles; a 2x2 lesion in tile 0, a 1x3 lesion on the
    border of tiles 2 and 3 (bottom row)."""
    mask = np.zeros((8, 8), bool)
    mask[1:3, 1:3] = True  # 4 pixels, tile 0
    mask[6, 2:5] = True  # 3 pixels: 2 in tile 2 (cols 2-3), 1 in tile 3 (col 4)
    return mask, _grid(8, 8, 4)


@pytest.mark.parametrize(
    ("selected", "pixel_recall", "comp_recall"),
    [
        ([True, False, False, False], 4 / 7, 1 / 2),
        ([False, False, False, True], 1 / 7, 1 / 2),
        ([False, True, False, False], 0.0, 0.0),
        ([True, False, True, True], 1.0, 1.0),
        ([False, False, False, False], 0.0, 0.0),
    ],
)
def test_lesion_and_component_recall(selected, pixel_recall, comp_recall):
    mask, boxes = _two_lesions()
    assert lesion_recall(np.array(selected), mask, boxes) == pytest.approx(pixel_recall)
    assert component_recall(np.array(selected), mask, boxes) == pytest.approx(comp_recall)


def test_recall_with_overlapping_tiles_and_empty_mask():
    mask = np.zeros((6, 6), bool)
    mask[2:4, 2:4] = True
    boxes = np.array([[0, 0, 3, 3], [1, 1, 4, 4], [3, 3, 6, 6]])
    assert lesion_recall([True, False, True], mask, boxes) == pytest.approx(2 / 4)
    assert lesion_recall([True, True, False], mask, boxes) == 1.0
    assert np.isnan(lesion_recall([True, True, True], np.zeros((6, 6), bool), boxes))
    assert np.isnan(component_recall([True, True, True], np.zeros((6, 6), bool), boxes))
    with pytest.raises(DataError, match="one per tile"):
        lesion_recall([True], mask, boxes)


def test_diagonal_pixels_form_one_component():
    mask = np.zeros((4, 4), bool)
    mask[0, 0] = mask[1, 1] = True  # 8-connected: one lesion
    boxes = np.array([[0, 0, 1, 1], [1, 1, 4, 4]])
    assert component_recall(np.array([True, False]), mask, boxes) == 1.0


def test_localisation_record_and_summary():
    mask, boxes = _two_lesions()
    scores = np.array([0.9, 0.1, 0.2, 0.3])
    sick = localisation_record(scores, np.array([True, False, False, False]), mask, boxes)
    assert sick == {
        "has_lesion": True,
        "pointing_game": True,
        "lesion_recall": pytest.approx(4 / 7),
        "component_recall": 0.5,
    }
    only_tile_1 = np.array([False, True, False, False])
    missed = localisation_record(scores[[1, 0, 2, 3]], only_tile_1, mask, boxes)
    assert missed["pointing_game"] is False
    healthy = localisation_record(scores, np.ones(4, bool), np.zeros((8, 8), bool), boxes)
    assert healthy["pointing_game"] is None and np.isnan(healthy["lesion_recall"])
    summary = localisation_summary([sick, missed, healthy])
    assert summary["n"] == 3 and summary["n_diseased"] == 2
    assert summary["pointing_game"] == 0.5
    assert summary["lesion_recall"] == pytest.approx(2 / 7)
    assert summary["component_recall"] == pytest.approx(0.25)
    assert "note" not in summary


def test_localisation_summary_degenerate_and_bad_records():
    empty = localisation_summary([])
    assert empty["n"] == 0 and np.isnan(empty["pointing_game"]) and "no image" in empty["note"]
    healthy_only = localisation_summary(
        [{"pointing_game": None, "lesion_recall": float("nan"), "component_recall": np.nan}]
    )
    assert healthy_only["n"] == 1 and healthy_only["n_diseased"] == 0
    with pytest.raises(DataError, match="record 0 misses"):
        localisation_summary([{"pointing_game": True}])
    with pytest.raises(DataError, match="no pointing-game"):
        localisation_summary(
            [{"pointing_game": None, "lesion_recall": 0.5, "component_recall": 0.5}]
        )
