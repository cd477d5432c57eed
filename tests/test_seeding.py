import numpy as np
import torch

from fieldvision.seeding import numpy_rng, seed_everything, torch_generator


def test_seed_everything_makes_torch_and_numpy_repeatable():
    seed_everything(3)
    a = (torch.rand(3), np.random.rand(3))
    seed_everything(3)
    b = (torch.rand(3), np.random.rand(3))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_streams_are_independent_and_repeatable():
    assert numpy_rng(0, 1).random() == numpy_rng(0, 1).random()
    assert numpy_rng(0, 1).random() != numpy_rng(0, 2).random()
    assert torch.equal(
        torch.rand(2, generator=torch_generator(5)), torch.rand(2, generator=torch_generator(5))
    )
