"""Track one camera: detections in, `Tracks` out, association time measured.

The tracker config is a preset (``bytetrack`` or ``sort``) overlaid by an optional YAML
file and ``--set`` overrides, so ``--tracker sort --set lost_buffer_s=2`` means "SORT's
recipe with a longer memory".
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from fieldvision.config import load_config
from fieldvision.tracking.detections import Detections, Tracks

__all__ = ["load_tracker_config", "track_frames_timed"]


def load_tracker_config(
    preset: str = "bytetrack",
    path: str | Path | None = None,
    overrides: Iterable[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> Any:
    """`TrackerConfig` from a preset, then `extra` (a site file's section), a file, ``--set``.

    Raises:
        ConfigError: Unknown preset or a bad field (named).
    """
    from fieldvision.tracking.tracker import TrackerConfig

    base = TrackerConfig.preset(preset).model_dump(mode="json")  # ConfigError if unknown
    base.update(dict(extra or {}))
    return load_config(TrackerConfig, path, overrides, base=base)


def track_frames_timed(
    frames: Iterable[tuple[int, Detections]], cfg: Any, fps: float
) -> tuple[Tracks, float, int]:
    """Run the tracker over `frames`; time only the association (`Tracker.update`).

    Returns:
        ``(tracks, seconds in update, number of frames)``.
    """
    from fieldvision.tracking.tracker import Tracker

    tracker = Tracker(cfg, fps=fps)
    parts: list[Tracks] = []
    seconds = 0.0
    n = 0
    for frame, dets in frames:
        t0 = time.perf_counter()
        out = tracker.update(dets, frame)
        seconds += time.perf_counter() - t0
        n += 1
        if len(out):
            parts.append(out)
    return Tracks.concat(parts), seconds, n
