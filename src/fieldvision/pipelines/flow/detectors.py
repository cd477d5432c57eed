"""People detectors for cameras whose source is a video rather than detection files.

Two kinds, behind one call signature ``detector(frame (H, W, 3) uint8 BGR) -> Detections``:

- ``hog``: OpenCV's built-in HOG + linear-SVM people detector. It works offline with no
  weights file, which is why it is the default; it is slow and weak next to a CNN, so use it
  to try the pipeline, not to count a mall. OpenCV 5 dropped it: with OpenCV 5 installed,
  ``hog`` is refused with that reason and an ONNX detector is needed.
- an ONNX file: any detector exported with this contract (documented because ONNX
  detectors disagree on their outputs): input ``images`` float32 ``(1, 3, H, W)`` RGB in
  [0, 1] at the frame's own size, one output ``(N, 6)`` rows ``x1, y1, x2, y2, score,
  class`` in pixels, before NMS. Raw boxes are then suppressed with soft-NMS (seed 004), so
  two people standing close keep both boxes at a lower score instead of one being erased.

The HOG detector's raw windows overlap heavily too; both go through the same soft-NMS.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from fieldvision.errors import ConfigError
from fieldvision.tracking.detections import Detections

__all__ = ["Detector", "hog_detector", "make_detector", "onnx_detector"]

Detector = Callable[[np.ndarray], Detections]


def _suppress(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray) -> Detections:
    from fieldvision.ops.boxes import soft_nms

    if len(boxes) == 0:
        return Detections.empty()
    keep, decayed = soft_nms(boxes, scores)
    return Detections(xyxy=boxes[keep], confidence=decayed, class_id=classes[keep])


def hog_detector(*, min_score: float = 0.0, scale: float = 1.05) -> Detector:
    """OpenCV's default HOG people detector (scores are SVM margins squashed to (0, 1))."""
    import cv2

    if not hasattr(cv2, "HOGDescriptor"):
        raise ConfigError(
            f"detector hog: OpenCV {cv2.__version__} has no HOG people detector (OpenCV 5 "
            "removed it)",
            hint="install opencv-python-headless<5, or set the camera's detector to an ONNX file",
        )
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def detect(frame: np.ndarray) -> Detections:
        rects, weights = hog.detectMultiScale(frame, winStride=(8, 8), scale=scale)
        if len(rects) == 0:
            return Detections.empty()
        rects = np.asarray(rects, dtype=np.float64).reshape(-1, 4)
        boxes = rects.copy()
        boxes[:, 2:] += rects[:, :2]
        # SVM margins are unbounded; a logistic squashes them to detector-like scores.
        scores = 1.0 / (1.0 + np.exp(-np.asarray(weights, dtype=np.float64).reshape(-1)))
        keep = scores >= min_score
        return _suppress(boxes[keep], scores[keep], np.zeros(int(keep.sum()), np.int64))

    return detect


def onnx_detector(path: Path, *, min_score: float = 0.0) -> Detector:
    """A detector ONNX file with the contract in the module docstring."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"detector {path}: file not found")
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises several unrelated types
        raise ConfigError(f"detector {path}: not a loadable ONNX model ({exc})") from None
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ConfigError(f"detector {path}: expected one input, found {len(inputs)}")
    name = inputs[0].name

    def detect(frame: np.ndarray) -> Detections:
        rgb = frame[:, :, ::-1].astype(np.float32) / 255.0
        out = session.run(None, {name: rgb.transpose(2, 0, 1)[None]})[0]
        out = np.asarray(out, dtype=np.float64).reshape(-1, 6) if np.size(out) else np.zeros((0, 6))
        out = out[out[:, 4] >= min_score]
        return _suppress(out[:, :4], out[:, 4], out[:, 5].astype(np.int64))

    return detect


def make_detector(spec: str, *, min_score: float = 0.0) -> Detector:
    """``"hog"`` or the path of an ONNX detector file."""
    if spec == "hog":
        return hog_detector(min_score=min_score)
    return onnx_detector(Path(spec), min_score=min_score)
