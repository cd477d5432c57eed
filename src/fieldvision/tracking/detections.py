"""Validated containers that flow through every stage of the flow system.

`Detections` holds the boxes of one frame (detector output, tracker input); `Tracks` holds
tracked boxes over any number of frames (tracker output, analytics and store input). Both
are columnar NumPy containers, checked once on construction, so that no stage downstream
re-validates or guesses a convention:

- boxes are ``xyxy`` pixels, ``float64`` ``(N, 4)`` with ``x2 >= x1`` and ``y2 >= y1``;
- ``confidence`` is ``float64`` ``(N,)``; ``class_id`` is ``int64`` ``(N,)``;
- ``embedding`` is ``float32`` ``(N, D)`` or ``None`` (appearance features, never pixels).

Empty input gives an empty container, never ``None``. Internal producers that build
columns already in this form (the tracker, once per frame) use the private
``_trusted`` constructors, which skip the checks; everything else goes through the
validating constructors. `Detections.to_supervision` /
`from_supervision` convert to and from ``supervision.Detections``, the interchange type of
the wider ecosystem (annotators, zones, detector adapters).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

__all__ = ["Detections", "Tracks", "xywh_to_xyxy", "xyxy_to_xywh"]


def xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    """``(N, 4)`` top-left ``x, y, w, h`` → ``(N, 4)`` ``x1, y1, x2, y2`` (float64)."""
    xywh = np.asarray(xywh, dtype=np.float64).reshape(-1, 4)
    out = xywh.copy()
    out[:, 2:] += xywh[:, :2]
    return out


def xyxy_to_xywh(xyxy: np.ndarray) -> np.ndarray:
    """``(N, 4)`` ``x1, y1, x2, y2`` → ``(N, 4)`` top-left ``x, y, w, h`` (float64)."""
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    out = xyxy.copy()
    out[:, 2:] -= xyxy[:, :2]
    return out


def _column(value: Any, n: int, dtype: Any, name: str, default: Any) -> np.ndarray:
    if value is None:
        return np.full(n, default, dtype=dtype)
    arr = np.asarray(value, dtype=dtype).reshape(-1)
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} rows, boxes have {n}")
    return arr


def _check_boxes(xyxy: Any) -> np.ndarray:
    boxes = np.asarray(xyxy, dtype=np.float64)
    if boxes.size == 0:
        return np.zeros((0, 4), dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"xyxy must have shape (N, 4), got {boxes.shape}")
    if not np.isfinite(boxes).all():
        raise ValueError("xyxy has non-finite values")
    if (boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any():
        bad = int(np.flatnonzero((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1]))[0])
        raise ValueError(f"box {bad} has x2 < x1 or y2 < y1: {boxes[bad].tolist()}")
    return boxes


def _has_duplicate_pair(frame: np.ndarray, track_id: np.ndarray) -> bool:
    """True if some (frame, track id) pair occurs twice (sort-based: the tracker builds a
    container per frame, and ``np.unique(axis=0)`` cost a fifth of its update time)."""
    order = np.lexsort((track_id, frame))
    f, t = frame[order], track_id[order]
    return bool(((f[1:] == f[:-1]) & (t[1:] == t[:-1])).any())


def _check_embedding(embedding: Any, n: int) -> np.ndarray | None:
    if embedding is None:
        return None
    emb = np.asarray(embedding, dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] != n:
        raise ValueError(f"embedding must have shape ({n}, D), got {emb.shape}")
    if not np.isfinite(emb).all():
        raise ValueError("embedding has non-finite values")
    return emb


class _Rows:
    """What both containers do with their columns: length, row selection, foot points."""

    xyxy: np.ndarray

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __getitem__(self, index: Any) -> Any:
        """Rows selected by a boolean mask, an index array or a slice (always a container,
        validated again: repeated indices could repeat a track in a frame)."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        columns = {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]
        return type(self)(**{k: None if v is None else v[index] for k, v in columns.items()})

    @property
    def bottom_center(self) -> np.ndarray:
        """``(N, 2)`` foot points ``((x1 + x2) / 2, y2)``: where a person stands."""
        return np.stack([(self.xyxy[:, 0] + self.xyxy[:, 2]) / 2, self.xyxy[:, 3]], axis=1)


@dataclass(frozen=True, eq=False)
class Detections(_Rows):
    """The detections of one frame.

    Args:
        xyxy: ``(N, 4)`` boxes in pixels.
        confidence: ``(N,)`` detector scores (default 1).
        class_id: ``(N,)`` class indices (default 0, "person").
        embedding: ``(N, D)`` appearance features, or ``None``.
    """

    xyxy: np.ndarray
    confidence: np.ndarray = field(default=None)  # type: ignore[assignment]
    class_id: np.ndarray = field(default=None)  # type: ignore[assignment]
    embedding: np.ndarray | None = None

    def __post_init__(self) -> None:
        boxes = _check_boxes(self.xyxy)
        n = boxes.shape[0]
        conf = _column(self.confidence, n, np.float64, "confidence", 1.0)
        if not np.isfinite(conf).all():
            raise ValueError("confidence has non-finite values")
        object.__setattr__(self, "xyxy", boxes)
        object.__setattr__(self, "confidence", conf)
        object.__setattr__(self, "class_id", _column(self.class_id, n, np.int64, "class_id", 0))
        object.__setattr__(self, "embedding", _check_embedding(self.embedding, n))

    @classmethod
    def _trusted(
        cls,
        xyxy: np.ndarray,
        confidence: np.ndarray,
        class_id: np.ndarray,
        embedding: np.ndarray | None = None,
    ) -> Detections:
        """Wrap columns that already satisfy the module's conventions, unchecked.

        Internal: for code that built every column itself (float64 ``(N, 4)`` valid boxes,
        float64 / int64 ``(N,)``, float32 ``(N, D)`` or ``None``); no copies are made.
        """
        obj = object.__new__(cls)
        obj.__dict__.update(
            xyxy=xyxy, confidence=confidence, class_id=class_id, embedding=embedding
        )
        return obj

    @classmethod
    def empty(cls, embedding_dim: int | None = None) -> Detections:
        """No boxes (with an empty ``(0, D)`` embedding when `embedding_dim` is given)."""
        emb = None if embedding_dim is None else np.zeros((0, embedding_dim), np.float32)
        return cls(xyxy=np.zeros((0, 4)), embedding=emb)

    @classmethod
    def from_xywh(cls, xywh: np.ndarray, **columns: Any) -> Detections:
        """Build from top-left ``x, y, w, h`` boxes (the MOTChallenge convention)."""
        return cls(xyxy=xywh_to_xyxy(xywh), **columns)

    def to_supervision(self) -> Any:
        """This frame as ``supervision.Detections`` (embedding in ``data['embedding']``)."""
        import supervision as sv

        data = {} if self.embedding is None else {"embedding": self.embedding}
        return sv.Detections(
            xyxy=self.xyxy.copy(),
            confidence=self.confidence.copy(),
            class_id=self.class_id.copy(),
            data=data,
        )

    @classmethod
    def from_supervision(cls, detections: Any) -> Detections:
        """From ``supervision.Detections`` (missing confidence → 1, class → 0)."""
        emb = detections.data.get("embedding") if detections.data else None
        return cls(
            xyxy=detections.xyxy,
            confidence=detections.confidence,
            class_id=detections.class_id,
            embedding=emb,
        )


@dataclass(frozen=True, eq=False)
class Tracks(_Rows):
    """Tracked boxes over frames: one row per (frame, track).

    Args:
        frame: ``(N,)`` frame indices (1-based in MOTChallenge files).
        track_id: ``(N,)`` track ids, unique within a frame.
        xyxy: ``(N, 4)`` boxes in pixels.
        confidence: ``(N,)`` scores of the matched detection (default 1).
        class_id: ``(N,)`` class indices (default 0).
        embedding: ``(N, D)`` appearance features, or ``None``.
    """

    frame: np.ndarray
    track_id: np.ndarray
    xyxy: np.ndarray
    confidence: np.ndarray = field(default=None)  # type: ignore[assignment]
    class_id: np.ndarray = field(default=None)  # type: ignore[assignment]
    embedding: np.ndarray | None = None

    def __post_init__(self) -> None:
        boxes = _check_boxes(self.xyxy)
        n = boxes.shape[0]
        frame = _column(self.frame, n, np.int64, "frame", 0)
        track_id = _column(self.track_id, n, np.int64, "track_id", 0)
        if n > 1 and _has_duplicate_pair(frame, track_id):
            raise ValueError("a track id appears twice in one frame")
        object.__setattr__(self, "xyxy", boxes)
        object.__setattr__(self, "frame", frame)
        object.__setattr__(self, "track_id", track_id)
        object.__setattr__(
            self, "confidence", _column(self.confidence, n, np.float64, "confidence", 1.0)
        )
        object.__setattr__(self, "class_id", _column(self.class_id, n, np.int64, "class_id", 0))
        object.__setattr__(self, "embedding", _check_embedding(self.embedding, n))

    @classmethod
    def _trusted(
        cls,
        frame: np.ndarray,
        track_id: np.ndarray,
        xyxy: np.ndarray,
        confidence: np.ndarray,
        class_id: np.ndarray,
        embedding: np.ndarray | None = None,
    ) -> Tracks:
        """Wrap columns that already satisfy the class's conventions, unchecked.

        Internal: for code that built every column itself and guarantees what
        ``__post_init__`` would check (int64 ``frame`` / ``track_id`` / ``class_id``
        ``(N,)`` with no (frame, track id) pair twice, float64 ``(N, 4)`` valid boxes and
        ``(N,)`` confidences, float32 ``(N, D)`` embeddings or ``None``); the tracker's
        per-frame output. No copies are made.
        """
        obj = object.__new__(cls)
        obj.__dict__.update(
            frame=frame,
            track_id=track_id,
            xyxy=xyxy,
            confidence=confidence,
            class_id=class_id,
            embedding=embedding,
        )
        return obj

    @classmethod
    def empty(cls, embedding_dim: int | None = None) -> Tracks:
        """No rows."""
        emb = None if embedding_dim is None else np.zeros((0, embedding_dim), np.float32)
        return cls(frame=[], track_id=[], xyxy=np.zeros((0, 4)), embedding=emb)

    @classmethod
    def concat(cls, parts: Sequence[Tracks]) -> Tracks:
        """Stack several containers (all with embeddings or all without)."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        with_emb = {p.embedding is not None for p in parts}
        if len(with_emb) > 1:
            raise ValueError("cannot concatenate tracks with and without embeddings")
        return cls(
            frame=np.concatenate([p.frame for p in parts]),
            track_id=np.concatenate([p.track_id for p in parts]),
            xyxy=np.concatenate([p.xyxy for p in parts]),
            confidence=np.concatenate([p.confidence for p in parts]),
            class_id=np.concatenate([p.class_id for p in parts]),
            embedding=np.concatenate([p.embedding for p in parts]) if with_emb == {True} else None,
        )

    def sorted(self) -> Tracks:
        """Rows ordered by (frame, track id)."""
        return self[np.lexsort((self.track_id, self.frame))]

    @property
    def ids(self) -> np.ndarray:
        """Sorted unique track ids."""
        return np.unique(self.track_id)

    def by_track(self) -> Iterator[tuple[int, Tracks]]:
        """``(track_id, rows of that track ordered by frame)`` for each track."""
        ordered = self[np.lexsort((self.frame, self.track_id))]
        if not len(ordered):
            return
        starts = np.flatnonzero(np.r_[True, np.diff(ordered.track_id) != 0])
        ends = np.r_[starts[1:], len(ordered)]
        for s, e in zip(starts, ends, strict=True):
            yield int(ordered.track_id[s]), ordered[slice(int(s), int(e))]
