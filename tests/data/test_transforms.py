"""Tensor transforms: shapes, determinism from the generator, mask alignment, views."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fieldvision.data.transforms import (
    EvalTransform,
    TrainTransform,
    background_only,
    color_jitter,
    foreground_only,
    hflip,
    mixup,
    random_background,
    random_erasing,
    random_resized_crop,
    resize,
    to_tensor,
)
from fieldvision.seeding import torch_generator


def _rgba(h: int = 40, w: int = 50) -> np.ndarray:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    img[..., 3] = 0
    img[10:30, 15:40, 3] = 255  # the "animal"
    return img


def test_to_tensor_splits_alpha():
    img, mask = to_tensor(_rgba())
    assert img.shape == (3, 40, 50) and mask.shape == (1, 40, 50)
    assert img.dtype == torch.float32 and img.min() >= 0 and img.max() <= 1
    assert mask.sum() == 20 * 25
    rgb, none = to_tensor(_rgba()[..., :3])
    assert none is None and torch.equal(rgb, img)
    with pytest.raises(ValueError):
        to_tensor(np.zeros((4, 4), np.uint8))


def test_crop_and_flip_keep_mask_aligned():
    # The image's first channel *is* the mask, so any misalignment shows up.
    _, mask = to_tensor(_rgba())
    img = mask.repeat(3, 1, 1)
    for seed in range(5):
        g = torch_generator(seed)
        out, m = random_resized_crop(img, mask, (32, 32), g, scale=(0.3, 1.0))
        assert out.shape == (3, 32, 32) and m.shape == (1, 32, 32)
        torch.testing.assert_close(out[0:1], m)
        f_img, f_m = hflip(out, m)
        torch.testing.assert_close(f_img[0:1], f_m)
        torch.testing.assert_close(f_m, m.flip(-1))


def test_same_generator_seed_same_augmentation_and_no_global_rng():
    img, mask = to_tensor(_rgba())
    t = TrainTransform(size=(32, 32), erase_p=1.0, background_p=1.0)
    state = torch.random.get_rng_state()
    a = t(img, mask, torch_generator(3))
    b = t(img, mask, torch_generator(3))
    c = t(img, mask, torch_generator(4))
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    assert a[0].shape == (3, 32, 32)


def test_color_jitter_range_and_identity():
    img, _ = to_tensor(_rgba())
    out = color_jitter(img, torch_generator(0), 0.5, 0.5, 0.5)
    assert out.min() >= 0 and out.max() <= 1 and not torch.equal(out, img)
    torch.testing.assert_close(color_jitter(img, None, 0.0, 0.0, 0.0), img)


def test_random_erasing_probability():
    img = torch.zeros(3, 20, 20)
    assert torch.equal(random_erasing(img, torch_generator(0), p=0.0), img)
    img = torch.linspace(-1, 1, 3 * 400).view(3, 20, 20)
    out = random_erasing(img, torch_generator(0), p=1.0)
    changed = (out != img).any(dim=0)
    assert 0 < changed.float().mean() <= 0.25
    assert out.min() >= -1 and out.max() <= 1


def test_background_ops_respect_mask():
    img, mask = to_tensor(_rgba())
    inside = mask[0] > 0.5
    fg = foreground_only(img, mask)
    bg = background_only(img, mask)
    assert torch.equal(fg[:, inside], img[:, inside])
    assert torch.all(fg[:, ~inside] == 0.5)
    assert torch.equal(bg[:, ~inside], img[:, ~inside])
    assert torch.all(bg[:, inside] == 0.5)
    rb = random_background(img, mask, torch_generator(1))
    assert torch.equal(rb[:, inside], img[:, inside])
    assert not torch.equal(rb[:, ~inside], img[:, ~inside])
    # No mask: nothing to separate, every op is the identity.
    for op in (foreground_only, background_only):
        assert op(img, None) is img
    assert random_background(img, None) is img


def test_eval_transform_views_stay_in_unit_range():
    # Models normalise inside: the transform resizes and nothing else (no mean/std).
    img, mask = to_tensor(_rgba())
    full, m = EvalTransform((24, 24))(img, mask)
    assert full.shape == (3, 24, 24) and m.shape == (1, 24, 24)
    torch.testing.assert_close(full, resize(img, (24, 24)), rtol=0, atol=0)
    fg, _ = EvalTransform((24, 24), view="foreground")(img, mask)
    bg, _ = EvalTransform((24, 24), view="background")(img, mask)
    torch.testing.assert_close(fg, foreground_only(full, m), rtol=0, atol=0)
    torch.testing.assert_close(bg, background_only(full, m), rtol=0, atol=0)
    assert not torch.equal(fg, bg)
    for out in (full, fg, bg):
        assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize(
    ("kw", "error"),
    [({"view": "side"}, ValueError), ({"view": "Full"}, ValueError)],
)
def test_eval_transform_bad_view(kw, error):
    with pytest.raises(error, match="view"):
        EvalTransform(**kw)


@pytest.mark.parametrize("seed", range(4))
def test_train_transform_output_stays_in_unit_range(seed):
    img, mask = to_tensor(_rgba())
    t = TrainTransform(size=(32, 32), erase_p=1.0, background_p=1.0, brightness=0.8)
    out, m = t(img, mask, torch_generator(seed))
    assert out.shape == (3, 32, 32) and m.shape == (1, 32, 32)
    assert out.min() >= 0 and out.max() <= 1
    # Not normalised: an all-white image stays white where nothing random touched it.
    white, _ = TrainTransform(size=(8, 8), flip_p=0, brightness=0, saturation=0, erase_p=0)(
        torch.ones(3, 20, 20), None, torch_generator(seed)
    )
    torch.testing.assert_close(white, torch.ones(3, 8, 8))


def test_mixup():
    x = torch.arange(8, dtype=torch.float32).view(4, 2)
    mixed, perm, lam = mixup(x, 0.4, torch_generator(0))
    assert 0.0 <= lam <= 1.0 and sorted(perm.tolist()) == [0, 1, 2, 3]
    torch.testing.assert_close(mixed, lam * x + (1 - lam) * x[perm])
    same, perm0, lam0 = mixup(x, 0.0)
    assert same is x and lam0 == 1.0 and perm0.tolist() == [0, 1, 2, 3]
    again = mixup(x, 0.4, torch_generator(0))
    assert again[2] == lam and torch.equal(again[1], perm)
