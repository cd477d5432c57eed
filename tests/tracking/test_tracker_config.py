"""Tests for the tracker's config and presets (what Tracker does with them: test_tracker)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fieldvision.errors import ConfigError
from fieldvision.tracking.tracker_config import TrackerConfig


def test_presets_are_named_case_insensitively():
    assert TrackerConfig.preset("bytetrack") == TrackerConfig()
    assert TrackerConfig.preset("Byte-Track") == TrackerConfig()
    sort = TrackerConfig.preset("sort")
    assert sort.min_hits == 3 and not sort.low_score_stage and not sort.use_appearance
    assert sort.tentative_in_first_stage and sort.match_thresh == pytest.approx(0.7)


def test_unknown_preset_and_misspelt_field_are_refused():
    with pytest.raises(ConfigError, match="preset"):
        TrackerConfig.preset("deepsort")
    with pytest.raises(ValidationError):
        TrackerConfig(lost_bufer_s=2.0)
