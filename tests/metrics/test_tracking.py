"""Tracking scores: hand-computed cases, MOT15 preprocessing, equality with official TrackEval."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from fieldvision.data.mot import read_mot_detections, read_mot_tracks, write_mot_tracks
from fieldvision.errors import DataError
from fieldvision.metrics.tracking import (
    TrackingScores,
    count_error,
    evaluate_dirs,
    evaluate_sequence,
    evaluate_sequences,
)
from fieldvision.tracking.detections import Tracks

MOT15 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mot15"

A, B, C = [0, 0, 10, 10], [100, 100, 110, 120], [50, 50, 60, 60]


def _tracks(rows: list[tuple[int, int, list[float]]], conf: list[float] | None = None) -> Tracks:
    """``(frame, id, xyxy)`` rows."""
    return Tracks(
        frame=[r[0] for r in rows],
        track_id=[r[1] for r in rows],
        xyxy=np.array([r[2] for r in rows], float).reshape(-1, 4),
        confidence=conf,
    )


GT2 = _tracks([(f, 1, A) for f in (1, 2, 3)] + [(f, 2, B) for f in (1, 2, 3)])


def test_ground_truth_against_itself_scores_100() -> None:
    s = evaluate_sequence(GT2, GT2, name="self", num_frames=3)
    assert (s.hota, s.deta, s.assa, s.mota, s.motp, s.idf1) == pytest.approx((100,) * 6)
    assert (s.idsw, s.fp, s.fn, s.frames) == (0, 0, 0, 3)


def test_id_switch_is_counted_once() -> None:
    gt = _tracks([(f, 1, A) for f in (1, 2, 3, 4)])
    tracks = _tracks([(1, 5, A), (2, 5, A), (3, 6, A), (4, 6, A)])
    s = evaluate_sequence(gt, tracks, name="switch", num_frames=4)
    assert s.idsw == 1
    assert s.mota == pytest.approx(75.0)  # 1 - IDSW / GT = 1 - 1/4
    assert s.idf1 == pytest.approx(50.0)  # IDTP 2, IDFP 2, IDFN 2
    assert (s.fp, s.fn) == (0, 0)


def test_false_positives_and_negatives_give_the_hand_computed_mota() -> None:
    # 6 gt boxes; the tracker loses track 2 after frame 1 (FN 2) and adds one box C (FP 1).
    tracks = _tracks([(f, 1, A) for f in (1, 2, 3)] + [(1, 2, B), (2, 3, C)])
    s = evaluate_sequence(GT2, tracks, name="fpfn", num_frames=3)
    assert (s.fp, s.fn, s.idsw) == (1, 2, 0)
    assert s.mota == pytest.approx(100 * (1 - (2 + 1 + 0) / 6))
    assert s.motp == pytest.approx(100.0)


def test_half_overlap_is_not_a_match_for_clear() -> None:
    # IoU of [0,0,10,10] and [0,0,10,4.9] is 0.49 < 0.5: a miss and a false positive.
    s = evaluate_sequence(
        _tracks([(1, 1, A)]), _tracks([(1, 1, [0, 0, 10, 4.9])]), name="iou", num_frames=1
    )
    assert (s.fp, s.fn, s.mota) == (1, 1, pytest.approx(-100.0))


@pytest.mark.parametrize(
    ("gt_conf", "tracker_rows", "fp", "fn", "mota"),
    [
        # The zero-marked gt box of frame 1 is ignored: not missed when no tracker box is there,
        ([1, 1, 0], [(1, 1, A), (2, 1, A)], 0, 0, 100.0),
        # but a tracker box on it is a false positive: MOT15 removes no matched tracker boxes.
        ([1, 1, 0], [(1, 1, A), (2, 1, A), (1, 2, B)], 1, 0, 50.0),
        # TrackEval truncates the flag to int, so 0.5 is "not considered" too.
        ([1, 1, 0.5], [(1, 1, A), (2, 1, A)], 0, 0, 100.0),
        ([1, 1, 1], [(1, 1, A), (2, 1, A)], 0, 1, 100 * (1 - 1 / 3)),
    ],
)
def test_mot15_ground_truth_flags(
    gt_conf: list[float], tracker_rows: list, fp: int, fn: int, mota: float
) -> None:
    gt = _tracks([(1, 1, A), (2, 1, A), (1, 2, B)], conf=gt_conf)
    s = evaluate_sequence(gt, _tracks(tracker_rows), name="flags", num_frames=2)
    assert (s.fp, s.fn) == (fp, fn)
    assert s.mota == pytest.approx(mota)


def test_empty_tracker_output_misses_everything() -> None:
    s = evaluate_sequence(GT2, Tracks.empty(), name="none", num_frames=5)
    assert (s.fp, s.fn, s.mota, s.hota, s.frames) == (0, 6, 0.0, 0.0, 5)


def test_combined_sums_counts_instead_of_averaging_scores() -> None:
    gt_switch = _tracks([(f, 1, A) for f in (1, 2, 3, 4)])
    tracks_switch = _tracks([(1, 5, A), (2, 5, A), (3, 6, A), (4, 6, A)])
    per_seq, combined = evaluate_sequences(
        {"switch": (gt_switch, tracks_switch, 4), "perfect": (GT2, GT2, 3)}
    )
    assert [s.seq for s in per_seq] == ["switch", "perfect"]
    assert [s.mota for s in per_seq] == pytest.approx([75.0, 100.0])
    assert combined.seq == "COMBINED"
    assert combined.mota == pytest.approx(100 * (1 - 1 / 10))  # not (75 + 100) / 2
    assert (combined.idsw, combined.frames) == (1, 7)


@pytest.mark.parametrize(
    ("gt_frame", "tracker_frame", "error"),
    [
        (4, 1, "ground truth of s has frame 4 outside 1..3"),
        (1, 9, "tracker output of s has frame 9 outside 1..3"),
        (0, 1, "ground truth of s has frame 0 outside"),
    ],
)
def test_rows_outside_the_sequence(gt_frame: int, tracker_frame: int, error: str) -> None:
    with pytest.raises(DataError, match=error):
        evaluate_sequence(
            _tracks([(gt_frame, 1, A)]), _tracks([(tracker_frame, 1, A)]), name="s", num_frames=3
        )


def test_no_sequences() -> None:
    with pytest.raises(DataError, match="no sequences"):
        evaluate_sequences({})


def test_line_format() -> None:
    s = TrackingScores("Venice-2", 55.555, 50, 60, -3.5, 80, 61.234, 12, 3, 4, 600)
    line = s.line()
    assert line.startswith("seq=Venice-2 HOTA=55.55 MOTA=-3.50 IDF1=61.23 IDSW=12 ")
    assert re.fullmatch(r"seq=\S+ HOTA=\S+ MOTA=\S+ IDF1=\S+ IDSW=\d+( \w+=\S+)+", line)


# --- folders -------------------------------------------------------------------------------


def _gt_dir(root: Path, seq: str, gt: Tracks, length: int | None) -> None:
    write_mot_tracks(root / seq / "gt" / "gt.txt", gt)
    if length is not None:
        (root / seq / "seqinfo.ini").write_text(f"[Sequence]\nname={seq}\nseqLength={length}\n")


def test_evaluate_dirs_scores_sequences_with_both_files(tmp_path: Path) -> None:
    gt_root, tr_root = tmp_path / "gt", tmp_path / "trackers"
    tracks = _tracks([(f, 1, A) for f in (1, 2, 3)] + [(1, 2, B), (2, 3, C)])
    _gt_dir(gt_root, "b-seq", GT2, length=3)
    _gt_dir(gt_root, "a-seq", GT2, length=None)  # length from the files: 3
    _gt_dir(gt_root, "gt-only", GT2, length=3)
    write_mot_tracks(tr_root / "b-seq.txt", tracks)
    write_mot_tracks(tr_root / "a-seq.txt", GT2)
    write_mot_tracks(tr_root / "tracker-only.txt", GT2)
    per_seq, combined = evaluate_dirs(tr_root, gt_root)
    expected, expected_combined = evaluate_sequences(
        {"a-seq": (GT2, GT2, 3), "b-seq": (GT2, tracks, 3)}
    )
    assert per_seq == expected
    assert combined == expected_combined


@pytest.mark.parametrize(
    ("tracker_files", "gt_seqs", "error"),
    [
        (
            ["x.txt"],
            ["y"],
            r"no sequence has both .* tracker files x\.txt, ground truth y/gt/gt\.txt",
        ),
        ([], ["y"], r"tracker files \(none\)"),
    ],
)
def test_evaluate_dirs_without_matches(
    tmp_path: Path, tracker_files: list[str], gt_seqs: list[str], error: str
) -> None:
    (tmp_path / "tr").mkdir()
    for name in tracker_files:
        write_mot_tracks(tmp_path / "tr" / name, GT2)
    for seq in gt_seqs:
        _gt_dir(tmp_path / "gt", seq, GT2, length=3)
    with pytest.raises(DataError, match=error):
        evaluate_dirs(tmp_path / "tr", tmp_path / "gt")


def test_evaluate_dirs_checks_frames_against_seq_length(tmp_path: Path) -> None:
    _gt_dir(tmp_path / "gt", "s", GT2, length=2)
    write_mot_tracks(tmp_path / "tr" / "s.txt", GT2)
    with pytest.raises(DataError, match=r"gt\.txt line 5: frame 3 is beyond the sequence length 2"):
        evaluate_dirs(tmp_path / "tr", tmp_path / "gt")


# --- equality with an official TrackEval run -----------------------------------------------


def _perturbed(gt: Tracks, n_frames: int, rng: np.random.Generator) -> Tracks:
    """Ground truth with 10 % of rows dropped, jittered boxes and the longest track split."""
    t = gt[rng.random(len(gt)) > 0.1]
    xyxy = t.xyxy + rng.normal(0, 4, t.xyxy.shape)
    xyxy[:, 2:] = np.maximum(xyxy[:, 2:], xyxy[:, :2] + 1)
    ids, counts = np.unique(t.track_id, return_counts=True)
    longest = ids[np.argmax(counts)]
    split = (t.track_id == longest) & (t.frame > np.median(t.frame[t.track_id == longest]))
    track_id = np.where(split, 10_000, t.track_id)
    return Tracks(frame=t.frame, track_id=track_id, xyxy=xyxy, confidence=t.confidence)


def _detections_as_tracks(det_path: Path) -> Tracks:
    """Raw detections, each its own track (fake ids 1..N)."""
    frames = read_mot_detections(det_path)
    frame = np.concatenate([np.full(len(d), f) for f, d in frames])
    xyxy = np.concatenate([d.xyxy for _, d in frames])
    return Tracks(frame=frame, track_id=np.arange(1, len(frame) + 1), xyxy=xyxy)


def _trackeval_official(root: Path, lengths: dict[str, int], trackers: list[str]) -> dict:
    import trackeval

    config = {
        "USE_PARALLEL": False,
        "PRINT_RESULTS": False,
        "PRINT_CONFIG": False,
        "TIME_PROGRESS": False,
        "OUTPUT_SUMMARY": False,
        "OUTPUT_DETAILED": False,
        "PLOT_CURVES": False,
        "BREAK_ON_ERROR": True,
    }
    dataset = {
        "GT_FOLDER": str(root / "gt"),
        "TRACKERS_FOLDER": str(root / "trackers"),
        "TRACKERS_TO_EVAL": trackers,
        "BENCHMARK": "MOT15",
        "SKIP_SPLIT_FOL": True,
        "SEQ_INFO": dict(lengths),
        "PRINT_CONFIG": False,
    }
    quiet = {"PRINT_CONFIG": False}
    with contextlib.redirect_stdout(io.StringIO()):  # TrackEval prints progress
        res, msg = trackeval.Evaluator(config).evaluate(
            [trackeval.datasets.MotChallenge2DBox(dataset)],
            [
                trackeval.metrics.HOTA(),
                trackeval.metrics.CLEAR(quiet),
                trackeval.metrics.Identity(quiet),
            ],
        )
    assert all(m == "Success" for m in msg["MotChallenge2DBox"].values()), msg
    return res["MotChallenge2DBox"]


def _official_scores(res: dict, seq: str) -> tuple:
    r = res[seq]["pedestrian"]
    hota, clear, ident = r["HOTA"], r["CLEAR"], r["Identity"]
    return (
        100 * np.mean(hota["HOTA"]),
        100 * np.mean(hota["DetA"]),
        100 * np.mean(hota["AssA"]),
        100 * clear["MOTA"],
        100 * clear["MOTP"],
        100 * ident["IDF1"],
        clear["IDSW"],
        clear["CLR_FP"],
        clear["CLR_FN"],
        clear["CLR_Frames"],
    )


def _ours(s: TrackingScores) -> tuple:
    return (s.hota, s.deta, s.assa, s.mota, s.motp, s.idf1, s.idsw, s.fp, s.fn, s.frames)


def test_equals_official_trackeval_on_mot15(tmp_path: Path) -> None:
    # TUD-Campus is short; KITTI-13 has zero-marked ground truth (the MOT15 preprocessing).
    lengths = {"TUD-Campus": 71, "KITTI-13": 340}
    if not all((MOT15 / s / "gt" / "gt.txt").is_file() for s in lengths):
        pytest.skip(f"MOT15 ground truth not found under {MOT15}")
    rng = np.random.default_rng(0)
    trackers = {"perturbed": {}, "detections": {}}
    for seq in lengths:
        gt_file = tmp_path / "gt" / seq / "gt" / "gt.txt"
        gt_file.parent.mkdir(parents=True)
        shutil.copy(MOT15 / seq / "gt" / "gt.txt", gt_file)
        gt = read_mot_tracks(gt_file)
        made = {
            "perturbed": _perturbed(gt, lengths[seq], rng),
            "detections": _detections_as_tracks(MOT15 / seq / "det" / "det.txt"),
        }
        for name, tracks in made.items():
            path = write_mot_tracks(tmp_path / "trackers" / name / "data" / f"{seq}.txt", tracks)
            # Score what was written (boxes rounded to 2 decimals), as TrackEval reads it.
            trackers[name][seq] = (gt, read_mot_tracks(path), lengths[seq])
    official = _trackeval_official(tmp_path, lengths, list(trackers))
    for name, pairs in trackers.items():
        per_seq, combined = evaluate_sequences(pairs)
        for s in [*per_seq, combined]:
            key = "COMBINED_SEQ" if s.seq == "COMBINED" else s.seq
            np.testing.assert_allclose(
                _ours(s), _official_scores(official[name], key), rtol=0, atol=1e-6, err_msg=name
            )
    perturbed = evaluate_sequences(trackers["perturbed"])[1]
    assert perturbed.idsw >= 1 and 0 < perturbed.mota < 100  # the case is not trivial


def test_real_ground_truth_against_its_considered_rows_scores_100() -> None:
    gt_file = MOT15 / "KITTI-13" / "gt" / "gt.txt"
    if not gt_file.is_file():
        pytest.skip(f"MOT15 ground truth not found under {MOT15}")
    gt = read_mot_tracks(gt_file)
    considered = gt[gt.confidence != 0]
    assert len(considered) < len(gt)  # the file has zero-marked rows
    s = evaluate_sequence(gt, considered, name="KITTI-13", num_frames=340)
    assert (s.hota, s.mota, s.idf1) == pytest.approx((100, 100, 100))
    assert (s.fp, s.fn, s.idsw) == (0, 0, 0)


# --- count errors --------------------------------------------------------------------------


def test_count_error() -> None:
    out = count_error({"a": 8, "b": 12}, {"a": 10, "b": 12, "c": 0})
    assert out["per_key"]["a"] == {"predicted": 8, "truth": 10, "abs_error": 2, "rel_error": 0.2}
    assert out["per_key"]["b"]["rel_error"] == 0
    assert out["per_key"]["c"] == {"predicted": 0, "truth": 0, "abs_error": 0, "rel_error": None}
    assert out["mae"] == pytest.approx(2 / 3)
    assert out["mape"] == pytest.approx(10.0)  # mean of 20 % and 0 %; c has no true count
    assert (out["total_predicted"], out["total_truth"], out["total_abs_error"]) == (20, 22, 2)
    assert out["total_rel_error"] == pytest.approx(2 / 22)


def test_count_error_all_zero_truth() -> None:
    out = count_error({"a": 3}, {"a": 0})
    assert (out["mape"], out["total_rel_error"], out["mae"]) == (None, None, 3)


@pytest.mark.parametrize(
    ("predicted", "truth", "error"),
    [
        ({}, {}, "no true counts"),
        ({"a": 1, "z": 2}, {"a": 1}, "keys without a true count: z"),
        ({"a": -1}, {"a": 1}, "predicted count of 'a' is -1"),
        ({"a": 1}, {"a": float("nan")}, "true count of 'a' is nan"),
        ({"a": "3"}, {"a": 1}, "predicted count of 'a' is not a number: '3'"),
        ({"a": True}, {"a": 1}, "not a number: True"),
    ],
)
def test_bad_counts(predicted: dict, truth: dict, error: str) -> None:
    with pytest.raises(DataError, match=error):
        count_error(predicted, truth)
