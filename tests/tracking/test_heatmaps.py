"""Heatmaps: unique people per cell, seconds per cell, and their rendering."""

from __future__ import annotations

import numpy as np
import pytest

from fieldvision.tracking.detections import Tracks
from fieldvision.tracking.heatmaps import (
    cell_index,
    dwell_heatmap,
    grid_shape,
    presence_heatmap,
    render_heatmap,
)

SIZE = (64, 48)  # width, height -> a 3 x 4 grid of 16 px cells


def _tracks(feet: list[tuple[int, float, float]], start: int = 1) -> Tracks:
    """Rows ``(track_id, x, y)`` of foot points, each track's rows on consecutive frames."""
    arr = np.array(feet, float)
    frame = np.zeros(len(arr), np.int64)
    for tid in np.unique(arr[:, 0]):
        rows = np.flatnonzero(arr[:, 0] == tid)
        frame[rows] = np.arange(start, start + rows.size)
    boxes = np.c_[arr[:, 1] - 2, arr[:, 2] - 10, arr[:, 1] + 2, arr[:, 2]]
    return Tracks(frame=frame, track_id=arr[:, 0], xyxy=boxes)


def test_grid_shape_rounds_partial_cells_up():
    assert grid_shape(SIZE, 16) == (3, 4)
    assert grid_shape((65, 48), 16) == (3, 5)
    with pytest.raises(ValueError, match="image_size"):
        grid_shape((0, 10), 16)
    with pytest.raises(ValueError, match="cell"):
        grid_shape(SIZE, 0)


@pytest.mark.parametrize(
    ("point", "cell"),
    [
        ((0, 0), 0),
        ((15.9, 0), 0),
        ((16, 0), 1),
        ((64, 48), 11),  # the bottom-right corner: a box touching the image edge
        ((63.9, 17), 7),
        ((64.1, 10), -1),
        ((-0.1, 10), -1),
        ((10, 48.5), -1),
        ((np.nan, 10), -1),
    ],
)
def test_cell_index(point, cell):
    assert cell_index(np.array([point], float), SIZE, 16).tolist() == [cell]


def test_presence_counts_each_track_once_per_cell():
    still = [(1, 8, 8)] * 1000  # standing in one cell for 1000 frames
    walker = [(2, x, 40) for x in range(0, 64, 2)]  # crosses the bottom row
    other = [(3, 9, 9)] * 5
    grid = presence_heatmap(_tracks(still + walker + other), SIZE, 16)
    assert grid.dtype == np.int64 and grid.shape == (3, 4)
    assert grid[0, 0] == 2  # two people, not 1005 frames
    assert grid[2].tolist() == [1, 1, 1, 1]
    assert grid.sum() == 6


def test_dwell_sums_frames_over_fps():
    tracks = _tracks([(1, 8, 8)] * 30 + [(2, 8, 8)] * 10 + [(3, 40, 40)] * 5)
    grid = dwell_heatmap(tracks, SIZE, fps=10, cell=16)
    assert grid[0, 0] == pytest.approx(4.0) and grid[2, 2] == pytest.approx(0.5)
    assert grid.sum() == pytest.approx(len(tracks) / 10)
    with pytest.raises(ValueError, match="fps"):
        dwell_heatmap(tracks, SIZE, fps=0)


def test_plain_points_give_the_same_maps_as_tracks():
    rng = np.random.default_rng(0)
    feet = [(int(rng.integers(0, 5)), *rng.uniform(-5, 70, 2)) for _ in range(500)]
    tracks = _tracks(feet)
    points, ids = tracks.bottom_center, tracks.track_id
    assert (presence_heatmap(points, SIZE, 8, ids=ids) == presence_heatmap(tracks, SIZE, 8)).all()
    assert np.allclose(dwell_heatmap(points, SIZE, 2.0, 8), dwell_heatmap(tracks, SIZE, 2.0, 8))
    with pytest.raises(ValueError, match="ids"):
        presence_heatmap(points, SIZE, 8)
    with pytest.raises(ValueError, match="ids"):
        presence_heatmap(tracks, SIZE, 8, ids=ids)
    with pytest.raises(ValueError, match="frames"):
        dwell_heatmap(points, SIZE, 2.0, frames=(1, 2))


def test_frame_range_filter_is_inclusive():
    tracks = _tracks([(1, 8, 8)] * 10 + [(2, 40, 40)] * 3, start=1)  # both start at frame 1
    grid = dwell_heatmap(tracks, SIZE, fps=1, cell=16, frames=(3, 5))
    assert grid[0, 0] == 3 and grid[2, 2] == 1
    assert presence_heatmap(tracks, SIZE, 16, frames=(4, 10)).sum() == 1


def test_empty_input_gives_zero_grids():
    assert presence_heatmap(Tracks.empty(), SIZE).tolist() == np.zeros((3, 4)).tolist()
    assert dwell_heatmap(np.zeros((0, 2)), SIZE, fps=5).sum() == 0


def test_render_heatmap():
    grid = np.zeros((3, 4))
    grid[0, 0], grid[2, 3] = 1.0, 4.0
    img = render_heatmap(grid, SIZE, cell=16)
    assert img.shape == (48, 64, 3) and img.dtype == np.uint8
    assert (img[16:32] == 0).all()  # empty cells are black
    assert (img[:16, :16] == img[0, 0]).all() and img[0, 0].any()
    assert (img[32:, 48:] == img[47, 63]).all() and img[47, 63].sum() > img[0, 0].sum()
    assert (render_heatmap(grid, SIZE) == img).all()  # 48 x 64 is a multiple of 16

    background = np.full((48, 64, 3), 200, np.uint8)
    over = render_heatmap(grid, SIZE, background=background, cell=16)
    assert (over[16:32] == 200).all()  # the frame shows through where nobody went
    assert not (over[:16, :16] == 200).all()

    partial = render_heatmap(np.ones((3, 5)), (65, 48), cell=16)
    assert partial.shape == (48, 65, 3) and (partial == partial[0, 0]).all()
    assert (render_heatmap(np.zeros((3, 4)), SIZE) == 0).all()
    with pytest.raises(ValueError, match="does not match"):
        render_heatmap(grid, SIZE, cell=8)
    with pytest.raises(ValueError, match="background"):
        render_heatmap(grid, SIZE, background=np.zeros((10, 10, 3), np.uint8))
