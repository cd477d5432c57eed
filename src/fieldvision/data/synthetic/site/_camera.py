"""Pinhole cameras over the floor plane: ground metres → image pixels, and person boxes.

A camera is mounted south of the corridor (a few metres back, about 3.5 m up, as on a
balcony or the far side of an atrium) and tilted down across it. The floor
(``z = 0``) maps to the image by the planar homography ``H = K [r1 r2 t]``; a person's box
runs from the projection of the feet up to the projection of the head, so boxes are larger
near the camera and their height follows the person's height and distance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Smallest box (pixels of height) a camera "sees" at all: farther people are not in view.
MIN_BOX_PX = 8.0


@dataclass(frozen=True, eq=False)
class Camera:
    """A calibrated camera.

    Attributes:
        id: Camera id (``cam0``).
        position: ``(3,)`` centre in metres (``z`` up).
        rotation: ``(3, 3)`` world → camera rotation; rows are the camera's right, down and
            forward axes in world coordinates.
        focal: Focal length in pixels (square pixels, principal point at the centre).
        size: ``(width, height)`` in pixels.
    """

    id: str
    position: np.ndarray
    rotation: np.ndarray
    focal: float
    size: tuple[int, int]

    @property
    def intrinsics(self) -> np.ndarray:
        """``(3, 3)`` K."""
        w, h = self.size
        return np.array([[self.focal, 0, w / 2], [0, self.focal, h / 2], [0, 0, 1]], float)

    @property
    def homography(self) -> np.ndarray:
        """``(3, 3)`` ground ``(x, y, 1)`` → homogeneous image point."""
        t = -self.rotation @ self.position
        return self.intrinsics @ np.column_stack([self.rotation[:, 0], self.rotation[:, 1], t])

    def project(self, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points → ``((N, 2) pixels, (N,) depth along the optical axis)``."""
        cam = (np.asarray(xyz, float).reshape(-1, 3) - self.position) @ self.rotation.T
        depth = cam[:, 2]
        safe = np.where(depth > 1e-6, depth, 1e-6)  # behind the camera: never in view
        uv = self.focal * cam[:, :2] / safe[:, None] + np.asarray(self.size, float) / 2
        return uv, depth

    def ground_to_image(self, xy: np.ndarray) -> np.ndarray:
        """``(N, 2)`` floor points → ``(N, 2)`` pixels."""
        xy = np.asarray(xy, float).reshape(-1, 2)
        return self.project(np.column_stack([xy, np.zeros(len(xy))]))[0]

    def image_to_ground(self, uv: np.ndarray) -> np.ndarray:
        """``(N, 2)`` pixels → ``(N, 2)`` floor points (inverse homography)."""
        uv = np.asarray(uv, float).reshape(-1, 2)
        g = np.column_stack([uv, np.ones(len(uv))]) @ np.linalg.inv(self.homography).T
        return g[:, :2] / g[:, 2:]

    def boxes(
        self, xy: np.ndarray, height: np.ndarray, width_ratio: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Boxes of people standing at `xy`.

        Args:
            xy: ``(N, 2)`` foot points on the floor, metres.
            height: ``(N,)`` body heights, metres.
            width_ratio: ``(N,)`` box width / box height.

        Returns:
            ``((N, 4) xyxy pixels, (N,) depth)``; the bottom centre is exactly the
            projection of the feet.
        """
        xy = np.asarray(xy, float).reshape(-1, 2)
        n = len(xy)
        feet, depth = self.project(np.column_stack([xy, np.zeros(n)]))
        head, _ = self.project(np.column_stack([xy, np.asarray(height, float)]))
        h = np.maximum(feet[:, 1] - head[:, 1], 0.0)
        half_w = 0.5 * h * np.asarray(width_ratio, float)
        xyxy = np.column_stack(
            [feet[:, 0] - half_w, feet[:, 1] - h, feet[:, 0] + half_w, feet[:, 1]]
        )
        return xyxy, depth

    def in_view(self, xyxy: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """``(N,)`` whether the feet are in the image and the box is big enough to see."""
        w, h = self.size
        fx, fy = (xyxy[:, 0] + xyxy[:, 2]) / 2, xyxy[:, 3]
        return (
            (depth > 0.5)
            & (fx >= 0)
            & (fx < w)
            & (fy >= 0)
            & (fy < h)
            & (xyxy[:, 3] - xyxy[:, 1] >= MIN_BOX_PX)
        )

    def sees(self, xy: np.ndarray, height: float = 1.7) -> np.ndarray:
        """``(N,)`` whether a person of `height` standing at each floor point is in view."""
        xy = np.asarray(xy, float).reshape(-1, 2)
        n = len(xy)
        xyxy, depth = self.boxes(xy, np.full(n, height), np.full(n, 0.4))
        return self.in_view(xyxy, depth)


def look_at(
    camera_id: str,
    position: tuple[float, float, float],
    target: tuple[float, float, float],
    focal: float,
    size: tuple[int, int],
) -> Camera:
    """A level camera (no roll) at `position` whose optical axis passes through `target`."""
    pos = np.asarray(position, float)
    forward = np.asarray(target, float) - pos
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return Camera(camera_id, pos, np.stack([right, down, forward]), float(focal), size)


def across_corridor(
    camera_id: str,
    x: float,
    *,
    back: float,
    mount: float,
    near_y: float,
    far_y: float,
    tall: float,
    size: tuple[int, int],
) -> Camera:
    """A camera at ``(x, -back, mount)`` looking north, framing the floor from `near_y` to
    the head of a `tall` person at `far_y` (the vertical field of view fits that range).
    """
    near = math.atan2(mount, near_y + back)  # depression of the nearest foot
    far = math.atan2(mount - tall, far_y + back)  # depression of the farthest head
    axis = (near + far) / 2
    half = (near - far) / 2 + math.radians(1.5)  # a little margin top and bottom
    focal = (size[1] / 2) / math.tan(half)
    target_y = -back + mount / math.tan(axis)
    return look_at(camera_id, (x, -back, mount), (x, target_y, 0.0), focal, size)
