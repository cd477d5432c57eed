"""Per-camera detection sources: a MOT detections file (+ embeddings) or a video + detector.

`open_source` validates a camera's source completely (every line of a detections file,
the embedding rows, that a video opens) and returns a `CameraSource` whose `frames()`
yields ``(frame, Detections)`` from frame 1, so a site run can check every camera before it
writes anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fieldvision.errors import DataError
from fieldvision.tracking.detections import Detections

__all__ = ["CameraSource", "open_source"]


@dataclass
class CameraSource:
    """A validated source for one camera.

    Attributes:
        camera_id: The camera.
        fps: Frames per second (from the site config).
        n_frames: Number of frames, when known before reading (always for MOT files).
        kind: ``"mot"`` or ``"video"``.
    """

    camera_id: str
    fps: float
    n_frames: int | None
    kind: str
    _frames: list[tuple[int, Detections]] | None = None
    _video: Path | None = None
    _detector: Any = None
    _embedder: Any = None

    def frames(self) -> Iterator[tuple[int, Detections]]:
        """``(frame, detections)`` for every frame, in order, from 1."""
        if self._frames is not None:
            yield from self._frames
            return
        import cv2

        cap = cv2.VideoCapture(str(self._video))
        try:
            index = 0
            while True:
                ok, image = cap.read()
                if not ok:
                    break
                index += 1
                dets = self._detector(image)
                if self._embedder is not None:
                    dets = Detections(
                        xyxy=dets.xyxy,
                        confidence=dets.confidence,
                        class_id=dets.class_id,
                        embedding=self._embedder(image, dets),
                    )
                yield index, dets
        finally:
            cap.release()


def open_source(camera: Any) -> CameraSource:
    """Validate and open `camera.source` (a `CameraConfig` from the site file).

    Raises:
        DataError: The detections file is malformed, its embeddings do not match, or the
            video cannot be opened.
        RunError: A video camera's ``reid_run`` is not a finished re-ID run.
    """
    src = camera.source
    if src.kind == "mot":
        from fieldvision.data.mot import read_mot_detections

        frames = read_mot_detections(
            Path(src.path), embeddings=src.embeddings, min_score=src.min_score
        )
        return CameraSource(camera.id, float(camera.fps), len(frames), "mot", _frames=frames)
    import cv2

    from fieldvision.pipelines.flow.detectors import make_detector

    cap = cv2.VideoCapture(str(src.path))
    if not cap.isOpened():
        raise DataError(f"camera {camera.id}: cannot open video {src.path}")
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    cap.release()
    detector = make_detector(str(src.detector or "hog"), min_score=src.min_score or 0.0)
    embedder = None
    if src.reid_run is not None:
        from fieldvision.pipelines.flow.appearance import reid_crop_embedder

        embedder = reid_crop_embedder(Path(src.reid_run))  # RunError if not a finished run
    return CameraSource(
        camera.id, float(camera.fps), count, "video", _video=Path(src.path),
        _detector=detector, _embedder=embedder,
    )  # fmt: skip
