"""Score a processed site against the truth of a synthetic one.

Three questions, each answered from what a user would see:

- **counting**: the line totals and zone visit counts *read back from the store* against
  the generator's exact crossings and visits (`metrics.tracking.count_error`);
- **tracking**: HOTA / MOTA / IDF1 per camera against its ground truth (TrackEval);
- **identities across cameras**: precision / recall of the tracklet links against the links a
  perfect linker would make from the true person of each track, and global-id IDF1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fieldvision.data.mot import read_mot_tracks
from fieldvision.metrics.linking import (
    global_idf1,
    link_precision_recall,
    match_tracks_to_truth,
    true_links,
)
from fieldvision.metrics.tracking import count_error, evaluate_sequences
from fieldvision.report.flow import zones_of
from fieldvision.tracking.linking import tracklets_from_tracks

__all__ = ["evaluate_site"]


def _store_counts(store: Any) -> tuple[dict[str, int], dict[str, int]]:
    lines = {}
    for t in store.totals():
        lines[f"{t['camera_id']}/{t['line']}/in"] = int(t["in"])
        lines[f"{t['camera_id']}/{t['line']}/out"] = int(t["out"])
    zones = {}
    for cam in store.cameras():
        for zone in zones_of(store, cam):
            zones[f"{cam}/{zone}"] = len(store.dwell(zone=zone, camera=cam))
    return lines, zones


def evaluate_site(site: Any, run: Any, truth: Any, store: Any) -> dict[str, Any]:
    """Counting, tracking and linking scores of a site run.

    Args:
        site: The `SiteConfig` that was run.
        run: Its `SiteRun` (tracks per camera, links, global ids).
        truth: The generator's `SiteTruth`.
        store: The open `EventStore` the run wrote to.

    Returns:
        ``{"lines", "zones" (count_error dicts), "cameras" ([TrackingScores]),
        "combined", "links": {precision, recall, f1, predicted, true}, "global_idf1"}``.
    """
    lines_pred, zones_pred = _store_counts(store)
    lines_true = {
        f"{cam}/{line}/{d}": int(n)
        for cam, per_line in truth.line_counts.items()
        for line, dirs in per_line.items()
        for d, n in dirs.items()
    }
    zones_true = {
        f"{cam}/{zone}": int(v["visits"])
        for cam, per_zone in truth.zone_counts.items()
        for zone, v in per_zone.items()
    }
    pairs, to_person, weights, tracklets = {}, {}, {}, []
    t_site = site.start.timestamp()
    for cam_cfg, cam in zip(site.cameras, run.cameras, strict=True):
        gt = read_mot_tracks(truth.root / "cameras" / cam.camera_id / "gt" / "gt.txt")
        pairs[cam.camera_id] = (gt, cam.tracks, cam.frames)
        for tid, person in match_tracks_to_truth(cam.tracks, gt).items():
            to_person[(cam.camera_id, tid)] = person
        ids, counts = np.unique(cam.tracks.track_id, return_counts=True)
        weights.update(
            {(cam.camera_id, int(i)): float(c) for i, c in zip(ids, counts, strict=True)}
        )
        if cam.tracks.embedding is not None:
            start = t_site + cam_cfg.start_offset_s
            tracklets.extend(tracklets_from_tracks(cam.tracks, cam.camera_id, cam.fps, start))
    per_cam, combined = evaluate_sequences(pairs)
    expected = true_links(tracklets, to_person, cross_camera_only=True)
    predicted = [
        (a, b) for a, b, *_ in run.links if a[0] != b[0]
    ]  # same-camera links re-join fragments; scored by the per-camera IDF1 instead
    precision, recall, f1 = link_precision_recall(predicted, expected)
    return {
        "lines": count_error(lines_pred, lines_true),
        "zones": count_error(zones_pred, zones_true),
        "cameras": per_cam,
        "combined": combined,
        "links": {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "predicted": len(predicted),
            "true": len(expected),
        },
        "global_idf1": global_idf1(run.global_ids, to_person, weights),
    }
