"""The ``site.yaml`` schema: cameras, their lines and zones, and the camera graph.

A site file describes one venue::

    site: mall-east
    start: 2024-05-04T10:00:00Z        # UTC time of frame 1 of every camera
    sample_s: 1.0                      # position samples (heatmaps, journeys)
    tracker: {preset: bytetrack}       # plus any TrackerConfig field
    linking: {threshold: 0.5}          # cosine similarity needed to link two tracklets
    cameras:
      - id: cam0
        fps: 10
        size: [960, 540]               # (width, height) in pixels
        source: {kind: mot, path: cameras/cam0/det/det.txt,
                 embeddings: cameras/cam0/det/embeddings.npy}
        lines: [{id: entrance, points: [[300, 500], [420, 80]], in_side: right}]
        zones: [{id: kiosk, points: [[600, 300], [700, 300], [720, 380], [590, 380]]}]
    graph:                             # who can walk from camera src to camera dst,
      - {src: cam0, dst: cam1, min_s: -4, max_s: 6}   # and how long it takes (s)

Relative paths are resolved against the folder of the site file. `load_site` turns every
problem into one `ConfigError` that names the file and the field path
(``cameras[1].zones[0].points: polygon is not simple: edges 0 and 2 intersect``).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    PositiveInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from fieldvision.config import StrictModel
from fieldvision.errors import ConfigError
from fieldvision.io import read_yaml

__all__ = [
    "CameraConfig",
    "LineConfig",
    "LinkingConfig",
    "SiteConfig",
    "SourceConfig",
    "TransitEdge",
    "ZoneConfig",
    "load_site",
]

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"  # ids end up in file names and SQL rows


class _FieldError(ValueError):
    """A problem found by a whole-model check, located below the model that raised it."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


def _resolve(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    value = Path(os.path.expanduser(value))
    return value if value.is_absolute() or base is None else Path(base) / value


class SourceConfig(StrictModel):
    """Where a camera's detections come from."""

    kind: Literal["mot", "video"]
    # mot: the det.txt file (or its sequence folder); video: the video file.
    path: Path
    # mot: .npy of (rows, D) float embeddings, one row per det.txt line, in file order.
    embeddings: Path | None = None
    detector: str = "hog"  # video: "hog" (OpenCV people detector) or an .onnx model path
    min_score: float = Field(0.0, ge=0.0, le=1.0)  # detections scored below are dropped
    # video: a `fieldvision reid train` run whose network embeds each person crop
    # (appearance for the tracker and cross-camera linking; crops are never stored).
    reid_run: Path | None = None

    @field_validator("path")
    @classmethod
    def _path_exists(cls, value: Path, info: ValidationInfo) -> Path:
        path = _resolve(value, info)
        if info.data.get("kind") == "mot" and path.is_dir():
            path = path / "det" / "det.txt"  # a MOTChallenge sequence folder
        if not path.is_file():
            raise ValueError(f"file not found: {path}")
        return path

    @field_validator("embeddings")
    @classmethod
    def _embeddings_exist(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        if info.data.get("kind") == "video":
            raise ValueError("embeddings are only for kind 'mot' (rows aligned with det.txt)")
        path = _resolve(value, info)
        if not path.is_file():
            raise ValueError(f"file not found: {path}")
        return path

    @field_validator("reid_run")
    @classmethod
    def _reid_run_exists(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        if info.data.get("kind") != "video":
            raise ValueError("reid_run is only for kind 'video' (mot sources bring embeddings)")
        path = _resolve(value, info)
        if not (path / "run.json").is_file():
            raise ValueError(f"not a run directory (no run.json): {path}")
        return path

    @field_validator("detector")
    @classmethod
    def _detector_known(cls, value: str, info: ValidationInfo) -> str:
        if value == "hog" or info.data.get("kind") != "video":
            return value
        path = _resolve(Path(value), info)
        if path.suffix.lower() != ".onnx":
            raise ValueError(f"must be 'hog' or an .onnx model file, got {value!r}")
        if not path.is_file():
            raise ValueError(f"file not found: {path}")
        return str(path)


class LineConfig(StrictModel):
    """A counting line drawn on the image."""

    id: str = Field(pattern=_ID)
    points: list[tuple[float, float]]  # [[xa, ya], [xb, yb]] pixels; the line runs a → b
    # Which side of a → b, as seen on screen (y down), is "in" (fieldvision.tracking.lines).
    in_side: Literal["left", "right"] = "left"
    min_frames: PositiveInt = 3  # frames a track must hold the new side before it counts

    @field_validator("points")
    @classmethod
    def _valid_line(cls, value: list[tuple[float, float]]) -> list[tuple[float, float]]:
        from fieldvision.tracking.geometry import check_line

        check_line(value)
        return value


class ZoneConfig(StrictModel):
    """A zone (shop front, queue, kiosk) drawn on the image."""

    id: str = Field(pattern=_ID)
    points: list[tuple[float, float]]  # polygon vertices in order, pixels
    min_frames: PositiveInt = 3  # frames inside (outside) before an enter (exit) counts

    @field_validator("points")
    @classmethod
    def _valid_polygon(cls, value: list[tuple[float, float]]) -> list[tuple[float, float]]:
        from fieldvision.tracking.geometry import check_polygon

        check_polygon(value)
        return value


class CameraConfig(StrictModel):
    """One camera: its frame rate, image size, detection source, lines and zones."""

    id: str = Field(pattern=_ID)
    fps: float = Field(gt=0)
    size: tuple[PositiveInt, PositiveInt]  # (width, height) in pixels
    source: SourceConfig
    lines: list[LineConfig] = Field(default_factory=list)
    zones: list[ZoneConfig] = Field(default_factory=list)
    start_offset_s: float = 0.0  # this camera's frame 1 is at site start + offset

    @model_validator(mode="after")
    def _unique_targets(self) -> CameraConfig:
        # Lines and zones share one namespace: both are the `target` of their events.
        seen: dict[str, str] = {}
        for kind, items in (("lines", self.lines), ("zones", self.zones)):
            for i, item in enumerate(items):
                where = f"{kind}[{i}]"
                if item.id in seen:
                    raise _FieldError(
                        (kind, i, "id"), f"duplicate id {item.id!r} (also {seen[item.id]})"
                    )
                seen[item.id] = where
        return self


class TransitEdge(StrictModel):
    """People seen leaving camera `src` can appear on camera `dst` ``min_s..max_s`` later.

    ``min_s`` is negative when the two views overlap (someone appears on `dst` before
    leaving `src`).
    """

    src: str
    dst: str
    min_s: float
    max_s: float

    @model_validator(mode="after")
    def _ordered(self) -> TransitEdge:
        if not self.min_s < self.max_s:
            raise _FieldError(
                ("max_s",), f"must be greater than min_s ({self.min_s} >= {self.max_s})"
            )
        return self


class LinkingConfig(StrictModel):
    """Cross-camera linking of tracklets (`fieldvision.tracking.linking`)."""

    # Cosine similarity of mean appearance embeddings below which a candidate pair is not
    # linked (the later tracklet gets a new identity).
    threshold: float = Field(0.5, ge=-1.0, le=1.0)


def _default_tracker() -> dict[str, Any]:
    return {"preset": "bytetrack"}


class SiteConfig(StrictModel):
    """A whole site: when it starts, its cameras and the walking graph between them."""

    site: str = Field(min_length=1)
    start: datetime  # UTC time of every camera's frame 1 (naive times are taken as UTC)
    cameras: list[CameraConfig] = Field(min_length=1)
    graph: list[TransitEdge] = Field(default_factory=list)
    linking: LinkingConfig = LinkingConfig()
    # TrackerConfig fields (fieldvision.tracking.tracker) over the preset named here.
    tracker: dict[str, Any] = Field(default_factory=_default_tracker)
    sample_s: float = Field(1.0, gt=0)  # seconds between position samples of a track

    @field_validator("start")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @field_validator("tracker")
    @classmethod
    def _preset(cls, value: dict[str, Any]) -> dict[str, Any]:
        value = {"preset": "bytetrack", **value}
        if not isinstance(value["preset"], str):
            raise ValueError(f"preset must be a name (bytetrack, sort), got {value['preset']!r}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SiteConfig:
        first: dict[str, int] = {}
        for i, cam in enumerate(self.cameras):
            if cam.id in first:
                raise _FieldError(
                    ("cameras", i, "id"),
                    f"duplicate camera id {cam.id!r} (also cameras[{first[cam.id]}])",
                )
            first[cam.id] = i
        known = ", ".join(first)
        edges: dict[tuple[str, str], int] = {}
        for i, edge in enumerate(self.graph):
            for end in ("src", "dst"):
                if getattr(edge, end) not in first:
                    cam = getattr(edge, end)
                    raise _FieldError(
                        ("graph", i, end), f"unknown camera {cam!r} (cameras: {known})"
                    )
            pair = (edge.src, edge.dst)
            if pair in edges:
                raise _FieldError(
                    ("graph", i),
                    f"duplicate edge {edge.src} -> {edge.dst} (also graph[{edges[pair]}])",
                )
            edges[pair] = i
        return self

    def camera(self, camera_id: str) -> CameraConfig:
        """The camera with id `camera_id` (`KeyError` if none)."""
        for cam in self.cameras:
            if cam.id == camera_id:
                return cam
        raise KeyError(camera_id)


def _field_path(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def _problems(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        loc, msg = tuple(err["loc"]), err["msg"]
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, _FieldError):
            loc, msg = loc + cause.loc, cause.message
        elif err["type"] == "value_error":
            msg = msg.removeprefix("Value error, ")
        elif err["type"] == "extra_forbidden":
            msg = "unknown field (typo?)"
        problems.append(f"{_field_path(loc)}: {msg}")
    return problems


def load_site(path: str | os.PathLike[str]) -> SiteConfig:
    """Read and validate a ``site.yaml``.

    Args:
        path: The site file; relative paths inside it are resolved against its folder.

    Returns:
        The site, with absolute source paths and a UTC `start`.

    Raises:
        ConfigError: The file is missing or not YAML, or any field is invalid: unknown
            fields, duplicate camera / line / zone ids, unknown cameras or duplicate edges
            in the graph, ``min_s >= max_s``, zero-length lines, non-simple polygons,
            missing source files, ``fps <= 0``. The message names the file and each
            problem's field path.
    """
    path = Path(path)
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping (site, start, cameras, ...)")
    try:
        return SiteConfig.model_validate(data, context={"base_dir": path.resolve().parent})
    except ValidationError as exc:
        raise ConfigError(f"{path}: " + "; ".join(_problems(exc))) from None
