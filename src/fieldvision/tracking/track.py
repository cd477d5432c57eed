"""Per-track state of the tracker, stored column-wise (one NumPy row per live track).

A tracker with 30 people keeps 30 Kalman states; predicting them one Python object at a
time costs more than the linear algebra. `TrackTable` keeps every field as an array with
one row per track, so the tracker predicts, gathers and updates all tracks with a handful
of vectorised calls per frame and removes dead ones with one boolean mask. The Kalman
covariances are kept in the filter's block form (`BoxKalmanFilter.predict_blocks`): the
same numbers as the full ``(8, 8)`` matrices without their structural zeros.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

from fieldvision.ops.kalman import BoxKalmanFilter, blocks_to_cov, xyah_to_xyxy, xyxy_to_xyah

__all__ = ["TrackState", "TrackTable"]


class TrackState(IntEnum):
    """Life cycle of a track."""

    TENTATIVE = 0  # born, not yet matched `min_hits` times: never reported, no id yet
    TRACKED = 1  # confirmed and matched in its last frame
    LOST = 2  # confirmed, unmatched since `last_frame`; kept for the lost buffer


_LOST = int(TrackState.LOST)  # a plain int: an enum lookup per frame is measurable


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows of ``(N, D)`` scaled to unit length (zero rows stay zero), float32."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


class TrackTable:
    """Column store of live tracks.

    Columns (``N`` rows, one per track):

    - ``mean (N, 8)``: Kalman state ``[cx, cy, a, h, v...]``; ``cov_blocks (N, 2, 2, 4)``:
      its covariance in block form (`cov` gives the full ``(N, 8, 8)`` matrices);
    - ``track_id (N,)``: the reported id, ``0`` while tentative;
    - ``state (N,)``: a `TrackState`;
    - ``hits (N,)``: matched frames so far; ``last_frame (N,)``: the last matched frame;
    - ``class_id (N,)``, ``score (N,)``, ``det_xyxy (N, 4)``: of the last matched detection;
    - ``embedding (N, D)`` float32 unit vectors (EMA of matched detections) and
      ``has_embedding (N,)``, or ``embedding is None`` before any detection carried one.

    Args:
        kf: The Kalman filter used to initiate, predict and update states.
    """

    def __init__(self, kf: BoxKalmanFilter) -> None:
        self.kf = kf
        self.mean = np.zeros((0, 8))
        self.cov_blocks = np.zeros((0, 2, 2, 4))
        self.track_id = np.zeros(0, dtype=np.int64)
        self.state = np.zeros(0, dtype=np.int8)
        self.hits = np.zeros(0, dtype=np.int64)
        self.last_frame = np.zeros(0, dtype=np.int64)
        self.class_id = np.zeros(0, dtype=np.int64)
        self.score = np.zeros(0)
        self.det_xyxy = np.zeros((0, 4))
        self.embedding: np.ndarray | None = None
        self.has_embedding = np.zeros(0, dtype=bool)

    def __len__(self) -> int:
        return self.mean.shape[0]

    @property
    def cov(self) -> np.ndarray:
        """``(N, 8, 8)`` full Kalman covariances (built from `cov_blocks`; a copy)."""
        return blocks_to_cov(self.cov_blocks)

    def boxes(self, index: np.ndarray | slice = slice(None)) -> np.ndarray:
        """``(K, 4)`` xyxy boxes of the (predicted or updated) Kalman states."""
        return xyah_to_xyxy(self.mean[index])

    def _ensure_embedding(self, dim: int) -> np.ndarray:
        if self.embedding is None:
            self.embedding = np.zeros((len(self), dim), dtype=np.float32)
        elif self.embedding.shape[1] != dim:
            raise ValueError(
                f"detections carry {dim}-d embeddings, the tracker has {self.embedding.shape[1]}-d"
            )
        return self.embedding

    def add(
        self,
        xyxy: np.ndarray,
        score: np.ndarray,
        class_id: np.ndarray,
        frame: int,
        state: np.ndarray,
        track_id: np.ndarray,
        embedding: np.ndarray | None,
    ) -> None:
        """Append new tracks born from ``(K, 4)`` detection boxes in `frame`.

        Args:
            xyxy: ``(K, 4)`` boxes; `score`, `class_id`, `state`, `track_id`: ``(K,)``.
            embedding: ``(K, D)`` unit vectors, or ``None``.
        """
        k = xyxy.shape[0]
        if k == 0:
            return
        mean, cov = self.kf.initiate_blocks(xyxy_to_xyah(xyxy))
        n = len(self)
        self.mean = np.concatenate([self.mean, mean])
        self.cov_blocks = np.concatenate([self.cov_blocks, cov])
        self.track_id = np.concatenate([self.track_id, track_id.astype(np.int64)])
        self.state = np.concatenate([self.state, state.astype(np.int8)])
        self.hits = np.concatenate([self.hits, np.ones(k, dtype=np.int64)])
        self.last_frame = np.concatenate([self.last_frame, np.full(k, frame, dtype=np.int64)])
        self.class_id = np.concatenate([self.class_id, class_id])
        self.score = np.concatenate([self.score, score])
        self.det_xyxy = np.concatenate([self.det_xyxy, xyxy])
        if embedding is not None or self.embedding is not None:
            dim = (embedding if embedding is not None else self.embedding).shape[1]  # type: ignore[union-attr]
            old = self.embedding if self.embedding is not None else np.zeros((n, dim), np.float32)
            if old.shape[1] != dim:
                raise ValueError(
                    f"detections carry {dim}-d embeddings, the tracker has {old.shape[1]}-d"
                )
            new = embedding if embedding is not None else np.zeros((k, dim), np.float32)
            self.embedding = np.concatenate([old, new])
        self.has_embedding = np.concatenate([self.has_embedding, np.full(k, embedding is not None)])

    def keep(self, mask: np.ndarray) -> None:
        """Drop every track whose entry in the ``(N,)`` boolean `mask` is false."""
        idx = mask.nonzero()[0]
        if idx.size == mask.size:
            return
        self.mean = self.mean.take(idx, 0)
        self.cov_blocks = self.cov_blocks.take(idx, 0)
        self.track_id = self.track_id.take(idx)
        self.state = self.state.take(idx)
        self.hits = self.hits.take(idx)
        self.last_frame = self.last_frame.take(idx)
        self.class_id = self.class_id.take(idx)
        self.score = self.score.take(idx)
        self.det_xyxy = self.det_xyxy.take(idx, 0)
        self.has_embedding = self.has_embedding.take(idx)
        if self.embedding is not None:
            self.embedding = self.embedding.take(idx, 0)

    def predict(self, dt: int) -> None:
        """Advance every track by `dt` frames."""
        if not len(self):
            return
        # A lost track keeps drifting with its last velocity; its height velocity is
        # frozen so that the box cannot grow or shrink without bound while unseen.
        self.mean[self.state == _LOST, 7] = 0.0
        self.mean, self.cov_blocks = self.kf.predict_blocks(self.mean, self.cov_blocks, dt)

    def reinitiate(self, index: np.ndarray, xyxy: np.ndarray) -> None:
        """Restart the Kalman state of tracks ``index (K,)`` at boxes ``(K, 4)``.

        For a lost track re-identified far from its prediction: a Kalman update would turn
        the jump into a huge velocity; the id, hits and embedding are kept.
        """
        if index.size:
            self.mean[index], self.cov_blocks[index] = self.kf.initiate_blocks(xyxy_to_xyah(xyxy))

    def update(
        self,
        index: np.ndarray,
        xyxy: np.ndarray,
        score: np.ndarray,
        frame: int,
        embedding: np.ndarray | None,
        momentum: float,
    ) -> None:
        """Correct tracks ``index (K,)`` with their matched detections.

        Args:
            index: ``(K,)`` rows of this table.
            xyxy: ``(K, 4)`` matched boxes; `score`: ``(K,)``.
            frame: The current frame.
            embedding: ``(K, D)`` unit vectors to blend in, or ``None`` (kept as is).
            momentum: EMA weight of the old embedding (``e = m * e + (1 - m) * new``).
        """
        if index.size == 0:
            return
        mean, cov = self.kf.update_blocks(
            self.mean.take(index, 0), self.cov_blocks.take(index, 0), xyxy_to_xyah(xyxy)
        )
        self.mean[index] = mean
        self.cov_blocks[index] = cov
        self.hits[index] += 1
        self.last_frame[index] = frame
        self.score[index] = score
        self.det_xyxy[index] = xyxy
        if embedding is not None:
            emb = self._ensure_embedding(embedding.shape[1])
            had = self.has_embedding[index]
            # a track without a feature yet takes the detection's as is
            blend = np.where(
                had[:, None], momentum * emb[index] + (1 - momentum) * embedding, embedding
            )
            emb[index] = l2_normalize(blend)
            self.has_embedding[index] = True
