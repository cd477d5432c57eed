"""Closed-set queries and closed-set / open-set splits of re-ID identities."""

from __future__ import annotations

import numpy as np
import pytest

from fieldvision.data.reid import closed_set_queries, closed_set_split, open_set_split
from fieldvision.errors import DataError

IDS = ["a"] * 6 + ["b"] * 3 + ["c"] * 2 + ["d"]  # 'd' has a single image


def test_closed_set_queries_report_singletons():
    mask, report = closed_set_queries(IDS)
    assert mask.tolist() == [True] * 11 + [False]
    assert report.identities == ("d",) and report.n_excluded == 1
    assert (
        "single image" in report.message and "'d'" not in report.message and "d" in report.message
    )
    assert closed_set_queries(["a", "a"])[1].message == ""


def test_closed_set_split_is_stratified():
    split = closed_set_split(IDS, 0.3, seed=0)
    ids = np.array(IDS)
    assert split.protocol == "closed"
    assert sorted(np.concatenate([split.train, split.heldout]).tolist()) == list(range(12))
    for ident in "abc":
        assert (ids[split.train] == ident).sum() >= 1  # a training image for every identity
        assert (ids[split.heldout] == ident).sum() >= 1  # and at least one query
    assert "d" not in set(ids[split.heldout])  # singletons stay in training
    np.testing.assert_array_equal(closed_set_split(IDS, 0.3, 0).heldout, split.heldout)
    with pytest.raises(DataError, match="no identity has two"):
        closed_set_split(["a", "b"], 0.3)
    with pytest.raises(DataError, match="fraction"):
        closed_set_split(IDS, 1.5)


def test_open_set_split_holds_out_identities():
    split = open_set_split(IDS, 0.5, seed=1)
    ids = np.array(IDS)
    held, train = set(ids[split.heldout]), set(ids[split.train])
    assert held and not held & train and len(train) >= 2
    assert "d" not in held  # held-out identities need two images to be queries
    with pytest.raises(DataError, match="at least 3 identities"):
        open_set_split(["a", "a", "b"], 0.5)
