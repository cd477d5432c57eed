"""What one camera records: ground-truth boxes, and a detector's imperfect view of them.

- *Ground truth*: every person whose feet are in the image, box from feet to head.
- *Occlusion*: a box is hidden by the boxes of people nearer the camera (each hides the
  fraction of it that it covers); the image border crops the rest. Mostly hidden people
  are missed; partly hidden ones are found with lower scores, and their embedding mixes in
  the look of the person in front: low-score detections carry real people, which is what
  a two-stage (ByteTrack) association exploits.
- *Misses*, *jitter* (box position and size noise) and *score noise* on every detection,
  and a few hard, low-scored cases even when fully visible (motion blur).
- *False positives*: short-lived clutter boxes (1–6 frames) of plausible size where they
  stand, with low-to-middling scores and random embeddings.
- *Embeddings*: unit vectors ``normalise(identity + camera shift + person-on-this-camera
  shift + frame noise)``, so a person looks alike on one camera, a bit different on another.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fieldvision.data.synthetic.site._camera import Camera

_CAMERA_SHIFT = 0.5  # norm of a camera's offset of every embedding (lighting, angle)
_VIEW_SHIFT = 0.45  # norm of a person's offset on one camera (pose, the side seen)
_FRAME_NOISE = 0.6  # norm of per-frame embedding noise
_FP_RATE = 0.15  # new clutter objects per frame
_FP_LIFE = (1, 6)  # frames a clutter object lasts
_BODY_FILL = 0.55  # a person covers about this fraction of the box around them


@dataclass(frozen=True, eq=False)
class CameraRecord:
    """One camera's rows.

    Attributes:
        gt_pid, gt_frame, gt_xyxy: Ground truth (``(G,)``, ``(G,)``, ``(G, 4)``).
        det_frame, det_xyxy, det_score, det_embedding: Detections sorted by frame
            (``(M,)``, ``(M, 4)``, ``(M,)``, ``(M, D)`` float32).
        det_pid: ``(M,)`` the person each detection is of (0 for clutter); not written,
            for tests and diagnostics.
    """

    gt_pid: np.ndarray
    gt_frame: np.ndarray
    gt_xyxy: np.ndarray
    det_frame: np.ndarray
    det_xyxy: np.ndarray
    det_score: np.ndarray
    det_embedding: np.ndarray
    det_pid: np.ndarray


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _same_frame_pairs(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All ordered pairs ``(i, j)``, ``i != j``, of rows in the same frame (vectorised)."""
    order = np.argsort(frame, kind="stable")
    f = frame[order]
    starts = np.searchsorted(f, f, "left")
    counts = np.searchsorted(f, f, "right") - starts
    i = np.repeat(np.arange(len(f)), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    j = starts[i] + (np.arange(len(i)) - first)
    keep = i != j
    return order[i[keep]], order[j[keep]]


def _occlusion(
    xyxy: np.ndarray, depth: np.ndarray, frame: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Fraction of each box hidden by nearer boxes, and the index of the main occluder."""
    n = len(xyxy)
    i, j = _same_frame_pairs(frame)
    front = depth[j] < depth[i]
    i, j = i[front], j[front]
    iw = np.minimum(xyxy[i, 2], xyxy[j, 2]) - np.maximum(xyxy[i, 0], xyxy[j, 0])
    ih = np.minimum(xyxy[i, 3], xyxy[j, 3]) - np.maximum(xyxy[i, 1], xyxy[j, 1])
    area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    ioa = _BODY_FILL * inter / np.maximum(area[i], 1e-9)
    hit = ioa > 0
    i, j, ioa = i[hit], j[hit], ioa[hit]
    # Independent covers: the visible part is the product of what each leaves uncovered.
    log_left = np.bincount(i, weights=np.log1p(-np.minimum(ioa, 0.999)), minlength=n)
    hidden = 1.0 - np.exp(log_left)
    occluder = np.full(n, -1)
    order = np.lexsort((ioa, i))  # per i, largest cover last
    last = np.r_[i[order][1:] != i[order][:-1], True] if len(order) else np.zeros(0, bool)
    occluder[i[order][last]] = j[order][last]
    return hidden, occluder


def _cropped(xyxy: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    inside = np.clip(xyxy, [0, 0, 0, 0], [w, h, w, h])
    area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
    kept = (inside[:, 2] - inside[:, 0]) * (inside[:, 3] - inside[:, 1])
    return kept / np.maximum(area, 1e-9)


def _jitter(xyxy: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    w, h = xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]
    cx = (xyxy[:, 0] + xyxy[:, 2]) / 2 + rng.normal(0, 0.03, len(w)) * h
    cy = (xyxy[:, 1] + xyxy[:, 3]) / 2 + rng.normal(0, 0.03, len(w)) * h
    w = w * np.exp(rng.normal(0, 0.05, len(w)))
    h = h * np.exp(rng.normal(0, 0.04, len(h)))
    return np.column_stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def _clutter(
    camera: Camera, n_frames: int, dim: int, span: tuple[float, float], rng: np.random.Generator
) -> tuple[np.ndarray, ...]:
    """Short-lived false positives: ``(frame, xyxy, score, embedding)``."""
    n_obj = int(rng.poisson(_FP_RATE * n_frames))
    starts = rng.integers(1, n_frames + 1, n_obj)
    lives = rng.integers(_FP_LIFE[0], _FP_LIFE[1] + 1, n_obj)
    spots = np.zeros((0, 2))
    while len(spots) < n_obj:  # where clutter can be: anywhere on the floor in view
        cand = np.column_stack([rng.uniform(*span, 4 * n_obj), rng.uniform(0, 8, 4 * n_obj)])
        spots = np.vstack([spots, cand[camera.sees(cand, 1.0)]])
    spots = spots[:n_obj]
    heights, ratios = rng.uniform(0.5, 1.9, n_obj), rng.uniform(0.3, 1.0, n_obj)
    looks = _unit(rng.standard_normal((n_obj, dim)))
    obj = np.repeat(np.arange(n_obj), lives)
    frame = starts[obj] + (np.arange(len(obj)) - np.repeat(np.cumsum(lives) - lives, lives))
    keep = frame <= n_frames
    obj, frame = obj[keep], frame[keep]
    xyxy, _ = camera.boxes(spots[obj], heights[obj], ratios[obj])
    score = rng.uniform(0.08, 0.6, len(obj))
    noise = rng.standard_normal((len(obj), dim)) * (_FRAME_NOISE / np.sqrt(dim))
    return frame, _jitter(xyxy, rng), score, _unit(looks[obj] + noise)


def record_camera(
    camera: Camera,
    pid: np.ndarray,
    frame: np.ndarray,
    xy: np.ndarray,
    height: np.ndarray,
    width_ratio: np.ndarray,
    identity: np.ndarray,
    n_frames: int,
    span: tuple[float, float],
    rng: np.random.Generator,
) -> CameraRecord:
    """Ground truth and detections of one camera.

    Args:
        camera: The camera.
        pid, frame, xy, height, width_ratio: Everyone's floor position at every frame
            (``(N,)``, ``(N,)``, ``(N, 2)``, ``(N,)``, ``(N,)``).
        identity: ``(P + 1, D)`` unit appearance vectors indexed by pid (row 0 unused).
        n_frames: Frames in the recording.
        span: Floor ``x`` range to scatter clutter over (the camera's view within it).
        rng: This camera's generator.
    """
    size, dim = camera.size, identity.shape[1]
    xyxy, depth = camera.boxes(xy, height, width_ratio)
    seen = camera.in_view(xyxy, depth)
    pid, frame, xyxy, depth = pid[seen], frame[seen], xyxy[seen], depth[seen]
    hidden, occluder = _occlusion(xyxy, depth, frame)
    visible = (1.0 - hidden) * _cropped(xyxy, size)
    # Detection probability: sure when clear, falling with occlusion, nil when mostly hidden.
    p_det = np.where(visible < 0.2, 0.0, np.clip(0.4 + 0.56 * (visible - 0.2) / 0.5, 0, 0.96))
    found = rng.random(len(pid)) < p_det
    box_h = xyxy[:, 3] - xyxy[:, 1]
    score = 0.25 + 0.7 * visible**1.5 + rng.normal(0, 0.05, len(pid))
    score *= np.clip(box_h / 40.0, 0.6, 1.0)  # small, far boxes are less certain
    blur = rng.random(len(pid)) < 0.05
    score = np.where(blur, rng.uniform(0.15, 0.5, len(pid)), score)
    # Appearance: identity + camera shift + this person's look on this camera + noise.
    cam_shift = _CAMERA_SHIFT * _unit(rng.standard_normal(dim))
    view_shift = _VIEW_SHIFT * _unit(rng.standard_normal(identity.shape))
    look = identity + cam_shift + view_shift
    emb = _unit(look[pid] + rng.standard_normal((len(pid), dim)) * (_FRAME_NOISE / np.sqrt(dim)))
    mixed = (occluder >= 0) & (hidden > 0.3)
    w = (0.5 * hidden[mixed])[:, None]
    emb[mixed] = _unit((1 - w) * emb[mixed] + w * _unit(look[pid[occluder[mixed]]]))
    fp_frame, fp_xyxy, fp_score, fp_emb = _clutter(camera, n_frames, dim, span, rng)
    d_frame = np.concatenate([frame[found], fp_frame])
    d_xyxy = np.vstack([_jitter(xyxy[found], rng), fp_xyxy])
    d_score = np.clip(np.concatenate([score[found], fp_score]), 0.01, 0.99)
    d_emb = np.vstack([emb[found], fp_emb]).astype(np.float32)
    d_pid = np.concatenate([pid[found], np.zeros(len(fp_frame), np.int64)])
    # Detectors report boxes inside the image.
    w_img, h_img = size
    d_xyxy = np.clip(d_xyxy, [0, 0, 0, 0], [w_img, h_img, w_img, h_img])
    ok = (d_xyxy[:, 2] - d_xyxy[:, 0] >= 2) & (d_xyxy[:, 3] - d_xyxy[:, 1] >= 2)
    order = np.flatnonzero(ok)[np.lexsort((d_xyxy[ok, 0], d_frame[ok]))]
    g_order = np.lexsort((pid, frame))
    return CameraRecord(
        gt_pid=pid[g_order],
        gt_frame=frame[g_order],
        gt_xyxy=xyxy[g_order],
        det_frame=d_frame[order],
        det_xyxy=d_xyxy[order],
        det_score=d_score[order],
        det_embedding=d_emb[order],
        det_pid=d_pid[order],
    )
