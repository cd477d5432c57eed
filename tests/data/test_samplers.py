"""P×K identity sampler: batch composition, determinism, epochs."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from fieldvision.data.samplers import PKSampler
from fieldvision.errors import ConfigError

# A long tail: identity 0 has 20 images, identity 5 has one.
LABELS = np.repeat(np.arange(6), [20, 9, 6, 4, 2, 1])


def test_batches_hold_p_identities_with_k_images_each():
    sampler = PKSampler(LABELS, p=4, k=3, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) > 0
    for batch in batches:
        assert len(batch) == 12
        per_id = Counter(LABELS[batch].tolist())
        assert len(per_id) == 4
        assert set(per_id.values()) == {3}


def test_small_identities_are_sampled_with_replacement():
    sampler = PKSampler(LABELS, p=6, k=4, seed=1)
    single = np.flatnonzero(LABELS == 5)[0]
    batches = list(sampler)
    for batch in batches:
        if 5 in set(LABELS[batch]):
            assert batch.count(int(single)) == 4  # the only image of identity 5, four times


def test_epoch_covers_the_data_roughly_once():
    labels = np.repeat(np.arange(8), 6)  # balanced: 8 identities x 6 images
    sampler = PKSampler(labels, p=4, k=2, seed=0)
    assert len(sampler) == 8 * 3 // 4
    for epoch in range(3):
        sampler.set_epoch(epoch)
        seen = Counter(i for b in sampler for i in b)
        assert len(seen) >= 0.75 * len(labels)  # nearly every image once per epoch
        assert max(seen.values()) <= 3


def test_long_tail_epoch_length():
    sampler = PKSampler(LABELS, p=3, k=2, seed=0)
    assert len(sampler) == sum(int(np.ceil(c / 2)) for c in [20, 9, 6, 4, 2, 1]) // 3
    per_id = Counter(LABELS[[i for b in sampler for i in b]].tolist())
    assert per_id[0] > per_id[5]  # big identities are drawn more often


def test_deterministic_and_set_epoch_changes_order():
    a, b = PKSampler(LABELS, 3, 2, seed=7), PKSampler(LABELS, 3, 2, seed=7)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    second = list(a)
    assert second != first
    b.set_epoch(1)
    assert list(b) == second
    a.set_epoch(0)
    assert list(a) == first
    assert list(PKSampler(LABELS, 3, 2, seed=8)) != first


def test_string_labels():
    labels = ["a", "b", "a", "c", "b", "c"]
    batches = list(PKSampler(labels, p=3, k=2))
    assert all(len(b) == 6 for b in batches)


@pytest.mark.parametrize(
    ("p", "k", "match"),
    [(7, 2, "only 6"), (0, 2, "p >= 1"), (2, 0, "k >= 1")],
)
def test_bad_parameters(p, k, match):
    with pytest.raises(ConfigError, match=match):
        PKSampler(LABELS, p, k)
