"""Scores of cross-camera linking: link precision / recall and a site-wide identity F1.

To score links, predicted tracks are first given the person they follow
(`match_tracks_to_truth`: per-frame IoU matching against a camera's ground truth, then a
majority vote per track). Then:

- `true_links` are the consecutive tracklets of each person (by start time);
- `link_precision_recall` compares predicted links with them as unordered pairs;
- `global_idf1` is identity F1 over all cameras at the level of tracks: the best
  one-to-one matching of global ids to persons, weighted by each track's frames.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from fieldvision.ops.assignment import linear_assignment
from fieldvision.ops.boxes import box_iou
from fieldvision.tracking.detections import Tracks

__all__ = ["global_idf1", "link_precision_recall", "match_tracks_to_truth", "true_links"]

Key = tuple[str, int]  # (camera_id, track_id)


def _pairs(links: Iterable[Sequence[Any]]) -> set[frozenset[Hashable]]:
    out = set()
    for link in links:
        a, b = link[0], link[1]
        out.add(frozenset((tuple(a), tuple(b))))
    return out


def link_precision_recall(
    predicted_links: Iterable[Sequence[Any]], true_links: Iterable[Sequence[Any]]
) -> tuple[float, float, float]:
    """Precision, recall and F1 of predicted links.

    Args:
        predicted_links: ``(a_key, b_key[, ...])`` pairs (extra items, e.g. a similarity,
            are ignored), keys ``(camera_id, track_id)``.
        true_links: The same for the truth.

    Links are compared as unordered pairs. With no predicted links precision is 1 when
    there are no true links either, else 0; with no true links recall is 1.

    Returns:
        ``(precision, recall, f1)``.
    """
    pred, true = _pairs(predicted_links), _pairs(true_links)
    tp = len(pred & true)
    precision = tp / len(pred) if pred else (1.0 if not true else 0.0)
    recall = tp / len(true) if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return precision, recall, f1


def match_tracks_to_truth(tracks: Tracks, gt: Tracks, iou: float = 0.5) -> dict[int, int | None]:
    """The person each predicted track follows on one camera.

    In every frame, predicted and true boxes are matched one-to-one by IoU (Hungarian,
    pairs below `iou` barred); a track's person is the true id it was matched to in most
    frames (the smallest id among ties), or ``None`` if it was never matched.

    Args:
        tracks: Predicted tracks of one camera.
        gt: Ground truth of that camera (``track_id`` = person id).
        iou: Least IoU of a match.

    Returns:
        ``{track_id: person_id or None}`` for every track id in `tracks`.
    """
    votes: Counter[tuple[int, int]] = Counter()
    p, g = tracks.sorted(), gt.sorted()
    frames = np.intersect1d(p.frame, g.frame)
    p_lo, p_hi = np.searchsorted(p.frame, frames, "left"), np.searchsorted(p.frame, frames, "right")
    g_lo, g_hi = np.searchsorted(g.frame, frames, "left"), np.searchsorted(g.frame, frames, "right")
    for a0, a1, b0, b1 in zip(p_lo, p_hi, g_lo, g_hi, strict=True):
        overlap = box_iou(p.xyxy[a0:a1], g.xyxy[b0:b1])
        matches, _, _ = linear_assignment(1.0 - overlap, 1.0 - iou)
        for r, c in matches:
            votes[(int(p.track_id[a0 + r]), int(g.track_id[b0 + c]))] += 1
    best: dict[int, tuple[int, int]] = {}  # track -> (-votes, person): min is the winner
    for (tid, pid), n in votes.items():
        cand = (-n, pid)
        if tid not in best or cand < best[tid]:
            best[tid] = cand
    return {int(t): (best[int(t)][1] if int(t) in best else None) for t in p.ids}


def true_links(
    tracklets: Iterable[Any],
    track_to_person: Mapping[Key, int | None],
    *,
    cross_camera_only: bool = False,
) -> list[tuple[Key, Key]]:
    """Links a perfect linker would make: each person's tracklets in order of start time.

    Args:
        tracklets: Objects with ``camera_id, track_id, start_t`` (`Tracklet`).
        track_to_person: ``{(camera_id, track_id): person or None}``; tracks of no person
            link to nothing.
        cross_camera_only: Keep only links between two cameras (fragments of one track on
            one camera are then not counted as missed links).

    Returns:
        ``(a_key, b_key)`` pairs.
    """
    by_person: dict[int, list[tuple[float, Key]]] = {}
    for t in tracklets:
        key = (t.camera_id, int(t.track_id))
        person = track_to_person.get(key)
        if person is not None:
            by_person.setdefault(person, []).append((float(t.start_t), key))
    out = []
    for person in sorted(by_person):
        chain = [k for _, k in sorted(by_person[person])]
        for a, b in itertools.pairwise(chain):
            if not cross_camera_only or a[0] != b[0]:
                out.append((a, b))
    return out


def global_idf1(
    pred_global: Mapping[Key, int],
    track_to_person: Mapping[Key, int | None],
    weights: Mapping[Key, float],
    *,
    true_frames: float | None = None,
) -> float:
    """Identity F1 over all cameras, at the level of whole tracks.

    The tracks scored are the keys of `weights` (each weighing its frames). A track's
    predicted identity is its global id (a track missing from `pred_global` is an identity
    of its own), its true identity its person (``None``: a false track). Global ids are
    matched one-to-one to persons so as to maximise the frames they share (IDTP), and
    ``IDF1 = 2 IDTP / (predicted frames + true frames)``.

    Args:
        pred_global: ``{(camera_id, track_id): global id}``.
        track_to_person: ``{(camera_id, track_id): person or None}``
            (`match_tracks_to_truth` per camera).
        weights: ``{(camera_id, track_id): frames}``.
        true_frames: Total ground-truth frames (all cameras), to count frames no track
            covered as misses; default: the frames of the tracks with a person.

    Returns:
        IDF1 in ``[0, 1]`` (0 when there is nothing to score).
    """
    gid_of: dict[Key, Hashable] = {}
    cells: Counter[tuple[Hashable, int]] = Counter()
    pred_total = true_total = 0.0
    for key, w in weights.items():
        w = float(w)
        gid = pred_global.get(key)
        gid_of[key] = ("own", key) if gid is None else ("gid", gid)
        pred_total += w
        person = track_to_person.get(key)
        if person is not None:
            true_total += w
            cells[(gid_of[key], person)] += w
    if true_frames is not None:
        true_total = float(true_frames)
    if pred_total + true_total <= 0:
        return 0.0
    if not cells:
        return 0.0
    gids = sorted({g for g, _ in cells}, key=repr)
    persons = sorted({p for _, p in cells})
    gi = {g: i for i, g in enumerate(gids)}
    pi = {p: i for i, p in enumerate(persons)}
    shared = np.zeros((len(gids), len(persons)))
    for (g, p), w in cells.items():
        shared[gi[g], pi[p]] = w
    rows, cols = linear_sum_assignment(shared, maximize=True)
    idtp = float(shared[rows, cols].sum())
    return 2.0 * idtp / (pred_total + true_total)
