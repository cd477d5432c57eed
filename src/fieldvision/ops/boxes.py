"""Box overlap and Soft-NMS on NumPy ``xyxy`` boxes.

Boxes are ``(N, 4)`` ``x1, y1, x2, y2`` pixels (the `fieldvision.tracking.Detections`
convention). Everything here is NumPy: the tracker calls `box_iou` once or twice per frame
on a few dozen boxes, where a round trip through torch would cost more than the maths. A
CPU ``torch.Tensor`` is accepted wherever an array is (it is converted with
``np.asarray``).

`soft_nms` is Soft-NMS (Bodla et al., "Soft-NMS -- Improving Object Detection With One Line
of Code", ICCV 2017): instead of deleting every box that overlaps a kept one, it lowers that
box's score by a function of the overlap, so a second person half hidden behind a first is
kept with a lower score rather than lost. torchvision ships only hard NMS.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

__all__ = ["box_area", "box_iou", "pairwise_iou", "soft_nms"]


def _as_boxes(boxes: Any, name: str) -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 4), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4), got {arr.shape}")
    return arr


def _area(b: np.ndarray) -> np.ndarray:
    wh = b[:, 2:] - b[:, :2]
    np.maximum(wh, 0.0, out=wh)
    return wh[:, 0] * wh[:, 1]


def box_area(boxes: Any) -> np.ndarray:
    """Areas of ``(N, 4)`` xyxy boxes → ``(N,)`` (zero for degenerate boxes)."""
    return _area(_as_boxes(boxes, "boxes"))


def pairwise_iou(
    a: np.ndarray,
    b: np.ndarray,
    area_a: np.ndarray | None = None,
    area_b: np.ndarray | None = None,
) -> np.ndarray:
    """`box_iou` without the input checks, for callers whose boxes are float64 ``(N, 4)``
    and ``(M, 4)`` arrays already (the tracker, once per frame); `area_a` / `area_b` are
    their `box_area` when the caller has them."""
    if area_a is None:
        area_a = _area(a)
    if area_b is None:
        area_b = _area(b)
    # (N, 1) against (1, M): one broadcast per corner, no Python loop
    wh = np.minimum(a[:, None, 2:], b[None, :, 2:])  # (N, M, 2): far corner of the overlap
    wh -= np.maximum(a[:, None, :2], b[None, :, :2])  # minus its near corner
    np.maximum(wh, 0.0, out=wh)
    inter = wh[..., 0] * wh[..., 1]  # (N, M)
    union = area_a[:, None] + area_b[None, :]
    union -= inter
    # union == 0 only where both areas are 0, and then inter is 0 too: left as 0
    np.divide(inter, union, out=inter, where=union > 0)
    return inter


def box_iou(a: Any, b: Any) -> np.ndarray:
    """Intersection over union of every box in `a` with every box in `b`.

    Args:
        a: ``(N, 4)`` xyxy boxes.
        b: ``(M, 4)`` xyxy boxes.

    Returns:
        ``(N, M)`` float64 IoU in ``[0, 1]``; ``0`` where both boxes have zero area (where
        torchvision would divide 0 by 0). Empty inputs give an empty ``(N, M)`` matrix.

    Raises:
        ValueError: An input is not ``(K, 4)``.
    """
    a = _as_boxes(a, "a")
    b = _as_boxes(b, "b")
    return pairwise_iou(a, b)


def soft_nms(
    boxes: Any,
    scores: Any,
    *,
    sigma: float = 0.5,
    iou_threshold: float = 0.3,
    score_threshold: float = 0.001,
    method: Literal["gaussian", "linear", "hard"] = "gaussian",
) -> tuple[np.ndarray, np.ndarray]:
    """Soft-NMS: repeatedly keep the best box and decay the scores of the boxes it overlaps.

    Each round keeps the box ``m`` with the highest current score and multiplies the score
    of every remaining box ``i`` by a weight of ``o = IoU(m, i)``:

    - ``"gaussian"``: ``exp(-o**2 / sigma)`` for every box (`iou_threshold` is unused);
    - ``"linear"``: ``1 - o`` where ``o > iou_threshold``, else ``1``;
    - ``"hard"``: ``0`` where ``o > iou_threshold``, else ``1`` (classic NMS, for
      comparison; equals ``torchvision.ops.nms``).

    Boxes whose score falls below `score_threshold` are dropped. Because a kept box's score
    never changes after it is kept and the others only decrease, the kept boxes come out in
    order of their decayed scores, highest first.

    Args:
        boxes: ``(N, 4)`` xyxy boxes.
        scores: ``(N,)`` scores.
        sigma: Gaussian width (> 0); smaller is harsher (``sigma -> 0`` is hard NMS at
            IoU 0).
        iou_threshold: Overlap above which the linear and hard methods decay a score.
        score_threshold: Boxes scoring below this (after decay) are discarded.
        method: ``"gaussian"``, ``"linear"`` or ``"hard"``.

    Returns:
        ``(keep, kept_scores)``: ``(K,)`` int64 indices into `boxes`, ordered by decreasing
        decayed score, and their ``(K,)`` float64 decayed scores. Empty input gives two
        empty arrays.

    Raises:
        ValueError: Bad shapes, a non-positive `sigma`, or an unknown `method`.
    """
    b = _as_boxes(boxes, "boxes")
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if s.shape[0] != b.shape[0]:
        raise ValueError(f"scores has {s.shape[0]} entries, boxes has {b.shape[0]}")
    if method not in ("gaussian", "linear", "hard"):
        raise ValueError(f"method must be 'gaussian', 'linear' or 'hard', got {method!r}")
    if method == "gaussian" and not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")

    alive = np.flatnonzero(s >= score_threshold)  # indices still in play
    cur = s[alive].copy()  # their current (decayed) scores
    areas = _area(b)
    keep: list[int] = []
    kept_scores: list[float] = []
    while alive.size:
        top = int(np.argmax(cur))
        m = int(alive[top])
        keep.append(m)
        kept_scores.append(float(cur[top]))
        alive = np.delete(alive, top)
        cur = np.delete(cur, top)
        if not alive.size:
            break
        # IoU of the kept box against the rest only: O(N) per round, O(N) memory.
        rest = b[alive]
        iw = np.minimum(b[m, 2], rest[:, 2]) - np.maximum(b[m, 0], rest[:, 0])
        ih = np.minimum(b[m, 3], rest[:, 3]) - np.maximum(b[m, 1], rest[:, 1])
        inter = np.maximum(iw, 0.0) * np.maximum(ih, 0.0)
        union = areas[m] + areas[alive] - inter
        iou = np.zeros_like(inter)
        np.divide(inter, union, out=iou, where=union > 0)
        if method == "gaussian":
            cur = cur * np.exp(-(iou * iou) / sigma)
        elif method == "linear":
            cur = np.where(iou > iou_threshold, cur * (1.0 - iou), cur)
        else:
            cur = np.where(iou > iou_threshold, 0.0, cur)
        survive = cur >= score_threshold
        if method == "hard":
            survive &= iou <= iou_threshold  # suppressed even with score_threshold <= 0
        alive, cur = alive[survive], cur[survive]
    return np.asarray(keep, dtype=np.int64), np.asarray(kept_scores, dtype=np.float64)
