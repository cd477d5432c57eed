"""Multi-object tracking scores (HOTA, MOTA, IDF1) computed by TrackEval, and count errors.

TrackEval's metric classes do the scoring; this module only builds the per-sequence data dict
they take, with the preprocessing of TrackEval's ``MotChallenge2DBox`` dataset for the MOT15
benchmark, so the numbers equal an official TrackEval run on the same files:

- ground-truth rows whose ``conf`` column truncates to 0 (the "not considered" flag) are
  dropped; TrackEval reads that column with ``astype(int)``, so this is done the same way;
- nothing else is dropped: for MOT15 TrackEval neither removes tracker boxes matched to
  distractor classes nor filters ground truth by class (the 8th column of MOT15 ground truth
  is a world coordinate, not a class);
- similarity is box IoU computed as TrackEval computes it; ids are relabelled ``0..n-1``.

Sequences are combined with each metric's ``combine_sequences`` (sums of TP/FN/FP/IDSW and
TP-weighted association), as TrackEval's ``COMBINED_SEQ`` row is, not by averaging scores.

TrackEval is imported inside the functions: it is an optional, slow-to-import dependency.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fieldvision.errors import DataError
from fieldvision.tracking.detections import Tracks

__all__ = [
    "TrackingScores",
    "count_error",
    "evaluate_dirs",
    "evaluate_sequence",
    "evaluate_sequences",
    "tracking_data",
]

COMBINED = "COMBINED"
_EPS = np.finfo("float").eps


@dataclass(frozen=True)
class TrackingScores:
    """MOTChallenge scores of one sequence (or of several combined), percentages 0-100.

    Args:
        seq: Sequence name (``COMBINED`` for the combination).
        hota: HOTA averaged over the 19 IoU thresholds 0.05..0.95.
        deta: Detection accuracy (same averaging).
        assa: Association accuracy (same averaging).
        mota: CLEAR MOTA at IoU 0.5 (can be negative).
        motp: CLEAR MOTP (mean IoU of the matches).
        idf1: Identity F1.
        idsw: Identity switches.
        fp: False positives (CLEAR).
        fn: False negatives (CLEAR).
        frames: Frames evaluated.
    """

    seq: str
    hota: float
    deta: float
    assa: float
    mota: float
    motp: float
    idf1: float
    idsw: int
    fp: int
    fn: int
    frames: int

    def line(self) -> str:
        """``seq=NAME HOTA=xx.xx MOTA=xx.xx IDF1=xx.xx IDSW=n`` followed by the other scores."""
        return (
            f"seq={self.seq} HOTA={self.hota:.2f} MOTA={self.mota:.2f} IDF1={self.idf1:.2f} "
            f"IDSW={self.idsw} DetA={self.deta:.2f} AssA={self.assa:.2f} MOTP={self.motp:.2f} "
            f"FP={self.fp} FN={self.fn} frames={self.frames}"
        )


def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, M)`` IoU of ``xyxy`` boxes, operation for operation as TrackEval's box IoU.

    Degenerate boxes (zero area) and empty unions give 0, with TrackEval's epsilon, so the
    scores match to the last bit, not only approximately.
    """
    lo = np.minimum(a[:, np.newaxis, :], b[np.newaxis, :, :])
    hi = np.maximum(a[:, np.newaxis, :], b[np.newaxis, :, :])
    inter = np.maximum(lo[..., 2] - hi[..., 0], 0) * np.maximum(lo[..., 3] - hi[..., 1], 0)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, np.newaxis] + area_b[np.newaxis, :] - inter
    inter[area_a <= _EPS, :] = 0
    inter[:, area_b <= _EPS] = 0
    inter[union <= _EPS] = 0
    union[union <= _EPS] = 1
    return inter / union


def _check_frames(tracks: Tracks, what: str, name: str, num_frames: int) -> None:
    bad = np.flatnonzero((tracks.frame < 1) | (tracks.frame > num_frames))
    if len(bad):
        raise DataError(
            f"{what} of {name} has frame {int(tracks.frame[bad[0]])} outside 1..{num_frames} "
            f"({len(bad)} row(s))",
            hint="num_frames must be the sequence length (seqLength of seqinfo.ini)",
        )


def _per_frame(frame: np.ndarray, num_frames: int, *columns: np.ndarray) -> list[list[np.ndarray]]:
    """For each column, its rows of frames ``1..num_frames``, each frame in input order.

    The stable sort keeps the input order within a frame, as TrackEval keeps file order (the
    order can decide ties in its assignment steps).
    """
    order = np.argsort(frame, kind="stable")
    bounds = np.searchsorted(frame[order], np.arange(1, num_frames + 2))
    return [[col[order[bounds[t] : bounds[t + 1]]] for t in range(num_frames)] for col in columns]


def _relabel(ids: np.ndarray) -> tuple[np.ndarray, int]:
    """Ids mapped to ``0..n-1`` in sorted order (TrackEval's relabelling), and ``n``."""
    unique, inverse = np.unique(ids, return_inverse=True)
    return inverse.reshape(-1).astype(int), len(unique)


def tracking_data(gt: Tracks, tracks: Tracks, *, name: str, num_frames: int) -> dict[str, Any]:
    """The data dict TrackEval's metrics take, preprocessed as ``MotChallenge2DBox`` (MOT15).

    Args:
        gt: Ground truth; rows whose ``confidence`` truncates to 0 are ignored.
        tracks: Tracker output.
        name: Sequence name.
        num_frames: Sequence length; every row must lie in frames ``1..num_frames``.

    Returns:
        ``num_timesteps, num_gt_ids, num_tracker_ids, num_gt_dets, num_tracker_dets, gt_ids,
        tracker_ids, similarity_scores, seq``; per-timestep lists hold ``(n_t,)`` contiguous
        ids and ``(n_gt_t, n_tracker_t)`` IoUs.

    Raises:
        DataError: A row outside frames ``1..num_frames``.
    """
    if isinstance(num_frames, bool) or int(num_frames) != num_frames or num_frames < 1:
        raise ValueError(f"num_frames must be a positive int, got {num_frames!r}")
    num_frames = int(num_frames)
    _check_frames(gt, "ground truth", name, num_frames)
    _check_frames(tracks, "tracker output", name, num_frames)
    # TrackEval: zero_marked = conf.astype(int); rows with zero_marked == 0 are dropped.
    gt = gt[np.trunc(gt.confidence) != 0]
    gt_ids, num_gt_ids = _relabel(gt.track_id)
    tr_ids, num_tr_ids = _relabel(tracks.track_id)
    gt_ids_t, gt_boxes_t = _per_frame(gt.frame, num_frames, gt_ids, gt.xyxy)
    tr_ids_t, tr_boxes_t = _per_frame(tracks.frame, num_frames, tr_ids, tracks.xyxy)
    return {
        "seq": name,
        "num_timesteps": num_frames,
        "num_gt_ids": num_gt_ids,
        "num_tracker_ids": num_tr_ids,
        "num_gt_dets": len(gt),
        "num_tracker_dets": len(tracks),
        "gt_ids": gt_ids_t,
        "tracker_ids": tr_ids_t,
        "similarity_scores": [_box_iou(g, t) for g, t in zip(gt_boxes_t, tr_boxes_t, strict=True)],
    }


def _metrics() -> list[Any]:
    from trackeval.metrics import CLEAR, HOTA, Identity

    quiet = {"PRINT_CONFIG": False}
    return [HOTA(), CLEAR(quiet), Identity(quiet)]


def _scores(seq: str, frames: int, hota: dict, clear: dict, identity: dict) -> TrackingScores:
    return TrackingScores(
        seq=seq,
        hota=100 * float(np.mean(hota["HOTA"])),
        deta=100 * float(np.mean(hota["DetA"])),
        assa=100 * float(np.mean(hota["AssA"])),
        mota=100 * float(clear["MOTA"]),
        motp=100 * float(clear["MOTP"]),
        idf1=100 * float(identity["IDF1"]),
        idsw=int(clear["IDSW"]),
        fp=int(clear["CLR_FP"]),
        fn=int(clear["CLR_FN"]),
        frames=frames,
    )


def evaluate_sequence(gt: Tracks, tracks: Tracks, *, name: str, num_frames: int) -> TrackingScores:
    """HOTA, CLEAR (MOTA) and Identity (IDF1) scores of one sequence.

    Args:
        gt: Ground truth (``confidence`` 0 marks rows to ignore, as in ``gt.txt``).
        tracks: Tracker output.
        name: Sequence name (goes into `TrackingScores.seq`).
        num_frames: Sequence length.

    Raises:
        DataError: A row outside frames ``1..num_frames``.
    """
    per_seq, _ = evaluate_sequences({name: (gt, tracks, num_frames)})
    return per_seq[0]


def evaluate_sequences(
    pairs: Mapping[str, tuple[Tracks, Tracks, int]],
) -> tuple[list[TrackingScores], TrackingScores]:
    """Score several sequences and their combination.

    Args:
        pairs: ``name -> (ground truth, tracker output, num_frames)``.

    Returns:
        Per-sequence scores in the order of `pairs`, and the ``seq=COMBINED`` scores, combined
        as TrackEval combines sequences (summed counts, not averaged scores).

    Raises:
        DataError: No sequences, or a row outside its sequence's frames.
    """
    if not pairs:
        raise DataError("no sequences to evaluate")
    metrics = _metrics()
    raw: dict[str, list[dict]] = {}
    for name, (gt, tracks, num_frames) in pairs.items():
        data = tracking_data(gt, tracks, name=name, num_frames=num_frames)
        raw[name] = [m.eval_sequence(data) for m in metrics]
    # Frames come from the data: CLEAR leaves CLR_Frames at 0 for an empty tracker output.
    frames = {name: int(pair[2]) for name, pair in pairs.items()}
    per_seq = [_scores(name, frames[name], *res) for name, res in raw.items()]
    combined = [
        m.combine_sequences({name: res[i] for name, res in raw.items()})
        for i, m in enumerate(metrics)
    ]
    return per_seq, _scores(COMBINED, sum(frames.values()), *combined)


def _seq_length(seq_dir: Path) -> int | None:
    from fieldvision.data.mot import read_seqinfo

    ini = seq_dir / "seqinfo.ini"
    return read_seqinfo(ini).length if ini.is_file() else None


def evaluate_dirs(
    tracks_dir: str | os.PathLike[str], gt_dir: str | os.PathLike[str]
) -> tuple[list[TrackingScores], TrackingScores]:
    """Score a folder of tracker files against MOTChallenge ground truth.

    Args:
        tracks_dir: ``<seq>.txt`` tracker files.
        gt_dir: ``<seq>/gt/gt.txt`` and ``<seq>/seqinfo.ini`` (its ``seqLength`` is the number
            of frames; without it, the last frame of ground truth or tracker output).

    Returns:
        Per-sequence scores (sorted by name) for the sequences with both files, and the
        combined scores.

    Raises:
        DataError: A missing folder, no sequence with both files (names what was found), or
            a bad file (see `read_mot_tracks`).
    """
    from fieldvision.data.mot import read_mot_tracks

    tracks_dir, gt_dir = Path(tracks_dir), Path(gt_dir)
    for folder in (tracks_dir, gt_dir):
        if not folder.is_dir():
            raise DataError(f"{folder}: folder not found")
    tracker_seqs = sorted(p.stem for p in tracks_dir.glob("*.txt") if p.is_file())
    gt_seqs = sorted(p.name for p in gt_dir.iterdir() if (p / "gt" / "gt.txt").is_file())
    seqs = sorted(set(tracker_seqs) & set(gt_seqs))
    if not seqs:
        raise DataError(
            f"no sequence has both a tracker file in {tracks_dir} and ground truth in {gt_dir}: "
            f"tracker files {_listing([s + '.txt' for s in tracker_seqs])}, "
            f"ground truth {_listing([s + '/gt/gt.txt' for s in gt_seqs])}"
        )
    pairs = {}
    for seq in seqs:
        length = _seq_length(gt_dir / seq)
        gt = read_mot_tracks(gt_dir / seq / "gt" / "gt.txt", seq_length=length)
        tracks = read_mot_tracks(tracks_dir / f"{seq}.txt", seq_length=length)
        if length is None:
            length = int(max(gt.frame.max(initial=1), tracks.frame.max(initial=1)))
        pairs[seq] = (gt, tracks, length)
    return evaluate_sequences(pairs)


def _listing(names: list[str], shown: int = 5) -> str:
    if not names:
        return "(none)"
    more = f" (and {len(names) - shown} more)" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def count_error(predicted: Mapping[str, int], truth: Mapping[str, int]) -> dict[str, Any]:
    """Absolute and relative error of counts (people per line, per zone, ...).

    A key of `truth` missing from `predicted` counts as 0 predicted (a counter that saw
    nobody may not report the key at all).

    Args:
        predicted: ``key -> predicted count``.
        truth: ``key -> true count``.

    Returns:
        ``per_key``: ``key -> {predicted, truth, abs_error, rel_error}`` (``rel_error`` is
        ``abs_error / truth``, ``None`` when the truth is 0); ``mae``: mean absolute error;
        ``mape``: mean of ``rel_error`` in percent over keys with non-zero truth (``None``
        if there are none); ``total_predicted``, ``total_truth``, ``total_abs_error``
        (of the sums) and ``total_rel_error`` (``None`` when the total truth is 0).

    Raises:
        DataError: No truth keys, a predicted key that is not in `truth`, or a count that is
            negative or not a finite number.
    """
    if not truth:
        raise DataError("count_error: no true counts given")
    extra = sorted(set(predicted) - set(truth))
    if extra:
        raise DataError(
            f"count_error: predicted counts for keys without a true count: {_listing(extra)}"
        )
    for what, counts in (("predicted", predicted), ("true", truth)):
        for key, value in counts.items():
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise DataError(f"count_error: {what} count of {key!r} is not a number: {value!r}")
            if not math.isfinite(value) or value < 0:
                raise DataError(f"count_error: {what} count of {key!r} is {value!r}")
    per_key = {}
    for key, t in truth.items():
        p = predicted.get(key, 0)
        err = abs(p - t)
        per_key[key] = {
            "predicted": p,
            "truth": t,
            "abs_error": err,
            "rel_error": err / t if t else None,
        }
    rels = [v["rel_error"] for v in per_key.values() if v["rel_error"] is not None]
    total_p, total_t = sum(predicted.get(k, 0) for k in truth), sum(truth.values())
    return {
        "per_key": per_key,
        "mae": sum(v["abs_error"] for v in per_key.values()) / len(per_key),
        "mape": 100 * sum(rels) / len(rels) if rels else None,
        "total_predicted": total_p,
        "total_truth": total_t,
        "total_abs_error": abs(total_p - total_t),
        "total_rel_error": abs(total_p - total_t) / total_t if total_t else None,
    }
