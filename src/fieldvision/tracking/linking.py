"""Cross-camera identities: link per-camera tracklets under a camera graph.

Each camera's tracker gives *tracklets*: a track's time span and its mean appearance
embedding. A site's camera graph says where people can walk next and how long it takes
(``TransitEdge(src, dst, min_s, max_s)``; ``min_s < 0`` for overlapping views). Linking:

1. *candidates*: tracklet ``a`` on camera ``src`` may continue as ``b`` on ``dst`` when
   ``b.start_t - a.end_t`` lies in ``[min_s, max_s]``, ``b`` starts and ends after ``a``
   does (on one camera, only after ``a`` has ended), and both have the same class;
2. *score*: cosine similarity of the mean embeddings;
3. *assignment*: one-to-one (each tracklet gets at most one successor and one predecessor),
   maximising the total of ``similarity - threshold`` over pairs at or above `threshold`
   (Hungarian, `fieldvision.ops.assignment.linear_assignment`), solved separately on each
   connected group of candidates. A tracklet whose candidates all score below the
   threshold stays "unknown": it starts a fresh identity;
4. *identities*: links are followed into chains; every chain is one global id, numbered
   1, 2, ... in order of first appearance (start time, then camera, then track id).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from fieldvision.ops.assignment import linear_assignment
from fieldvision.tracking.detections import Tracks

__all__ = ["LinkResult", "Tracklet", "link_tracklets", "tracklets_from_tracks"]

Key = tuple[str, int]  # (camera_id, track_id)


@dataclass(frozen=True, eq=False)
class Tracklet:
    """One camera's track, summarised for linking.

    Args:
        camera_id: The camera.
        track_id: The track id on that camera.
        start_t: Time (s, e.g. Unix) of its first frame.
        end_t: Time of its last frame (``>= start_t``).
        embedding: ``(D,)`` mean appearance; L2-normalised on construction.
        class_id: Object class (only tracklets of one class are linked).
        n_frames: Frames the track was seen in (for frame-weighted metrics).
    """

    camera_id: str
    track_id: int
    start_t: float
    end_t: float
    embedding: np.ndarray
    class_id: int = 0
    n_frames: int = 1

    def __post_init__(self) -> None:
        emb = np.asarray(self.embedding, dtype=np.float64).reshape(-1)
        norm = float(np.linalg.norm(emb))
        if not emb.size or not np.isfinite(emb).all() or norm == 0:
            raise ValueError(f"tracklet {self.key}: embedding must be finite and non-zero")
        if not self.end_t >= self.start_t:
            raise ValueError(f"tracklet {self.key}: end_t {self.end_t} < start_t {self.start_t}")
        object.__setattr__(self, "embedding", emb / norm)

    @property
    def key(self) -> Key:
        """``(camera_id, track_id)``."""
        return (self.camera_id, int(self.track_id))


@dataclass(frozen=True)
class LinkResult:
    """What `link_tracklets` decided.

    Attributes:
        global_ids: ``{(camera_id, track_id): global id}`` for every tracklet (1-based).
        links: ``(a_key, b_key, similarity)``: ``b`` continues ``a``, in order of ``a``'s
            first appearance.
        unlinked: Keys of tracklets with neither predecessor nor successor, in order of
            first appearance.
    """

    global_ids: dict[Key, int]
    links: list[tuple[Key, Key, float]]
    unlinked: list[Key]

    @property
    def n_identities(self) -> int:
        """Number of distinct global ids."""
        return len(set(self.global_ids.values()))


def _majority(values: np.ndarray) -> int:
    """The most frequent value (the smallest among ties)."""
    uniq, counts = np.unique(values, return_counts=True)
    return int(uniq[np.argmax(counts)])


def tracklets_from_tracks(
    tracks: Tracks, camera_id: str, fps: float, start_time: float, *, min_frames: int = 1
) -> list[Tracklet]:
    """One `Tracklet` per track of one camera.

    Frame ``f`` (1-based, as in MOTChallenge files) is at ``start_time + (f - 1) / fps``,
    the convention of `fieldvision.tracking.analytics`. A track's embedding is the mean of
    its rows' L2-normalised embeddings (each frame weighs the same, whatever its norm); rows
    with a zero embedding are ignored, and a track with no usable row is skipped.

    Args:
        tracks: The camera's tracks; they must carry embeddings.
        camera_id: The camera.
        fps: Frame rate (> 0).
        start_time: Time of frame 1.
        min_frames: Tracks with fewer rows are skipped (their mean embedding is noise).

    Returns:
        Tracklets in track-id order.

    Raises:
        ValueError: `tracks` has no embeddings, or ``fps <= 0``.
    """
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if len(tracks) and tracks.embedding is None:
        raise ValueError(
            f"camera {camera_id}: tracks carry no embeddings; cross-camera linking needs "
            "appearance features (a MOT source with embeddings, or an embedder)"
        )
    out = []
    for tid, rows in tracks.by_track():
        if len(rows) < min_frames:
            continue
        emb = rows.embedding.astype(np.float64)
        norm = np.linalg.norm(emb, axis=1)
        usable = norm > 0
        if not usable.any():
            continue
        mean = (emb[usable] / norm[usable, None]).mean(axis=0)
        if not np.linalg.norm(mean) > 1e-12:  # opposite looks cancelled out: no appearance
            continue
        out.append(
            Tracklet(
                camera_id=camera_id,
                track_id=tid,
                start_t=float(start_time + (rows.frame.min() - 1) / fps),
                end_t=float(start_time + (rows.frame.max() - 1) / fps),
                embedding=mean,
                class_id=_majority(rows.class_id),
                n_frames=len(rows),
            )
        )
    return out


def _edge(edge: Any) -> tuple[str, str, float, float]:
    if hasattr(edge, "src"):
        return str(edge.src), str(edge.dst), float(edge.min_s), float(edge.max_s)
    src, dst, lo, hi = edge
    return str(src), str(dst), float(lo), float(hi)


def _candidates(items: list[Tracklet], edges: Sequence[Any]) -> dict[tuple[int, int], None]:
    """Index pairs ``(a, b)`` allowed by some edge's window (insertion-ordered, no repeats)."""
    cams = np.array([t.camera_id for t in items], dtype=object)
    start = np.array([t.start_t for t in items])
    end = np.array([t.end_t for t in items])
    cls = np.array([t.class_id for t in items])
    pairs: dict[tuple[int, int], None] = {}
    for src, dst, lo, hi in (_edge(e) for e in edges):
        a = np.flatnonzero(cams == src)
        b = np.flatnonzero(cams == dst)
        if not len(a) or not len(b):
            continue
        gap = start[b][None, :] - end[a][:, None]
        ok = (gap >= lo) & (gap <= hi)
        ok &= (start[b][None, :] > start[a][:, None]) & (end[b][None, :] > end[a][:, None])
        ok &= cls[a][:, None] == cls[b][None, :]
        if src == dst:  # one camera never sees one person on two tracks at once
            ok &= gap > 0
        for i, j in zip(*np.nonzero(ok), strict=True):
            pairs[(int(a[i]), int(b[j]))] = None
    return pairs


def _assign(
    items: list[Tracklet], pairs: list[tuple[int, int]], threshold: float
) -> list[tuple[int, int, float]]:
    """One-to-one links among candidate pairs, one connected group at a time."""
    if not pairs:
        return []
    n = len(items)
    a, b = np.array(pairs).T
    sim = np.einsum("kd,kd->k", *(np.stack([items[i].embedding for i in idx]) for idx in (a, b)))
    # Bipartite graph: node i = "i as predecessor", node n + j = "j as successor".
    graph = coo_matrix((np.ones(len(a)), (a, n + b)), shape=(2 * n, 2 * n))
    _, label = connected_components(graph, directed=False)
    links = []
    for comp in np.unique(label[a]):
        sel = np.flatnonzero(label[a] == comp)
        rows, ri = np.unique(a[sel], return_inverse=True)
        cols, ci = np.unique(b[sel], return_inverse=True)
        cost = np.full((len(rows), len(cols)), np.inf)
        cost[ri, ci] = -sim[sel]
        matches, _, _ = linear_assignment(cost, -threshold)
        links += [(int(rows[r]), int(cols[c]), float(-cost[r, c])) for r, c in matches]
    return links


def link_tracklets(
    tracklets: Sequence[Tracklet], edges: Sequence[Any], *, threshold: float
) -> LinkResult:
    """Link tracklets across cameras and give each chain one global id.

    Args:
        tracklets: Tracklets of all cameras (keys must be unique).
        edges: The camera graph: objects with ``src, dst, min_s, max_s`` attributes
            (`fieldvision.pipelines.flow.site.TransitEdge`) or ``(src, dst, min_s, max_s)``
            tuples.
        threshold: Least cosine similarity of a link.

    Returns:
        The global ids, the links and the tracklets left unlinked.

    Raises:
        ValueError: Two tracklets share a key.
    """
    items = sorted(tracklets, key=lambda t: (t.start_t, t.camera_id, t.track_id))
    keys = [t.key for t in items]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"tracklet {dup} appears twice")
    links = sorted(_assign(items, list(_candidates(items, edges)), float(threshold)))
    # Each tracklet has at most one successor, so chains are found by following them.
    succ = {i: j for i, j, _ in links}
    has_pred = {j for _, j, _ in links}
    global_ids: dict[Key, int] = {}
    gid = 0
    for i in range(len(items)):  # items are in order of first appearance
        if i in has_pred:
            continue  # numbered with the head of its chain
        gid += 1
        node: int | None = i
        while node is not None:
            global_ids[keys[node]] = gid
            node = succ.get(node)
    linked = has_pred | set(succ)
    return LinkResult(
        global_ids=global_ids,
        links=[(keys[i], keys[j], s) for i, j, s in links],
        unlinked=[keys[i] for i in range(len(items)) if i not in linked],
    )
