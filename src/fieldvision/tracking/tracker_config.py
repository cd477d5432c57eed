"""`TrackerConfig`: every knob of the tracker, with its default and why, and the presets.

``"bytetrack"`` is the defaults; ``"sort"`` is SORT (Bewley et al. 2016), the motion-only
reference. `fieldvision.tracking.tracker` documents what each stage does with them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fieldvision.config import StrictModel
from fieldvision.errors import ConfigError

__all__ = ["TrackerConfig"]


class TrackerConfig(StrictModel):
    """Tracker settings; the defaults are the ``"bytetrack"`` preset tuned on MOT15.

    Scores are detector confidences; costs are ``1 - IoU`` (0 = same box, 1 = disjoint).
    """

    # --- detections
    # first-stage ("high") detections score at least this
    high_thresh: float = Field(0.6, ge=0, le=1)
    # below this a detection is ignored altogether
    low_thresh: float = Field(0.1, ge=0, le=1)
    # an unmatched detection needs this to start a track (ByteTrack: 0.7; 0.9 starts fewer
    # false tracks from the 0.5-0.9 clutter of Faster R-CNN detections on MOT15)
    new_track_thresh: float = Field(0.9, ge=0, le=1)
    # --- association (costs: 0 = same box, 1 = disjoint)
    # max cost of a first-stage match (0.8: IoU >= 0.2, or less with a low score)
    match_thresh: float = Field(0.8, ge=0, le=1)
    # max cost (IoU only) in the low-score stage (IoU >= 0.5)
    low_match_thresh: float = Field(0.5, ge=0, le=1)
    # max cost for a tentative track to continue
    tentative_match_thresh: float = Field(0.7, ge=0, le=1)
    # first-stage cost 1 - IoU * score: a confident box wins a contested track
    fuse_score: bool = True
    # ByteTrack's second stage; off: detections below high_thresh are dropped
    low_score_stage: bool = True
    # SORT: tentative tracks compete with confirmed ones in the first stage
    tentative_in_first_stage: bool = False
    # never match a track to a detection of another class
    class_aware: bool = True
    # --- life cycle
    # consecutive matches to confirm a track (when it gets its id and is first reported)
    min_hits: int = Field(2, ge=1)
    # tracks born in the tracker's first frame are confirmed at once
    confirm_first_frame: bool = True
    # a lost track dies once unseen for longer than this (at least one frame)
    lost_buffer_s: float = Field(1.0, ge=0)
    # --- appearance (used only when detections carry embeddings)
    use_appearance: bool = True
    # appearance cost ((1 - cosine) / 2, in [0, 1]) above which appearance is ignored
    appearance_thresh: float = Field(0.25, ge=0, le=1)
    # appearance counts only where the IoU cost is at most this (the boxes overlap)
    proximity_thresh: float = Field(0.5, ge=0, le=1)
    # EMA weight of a track's old embedding when a new one is blended in
    embedding_momentum: float = Field(0.9, ge=0, lt=1)
    # re-identify lost tracks by appearance alone (stage 3)
    reid: bool = True
    # max appearance cost to re-identify a lost track (stricter than appearance_thresh:
    # there is no motion cue to back it up)
    reid_thresh: float = Field(0.15, ge=0, le=1)
    # box heights per second a person may move while unseen; None: anywhere in the frame
    reid_max_speed: float | None = Field(3.0, gt=0)
    # --- output
    # reported box: the Kalman-filtered state (smoother, +1 HOTA on MOT15) or the detection
    output_box: Literal["detection", "filtered"] = "filtered"
    # --- Kalman noise, as fractions of the box height
    std_weight_position: float = Field(1.0 / 20, gt=0)
    std_weight_velocity: float = Field(1.0 / 160, gt=0)

    @classmethod
    def preset(cls, name: str) -> TrackerConfig:
        """A named configuration: ``"bytetrack"`` (the defaults) or ``"sort"``.

        Raises:
            ConfigError: Unknown name.
        """
        key = name.lower().replace("-", "").replace("_", "")
        if key == "bytetrack":
            return cls()
        if key == "sort":
            # SORT's published settings: detections used as given (these MOT15 files hold
            # scores >= 0.5 only), IoU >= 0.3, min_hits 3, max_age 1 frame, Kalman output.
            return cls(
                high_thresh=0.5,
                low_thresh=0.5,
                new_track_thresh=0.5,
                match_thresh=0.7,
                tentative_match_thresh=0.7,
                fuse_score=False,
                low_score_stage=False,
                tentative_in_first_stage=True,
                min_hits=3,
                lost_buffer_s=0.0,  # the one-frame minimum: SORT's max_age=1
                use_appearance=False,
                reid=False,
                output_box="filtered",
            )
        raise ConfigError(f"unknown tracker preset {name!r}", hint="use 'bytetrack' or 'sort'")
