"""Evaluation protocols: which images query, which gallery items count."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fieldvision.data.reid import ReIDSamples
from fieldvision.errors import DataError
from fieldvision.pipelines.reid.protocols import evaluation_set


def _samples(ids, cams=None):
    names = tuple(f"img{i}.png" for i in range(len(ids)))
    return ReIDSamples(
        tuple(Path(n) for n in names), names, tuple(ids), names, "t.csv",
        None if cams is None else tuple(cams),
    )  # fmt: skip


IDS = ["a", "a", "a", "b", "b", "c", "d", "d"]
TRAINED_NAMES = ["img0.png", "img1.png", "img3.png"]
TRAINED_IDS = ["a", "b"]


@pytest.mark.parametrize(
    ("protocol", "items", "queries", "error"),
    [
        # closed: unseen images of trained identities query every image.
        ("closed", 8, ["img2.png", "img4.png"], None),
        # open: identities never trained on (c, d); c has a single image: not a query.
        ("open", 3, ["img6.png", "img7.png"], None),
        # all: leave-one-out over every image with another image of its identity.
        (
            "all",
            8,
            ["img0.png", "img1.png", "img2.png", "img3.png", "img4.png", "img6.png", "img7.png"],
            None,
        ),
        ("half", 0, [], "unknown protocol"),
    ],
)
def test_protocol_table(protocol, items, queries, error):
    if error:
        with pytest.raises(DataError, match=error):
            evaluation_set(_samples(IDS), protocol, TRAINED_NAMES, TRAINED_IDS)
        return
    chosen = evaluation_set(_samples(IDS), protocol, TRAINED_NAMES, TRAINED_IDS)
    assert len(chosen.samples) == items
    got = [n for n, q in zip(chosen.samples.names, chosen.query_mask, strict=True) if q]
    assert got == queries


def test_open_without_new_identities_and_unlabelled_data_are_refused():
    with pytest.raises(DataError, match="no open set"):
        evaluation_set(_samples(["a", "a"]), "open", [], ["a"])
    unlabelled = ReIDSamples((Path("x"),), ("x",), None, ("x",), "u.csv")
    with pytest.raises(DataError, match="needs identities"):
        evaluation_set(unlabelled, "all")


def test_cameras_remove_same_camera_matches_from_the_query_set():
    # a: both images by camera 1 -> neither can find the other; b: two cameras -> fine.
    chosen = evaluation_set(_samples(["a", "a", "b", "b"], ["1", "1", "1", "2"]), "all")
    assert chosen.query_mask.tolist() == [False, False, True, True]
    assert "another camera" in chosen.warning
    np.testing.assert_array_equal(chosen.cams, ["1", "1", "1", "2"])
    without = evaluation_set(_samples(["a", "a", "b", "b"]), "all")
    assert without.query_mask.all() and without.warning == ""
    with pytest.raises(DataError, match="from another camera"):
        evaluation_set(_samples(["a", "a"], ["1", "1"]), "all")
