"""Tests for tracker config loading and the timed tracking loop."""

from __future__ import annotations

import pytest

from fieldvision.errors import ConfigError
from fieldvision.pipelines.flow.track import load_tracker_config, track_frames_timed
from fieldvision.tracking.detections import Detections


def test_presets_then_site_section_then_set():
    sort = load_tracker_config("sort")
    byte = load_tracker_config("bytetrack")
    assert sort.low_score_stage is False and byte.low_score_stage is True
    cfg = load_tracker_config("sort", extra={"lost_buffer_s": 2.0}, overrides=["min_hits=5"])
    assert cfg.lost_buffer_s == 2.0 and cfg.min_hits == 5 and cfg.low_score_stage is False


@pytest.mark.parametrize(
    ("preset", "overrides", "message"),
    [
        ("deepsort", [], "deepsort"),
        ("sort", ["min_hits=0"], "min_hits"),
        ("sort", ["no_such_field=1"], "no_such_field"),
    ],
)
def test_bad_tracker_configs(preset, overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_tracker_config(preset, overrides=overrides)


def test_one_walker_keeps_one_id_and_frames_are_counted():
    frames = [
        (f, Detections(xyxy=[[10 + 2 * f, 10, 40 + 2 * f, 90]], confidence=[0.95]))
        for f in range(1, 22)
    ]
    frames[10] = (11, Detections.empty())  # an empty frame is still a frame
    cfg = load_tracker_config("bytetrack")
    tracks, seconds, n = track_frames_timed(frames, cfg, fps=10)
    assert n == 21 and seconds > 0
    assert tracks.ids.tolist() == [1]
