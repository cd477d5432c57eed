"""Synthetic rosette-coat identities: determinism and distinct coats."""

from __future__ import annotations

import numpy as np

from fieldvision.data.synthetic.coats import make_identity


def test_identity_is_deterministic_and_distinct():
    a, b = make_identity(3, seed=1), make_identity(3, seed=1)
    assert a.name == "coat_003"
    np.testing.assert_array_equal(a.coat, b.coat)
    other = make_identity(4, seed=1)
    assert np.abs(a.coat.astype(int) - other.coat.astype(int)).mean() > 10
    assert a.coat.dtype == np.uint8 and a.coat.shape == (160, 160, 3)
