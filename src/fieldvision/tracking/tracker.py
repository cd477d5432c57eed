"""Multi-object tracker: ByteTrack two-stage association, optional appearance, SORT preset.

One `Tracker` follows the people of one camera. Each `Tracker.update` takes the
`Detections` of one frame and returns the `Tracks` rows of the confirmed tracks seen in that
frame. The association, in the order it runs:

1. **High-score stage.** Detections scoring at least ``high_thresh`` are matched to every
   confirmed track, tracked or lost, on ``1 - IoU`` between the detection and the track's
   Kalman prediction (optionally ``1 - IoU * score``, which makes a confident detection
   win a contested track). With embeddings, the cost is ``min(iou_cost, appearance_cost)``
   as in BoT-SORT, the appearance cost (half the cosine distance to the track's EMA
   embedding) counting only where it is below ``appearance_thresh`` and the boxes overlap
   (IoU cost below ``proximity_thresh``), so appearance can rescue a match that motion
   blurred but never links two distant boxes.
2. **Low-score stage** (ByteTrack). Detections between ``low_thresh`` and ``high_thresh`` —
   mostly partly occluded people — are matched, on IoU only, to tracks still unmatched that
   were tracked in the previous frame. They keep a track alive through an occlusion but
   never start one.
3. **Re-identification** (with embeddings). Remaining high-score detections are matched
   to lost tracks on appearance alone, within a distance a person could have walked, so a
   person who reappears after an occlusion away from where the motion model predicted gets
   the old id back.
4. **Tentative stage.** Remaining high-score detections are matched to tentative tracks
   (born in recent frames, not yet confirmed); unmatched tentative tracks are dropped.
5. **Births.** Remaining detections scoring at least ``new_track_thresh`` start tentative
   tracks, confirmed after ``min_hits`` consecutive matches (at once in the first frame).

Confirmed tracks unmatched in a frame become lost and die once lost for longer than
``lost_buffer_s`` seconds (at least one frame), converted with the frame rate so the same
config means the same thing at 7 and at 30 frames/s.

`TrackerConfig.preset` gives ``"bytetrack"`` (all of the above) and ``"sort"`` (SORT,
Bewley et al. 2016: one IoU Hungarian stage over all tracks, three hits to confirm, one
frame of grace, no low-score stage and no appearance), the motion-only reference.

**Speed.** With ten-odd people in view, an update costs a few dozen small NumPy calls, so
the loop is written to make few of them: one track-by-detection IoU matrix per frame that
every stage indexes, the Kalman filter in its block form (`BoxKalmanFilter.update_blocks`:
no batched solve), the unchecked assignment and container paths
(`fieldvision.ops.assignment.solve_assignment`, ``Tracks._trusted``) for data built here,
and no copy where a stage uses every track or detection. All of it computes the same
numbers as the plain formulation; `benchmarks/flow_tracking.py` times it against a peer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from fieldvision.errors import ConfigError
from fieldvision.ops.assignment import solve_assignment
from fieldvision.ops.boxes import pairwise_iou
from fieldvision.ops.kalman import BoxKalmanFilter
from fieldvision.tracking.detections import Detections, Tracks
from fieldvision.tracking.track import TrackState, TrackTable, l2_normalize
from fieldvision.tracking.tracker_config import TrackerConfig

__all__ = ["Tracker", "TrackerConfig", "track_frames"]

# plain ints: an IntEnum attribute lookup per comparison is measurable at 2000 frames/s
_TENTATIVE, _TRACKED, _LOST = (
    int(TrackState.TENTATIVE),
    int(TrackState.TRACKED),
    int(TrackState.LOST),
)


class Tracker:
    """Online multi-object tracker for one camera (see the module docstring).

    Args:
        cfg: Settings (`TrackerConfig.preset` for the named ones).
        fps: Frame rate of the video, to turn the seconds in `cfg` into frames.

    Raises:
        ConfigError: `fps` is not positive or thresholds are inconsistent.
    """

    def __init__(self, cfg: TrackerConfig | None = None, fps: float = 30.0) -> None:
        self.cfg = cfg if cfg is not None else TrackerConfig()
        if not (math.isfinite(fps) and fps > 0):
            raise ConfigError(f"fps must be a positive number, got {fps}")
        if self.cfg.low_thresh > self.cfg.high_thresh:
            raise ConfigError(
                f"low_thresh ({self.cfg.low_thresh}) is above high_thresh ({self.cfg.high_thresh})"
            )
        self.fps = float(fps)
        # "longer than lost_buffer_s" in whole frames; at least one so that a single missed
        # detection never ends a track
        self.max_lost_frames = max(1, round(self.cfg.lost_buffer_s * self.fps))
        self.kf = BoxKalmanFilter(self.cfg.std_weight_position, self.cfg.std_weight_velocity)
        self._detection_box = self.cfg.output_box == "detection"
        self.reset()

    def reset(self) -> None:
        """Forget every track and restart ids at 1 (a new video)."""
        self.tracks = TrackTable(self.kf)
        self.next_id = 1
        self.frame: int | None = None
        # per-frame scratch of `update`, read by the stages: the frame's detections, the
        # track-by-detection IoU, and whether class ids can bar any pair
        self._fd: _FrameDets | None = None
        self._iou: np.ndarray | None = None
        self._class_mask = False

    # ------------------------------------------------------------------ costs
    def _cost(
        self,
        rows: np.ndarray | None,
        cols: np.ndarray | None,
        *,
        fuse_score: bool,
        appearance: bool,
    ) -> np.ndarray:
        """``(len(rows), len(cols))`` cost of tracks `rows` against detections `cols`.

        Reads this frame's track-by-detection IoU (`_iou`, computed once in `update`); a
        ``None`` index means every track / detection, in order.
        """
        iou: np.ndarray = self._iou  # type: ignore[assignment]
        if rows is not None:
            iou = iou.take(rows, 0)
        if cols is not None:
            iou = iou.take(cols, 1)
        fd: _FrameDets = self._fd  # type: ignore[assignment]
        score = fd.score if cols is None else fd.score.take(cols)
        cost = 1.0 - iou * score if fuse_score else 1.0 - iou
        t = self.tracks
        if appearance:
            t_rows = slice(None) if rows is None else rows
            d_cols = slice(None) if cols is None else cols
            iou_cost = 1.0 - iou
            app = 0.5 * (1.0 - t.embedding[t_rows] @ fd.embedding[d_cols].T)  # type: ignore[index, union-attr]
            usable = (
                (app <= self.cfg.appearance_thresh)
                & (iou_cost <= self.cfg.proximity_thresh)
                & t.has_embedding[t_rows][:, None]
            )
            cost = np.where(usable, np.minimum(cost, app), cost)
        if self._class_mask:
            tc = t.class_id if rows is None else t.class_id.take(rows)
            dc = fd.class_id if cols is None else fd.class_id.take(cols)
            cost = np.where(tc[:, None] == dc[None, :], cost, np.inf)
        return cost

    def _match(
        self,
        rows: np.ndarray,
        cols: np.ndarray,
        thresh: float,
        *,
        fuse_score: bool,
        appearance: bool,
        all_rows: bool = False,
        all_cols: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Assign tracks `rows` to detections `cols` (`all_rows` / `all_cols`: they are every
        track / detection in order); returns matched rows, matched cols, unmatched rows,
        unmatched cols."""
        if not rows.size or not cols.size:
            return _NONE, _NONE, rows, cols
        cost = self._cost(
            None if all_rows else rows,
            None if all_cols else cols,
            fuse_score=fuse_score,
            appearance=appearance,
        )
        r, c, ur, uc = solve_assignment(cost, thresh)
        return rows[r], cols[c], rows[ur], cols[uc]

    def _apply(self, rows: np.ndarray, cols: np.ndarray, frame: int) -> None:
        """Kalman-update matched tracks and blend in high-score embeddings."""
        if not rows.size:
            return
        fd: _FrameDets = self._fd  # type: ignore[assignment]
        if fd.embedding is not None:
            # low-score boxes are mostly occluded people: their features describe the
            # occluder as much as the person, so they do not move the track's embedding
            good = fd.score[cols] >= self.cfg.high_thresh
            if good.any():
                self.tracks.update(
                    rows[good], fd.xyxy[cols[good]], fd.score[cols[good]], frame,
                    fd.embedding[cols[good]], self.cfg.embedding_momentum,
                )  # fmt: skip
            rows, cols = rows[~good], cols[~good]
            if not rows.size:
                return
        self.tracks.update(rows, fd.xyxy.take(cols, 0), fd.score.take(cols), frame, None, 0.0)

    # ------------------------------------------------------------------ main loop
    def update(self, detections: Detections, frame: int) -> Tracks:
        """Track one frame.

        Args:
            detections: This frame's detections (embeddings optional).
            frame: Frame index, strictly increasing between calls (gaps are allowed: the
                motion model predicts across them and they count towards the lost buffer).

        Returns:
            The confirmed tracks matched in this frame, one row each, ordered by id, with
            the matched detection's confidence and class, and the track's smoothed
            embedding when the detections carry embeddings. The box is the Kalman-filtered
            state (``output_box="filtered"``, the default) or the matched detection's
            (``"detection"``). Filtered boxes score better on MOT15 (HOTA +1.0, MOTA +1.8,
            IDF1 +0.5 with otherwise equal settings): the filter averages out the frame-to-
            frame jitter of detector boxes, which lifts localisation at the strict IoU
            thresholds HOTA averages over. Tentative and lost tracks are never reported.

        Raises:
            ValueError: `frame` does not increase, or embedding sizes change.
        """
        cfg = self.cfg
        frame = int(frame)
        first = self.frame is None
        if not first and frame <= self.frame:  # type: ignore[operator]
            raise ValueError(f"frame {frame} does not follow frame {self.frame}")
        t = self.tracks
        # checks first, so that a refused frame leaves the tracker as it was
        fd = _FrameDets(detections, cfg.low_thresh if cfg.low_score_stage else cfg.high_thresh)
        emb_dim = None if fd.embedding is None else fd.embedding.shape[1]
        if emb_dim is not None and t.embedding is not None and emb_dim != t.embedding.shape[1]:
            raise ValueError(
                f"frame {frame}: detections carry {emb_dim}-d embeddings, "
                f"the tracker's tracks have {t.embedding.shape[1]}-d"
            )
        dt = 1 if first else frame - self.frame  # type: ignore[operator]
        self.frame = frame
        if dt > 1 and len(t):
            # tracks that outlived the buffer in frames the tracker never saw (a gap in the
            # frame numbers) are dead before this frame's matching, as if those frames had
            # been processed empty
            t.keep((t.state == _TENTATIVE) | (frame - 1 - t.last_frame <= self.max_lost_frames))
        t.predict(dt)
        n, m = len(t), len(fd)
        self._fd = fd
        if n and m:
            # every stage reads its costs out of this one track-by-detection IoU matrix
            self._iou = pairwise_iou(t.boxes(), fd.xyxy)
        use_app = cfg.use_appearance and fd.embedding is not None
        # the class test can only bar pairs when some track or detection differs in class
        self._class_mask = cfg.class_aware and n > 0 and m > 0 and _mixed_classes(t, fd)

        state = t.state
        is_high = fd.score >= cfg.high_thresh
        high = is_high.nonzero()[0]
        all_high = high.size == m
        low = _NONE if all_high else (~is_high).nonzero()[0]
        tent = state == _TENTATIVE
        tentative = tent.nonzero()[0]
        any_tentative = tentative.size > 0
        all_rows = _ARANGE[:n] if n <= _ARANGE.size else np.arange(n)
        confirmed = (~tent).nonzero()[0] if any_tentative else all_rows

        # 1. high-score detections against confirmed tracks (all tracks for SORT)
        pool_all = cfg.tentative_in_first_stage or not any_tentative
        pool = all_rows if pool_all else confirmed
        m_rows, m_cols, left_rows, left_high = self._match(
            pool, high, cfg.match_thresh, fuse_score=cfg.fuse_score, appearance=use_app,
            all_rows=pool_all, all_cols=all_high,
        )  # fmt: skip
        matched_rows, matched_cols = [m_rows], [m_cols]

        # 2. low-score detections against tracks tracked until the previous frame
        if cfg.low_score_stage and low.size and left_rows.size:
            cand = left_rows[state[left_rows] == _TRACKED]
            m2_rows, m2_cols, _, _ = self._match(
                cand, low, cfg.low_match_thresh, fuse_score=False, appearance=False
            )
            if m2_rows.size:
                matched_rows.append(m2_rows)
                matched_cols.append(m2_cols)
                taken = np.zeros(n, dtype=bool)
                taken[m2_rows] = True
                left_rows = left_rows[~taken[left_rows]]

        # 3. re-identify lost tracks by appearance alone
        if use_app and cfg.reid and left_high.size:
            cand = left_rows[(state[left_rows] == _LOST) & t.has_embedding[left_rows]]
            if cand.size:
                cost = self._reid_cost(cand, fd, left_high, frame)
                r3, c3, _, uc3 = solve_assignment(cost, cfg.reid_thresh)
                m3_rows, m3_cols, left_high = cand[r3], left_high[c3], left_high[uc3]
                matched_rows.append(m3_rows)
                matched_cols.append(m3_cols)
                # restart the motion model where the person reappeared; the Kalman update
                # below then only refines it
                t.reinitiate(m3_rows, fd.xyxy[m3_cols])

        # 4. tentative tracks against the remaining high-score detections (the unmatched
        # ones are dropped below with every other unmatched tentative track)
        if not cfg.tentative_in_first_stage and any_tentative:
            m4_rows, m4_cols, _, left_high = self._match(
                tentative, left_high, cfg.tentative_match_thresh,
                fuse_score=cfg.fuse_score, appearance=use_app,
            )  # fmt: skip
            matched_rows.append(m4_rows)
            matched_cols.append(m4_cols)

        if len(matched_rows) == 1:
            rows, cols = m_rows, m_cols
        else:
            rows, cols = np.concatenate(matched_rows), np.concatenate(matched_cols)
        self._apply(rows, cols, frame)

        # life cycle: confirm, lose, kill
        if n:
            matched = np.zeros(n, dtype=bool)
            matched[rows] = True
            # confirmed tracks: tracked if matched, else lost; tentative tracks stay
            # tentative until confirmed (an unmatched one is dropped below)
            new_state = np.subtract(_LOST, matched, dtype=np.int8)
            if any_tentative:
                new_state[tent] = _TENTATIVE
                promote = tent & matched & (t.hits >= cfg.min_hits)
                k = np.count_nonzero(promote)
                if k:
                    t.track_id[promote] = np.arange(self.next_id, self.next_id + k)
                    self.next_id += k
                    new_state[promote] = _TRACKED
            t.state = new_state
            # dropped: unmatched tentative tracks (a tentative track must match every frame
            # until confirmed) and lost tracks past the buffer
            unmatched = ~matched
            drop = unmatched & (t.last_frame < frame - self.max_lost_frames)
            if any_tentative:
                drop |= unmatched & tent
            if np.count_nonzero(drop):
                t.keep(~drop)

        # 5. births
        if left_high.size:
            born = left_high[fd.score[left_high] >= cfg.new_track_thresh]
            self._birth(fd, born, frame, first)
        self._fd = self._iou = None
        return self._output(frame, fd.embedding is not None)

    def _reid_cost(
        self, rows: np.ndarray, dets: _FrameDets, cols: np.ndarray, frame: int
    ) -> np.ndarray:
        """Appearance cost of lost tracks `rows` against detections `cols`, gated by distance."""
        t = self.tracks
        cost = 0.5 * (1.0 - t.embedding[rows] @ dets.embedding[cols].T)  # type: ignore[index, union-attr]
        cost = cost.astype(np.float64)
        if self.cfg.reid_max_speed is not None:
            # where it was last seen (the detection box, not the drifting prediction)
            last = t.det_xyxy[rows]
            h = np.maximum(last[:, 3] - last[:, 1], 1.0)
            seconds = (frame - t.last_frame[rows]) / self.fps
            radius = h * (1.0 + self.cfg.reid_max_speed * seconds)  # (R,)
            c_t = (last[:, :2] + last[:, 2:]) / 2
            c_d = (dets.xyxy[cols, :2] + dets.xyxy[cols, 2:]) / 2
            dist = np.linalg.norm(c_t[:, None, :] - c_d[None, :, :], axis=2)
            cost = np.where(dist <= radius[:, None], cost, np.inf)
        if self.cfg.class_aware:
            cost = np.where(t.class_id[rows][:, None] == dets.class_id[cols][None, :], cost, np.inf)
        return cost

    def _birth(self, dets: _FrameDets, cols: np.ndarray, frame: int, first: bool) -> None:
        k = cols.size
        if not k:
            return
        confirm = (first and self.cfg.confirm_first_frame) or self.cfg.min_hits <= 1
        if confirm:
            state = np.full(k, _TRACKED, dtype=np.int8)
            ids = np.arange(self.next_id, self.next_id + k)
            self.next_id += k
        else:
            state = np.full(k, _TENTATIVE, dtype=np.int8)
            ids = np.zeros(k, dtype=np.int64)
        emb = None if dets.embedding is None else dets.embedding[cols]
        self.tracks.add(
            dets.xyxy.take(cols, 0), dets.score.take(cols), dets.class_id.take(cols), frame,
            state, ids, emb,
        )  # fmt: skip

    def _output(self, frame: int, with_embedding: bool) -> Tracks:
        t = self.tracks
        # every confirmed track is tracked (matched, or born confirmed, in this frame) or
        # lost after the life-cycle step, so "tracked" is "confirmed and seen this frame"
        sel = (t.state == _TRACKED).nonzero()[0]
        k = sel.size
        if not k:
            return Tracks.empty()
        ids = t.track_id.take(sel)
        if k > 1:
            order = np.argsort(ids, kind="stable")
            sel, ids = sel.take(order), ids.take(order)
        boxes = t.det_xyxy.take(sel, 0) if self._detection_box else t.boxes(sel)
        emb = None
        if with_embedding and t.embedding is not None:
            emb = t.embedding[sel]
        # every column built here already has the container's dtypes and shapes, and the
        # ids of one frame are distinct: skip the validating constructor
        return Tracks._trusted(
            frame=np.full(k, frame, dtype=np.int64),
            track_id=ids,
            xyxy=boxes,
            confidence=t.score.take(sel),
            class_id=t.class_id.take(sel),
            embedding=emb,
        )


# shared read-only index arrays: no empty / arange allocation per stage and frame
_NONE = np.zeros(0, dtype=np.int64)
_NONE.setflags(write=False)
_ARANGE = np.arange(1024, dtype=np.int64)
_ARANGE.setflags(write=False)


def _mixed_classes(t: TrackTable, fd: _FrameDets) -> bool:
    """Whether the tracks and detections of this frame hold more than one class."""
    c0 = fd.class_id[0]
    return bool(np.count_nonzero(fd.class_id != c0) or np.count_nonzero(t.class_id != c0))


class _FrameDets:
    """The detections of one frame that the tracker uses, as plain arrays.

    Detections below `min_score` are dropped; embeddings are L2-normalised once here.
    """

    __slots__ = ("class_id", "embedding", "score", "xyxy")

    def __init__(self, detections: Detections, min_score: float) -> None:
        conf = detections.confidence
        keep = conf >= min_score
        emb = detections.embedding
        if np.count_nonzero(keep) == keep.size:  # usually: no copies
            self.xyxy, self.score, self.class_id = detections.xyxy, conf, detections.class_id
        else:
            idx = keep.nonzero()[0]
            self.xyxy = detections.xyxy.take(idx, 0)
            self.score = conf.take(idx)
            self.class_id = detections.class_id.take(idx)
            if emb is not None:
                emb = emb.take(idx, 0)
        self.embedding = None if emb is None else l2_normalize(emb)

    def __len__(self) -> int:
        return self.score.shape[0]


def track_frames(
    frames: Iterable[tuple[int, Detections]], cfg: TrackerConfig | None = None, fps: float = 30.0
) -> Tracks:
    """Track a whole sequence with a fresh `Tracker`.

    Args:
        frames: ``(frame, detections)`` in increasing frame order.
        cfg: Tracker settings (default: the ``"bytetrack"`` preset).
        fps: Frame rate of the sequence.

    Returns:
        Every reported row, ordered by frame then track id.
    """
    tracker = Tracker(cfg, fps)
    return Tracks.concat([tracker.update(d, f) for f, d in frames])
