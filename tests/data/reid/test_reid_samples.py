"""`ReIDSamples` (labels, cameras, subset, concat) and the small re-ID containers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fieldvision.data.reid import EmbeddingSet, ReIDSamples, SingletonReport
from fieldvision.errors import DataError


def _samples(
    names: tuple[str, ...],
    identities: tuple[str, ...] | None = None,
    cameras: tuple[str, ...] | None = None,
) -> ReIDSamples:
    return ReIDSamples(
        tuple(Path(n) for n in names), names, identities, names, "src", cameras=cameras
    )


def test_cameras_default_to_none_for_positional_construction():
    s = ReIDSamples((Path("a.png"),), ("a.png",), ("x",), ("row 1",), "t.csv")
    assert s.cameras is None and not s.has_cameras and s.labelled
    assert _samples(("a",), cameras=("c1",)).has_cameras


def test_subset_keeps_identities_and_cameras_in_order():
    s = _samples(("a", "b", "c"), ("x", "y", "x"), ("c1", "c2", "c3"))
    sub = s.subset(np.array([2, 0]))
    assert sub.names == ("c", "a") and sub.identities == ("x", "x")
    assert sub.cameras == ("c3", "c1") and sub.origins == ("c", "a") and sub.source == "src"
    bare = _samples(("a", "b")).subset([1])
    assert bare.identities is None and bare.cameras is None


CONCAT = [
    # (part 1 identities, cameras; part 2 identities, cameras; expected identities, cameras)
    (("x",), ("c1",), ("y",), ("c2",), ("x", "y"), ("c1", "c2")),
    (("x",), ("c1",), ("y",), None, ("x", "y"), None),
    (("x",), None, ("y",), ("c2",), ("x", "y"), None),
    (None, ("c1",), ("y",), ("c2",), None, ("c1", "c2")),
    (None, None, None, None, None, None),
]


@pytest.mark.parametrize(("ids1", "cams1", "ids2", "cams2", "ids", "cams"), CONCAT)
def test_concat_keeps_columns_every_part_has(ids1, cams1, ids2, cams2, ids, cams):
    out = ReIDSamples.concat([_samples(("a",), ids1, cams1), _samples(("b",), ids2, cams2)], "all")
    assert out.names == ("a", "b") and out.source == "all"
    assert out.identities == ids and out.cameras == cams


def test_concat_refuses_duplicate_names():
    with pytest.raises(DataError, match="duplicate image name"):
        ReIDSamples.concat([_samples(("a",)), _samples(("a",))], "all")


def test_label_ids_need_identities():
    labels, classes = _samples(("a", "b", "c"), ("y", "x", "y")).label_ids()
    assert classes == ["x", "y"] and labels.tolist() == [1, 0, 1] and labels.dtype == np.int64
    with pytest.raises(DataError, match="src: images have no identities"):
        _samples(("a",)).label_ids()


@pytest.mark.parametrize(
    ("identities", "fragments"),
    [
        ((), [""]),
        (("d",), ["1 identity has a single image (d)"]),
        (tuple("abcdefg"), ["7 identities have", "(a, b, c, d, e and 2 more)"]),
    ],
)
def test_singleton_report_message(identities, fragments):
    message = SingletonReport(identities, 3, len(identities)).message
    assert (message == "") is (not identities)
    for fragment in fragments:
        assert fragment in message


def test_embedding_set_accessors():
    emb = EmbeddingSet(np.zeros((2, 5), np.float32), ("p", "q"))
    assert len(emb) == 2 and emb.dim == 5 and emb.index_of() == {"p": 0, "q": 1}
    assert emb.identities is None and emb.meta == {}
