"""Shared builders for the flow pipeline tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper


def constant_detector(path: Path, rows: list[list[float]]) -> Path:
    """An ONNX 'detector' obeying our contract that returns `rows` for any image."""
    value = np.asarray(rows, dtype=np.float32).reshape(-1, 6)
    const = helper.make_tensor("rows", TensorProto.FLOAT, value.shape, value.ravel().tolist())
    # Shape(images) is consumed so the graph really takes the image input.
    nodes = [
        helper.make_node("Shape", ["images"], ["shape"]),
        helper.make_node("Constant", [], ["boxes"], value=const),
    ]
    graph = helper.make_graph(
        nodes,
        "constant_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, None, None])],
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, list(value.shape)),
            helper.make_tensor_value_info("shape", TensorProto.INT64, [4]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, path)
    return path


@pytest.fixture
def detector_file(tmp_path: Path) -> Path:
    # Two heavily overlapping people and one far away with a low score.
    rows = [[10, 10, 50, 110, 0.9, 0], [14, 12, 54, 112, 0.8, 0], [200, 40, 230, 100, 0.2, 0]]
    return constant_detector(tmp_path / "det.onnx", rows)


def write_video(path: Path, frames: int = 5, size: tuple[int, int] = (320, 240)) -> Path:
    """A short MJPG video of a moving grey block."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    for i in range(frames):
        img = np.full((size[1], size[0], 3), 40, np.uint8)
        img[60:180, 20 + 10 * i : 60 + 10 * i] = 200
        writer.write(img)
    writer.release()
    return path
