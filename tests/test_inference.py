"""The inference loop: flip views, batching, order, extra batch tensors, input kinds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from fieldvision.inference import IDENTITY, View, flip_views, mean_views, predict_views

H, W = 3, 4


def _images(n: int) -> torch.Tensor:
    """Image i holds distinct values, with pixel (0, 0, 0) = i so the row order shows."""
    base = torch.arange(3 * H * W, dtype=torch.float32).view(3, H, W) / (3 * H * W)
    images = base.expand(n, 3, H, W).clone()
    images[:, 0, 0, 0] = torch.arange(n, dtype=torch.float32)
    return images


# --------------------------------------------------------------------------- views


@pytest.mark.parametrize(
    ("view", "dims"),
    [
        (IDENTITY, []),
        (View("hflip", hflip=True), [-1]),
        (View("vflip", vflip=True), [-2]),
        (View("both", hflip=True, vflip=True), [-1, -2]),
    ],
)
def test_view_flips_the_right_axes(view, dims):
    x = torch.arange(2 * 3 * H * W, dtype=torch.float32).view(2, 3, H, W)
    expected = x.flip(dims) if dims else x
    torch.testing.assert_close(view(x), expected, rtol=0, atol=0)
    assert view(x).shape == x.shape


def test_hflip_mirrors_left_right_and_vflip_top_bottom():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    assert View("h", hflip=True)(x).flatten().tolist() == [2.0, 1.0, 4.0, 3.0]
    assert View("v", vflip=True)(x).flatten().tolist() == [3.0, 4.0, 1.0, 2.0]


@pytest.mark.parametrize(
    ("tta", "vertical", "names"),
    [
        (False, True, ["identity"]),
        (False, False, ["identity"]),
        (True, True, ["identity", "hflip", "vflip"]),
        (True, False, ["identity", "hflip"]),  # re-ID: animals have an up
    ],
)
def test_flip_views(tta, vertical, names):
    views = flip_views(tta, vertical=vertical)
    assert [v.name for v in views] == names
    assert views[0] == IDENTITY


# --------------------------------------------------------------------------- predict_views


class _Probe(nn.Module):
    """Outputs that depend on the flips: the first image row and the first column."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.modes: list[bool] = []

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        self.modes.append(self.training)
        return {"row": self.scale * image[:, 0, 0, :], "col": image[:, 0, :, 0]}


class _Items(Dataset):
    def __init__(self, n: int) -> None:
        self.images = _images(n)
        self.meta = torch.randn(n, 2, generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "meta": self.meta[i], "index": i, "name": f"img{i}"}


def _call(model, batch):
    out = dict(model(batch["image"]))
    out["meta"] = batch["meta"]  # extra tensors travel unchanged by the views
    out["index"] = batch["index"]
    assert batch["name"] == [f"img{int(i)}" for i in batch["index"]]  # non-tensors pass too
    return out


def test_predict_views_matches_manual_flips():
    n = 5
    data = _Items(n)
    model = _Probe().train()
    views = flip_views(True)
    outs = predict_views(model, data, _call, views, device="cpu", batch_size=2)
    assert len(outs) == 3 and model.modes and not any(model.modes)  # eval mode
    x = data.images
    expected = {
        "identity": (x[:, 0, 0, :], x[:, 0, :, 0]),
        "hflip": (x[:, 0, 0, :].flip(-1), x[:, 0, :, -1]),
        "vflip": (x[:, 0, -1, :], x[:, 0, :, 0].flip(-1)),
    }
    for view, out in zip(views, outs, strict=True):
        row, col = expected[view.name]
        assert set(out) == {"row", "col", "meta", "index"}
        np.testing.assert_array_equal(out["row"], row.numpy())
        np.testing.assert_array_equal(out["col"], col.numpy())
        np.testing.assert_array_equal(out["meta"], data.meta.numpy())
        np.testing.assert_array_equal(out["index"], np.arange(n))
        assert all(v.dtype == np.float32 for v in out.values())


@pytest.mark.parametrize("batch_size", [1, 3, 7, 64])
def test_order_is_preserved_whatever_the_batch_size(batch_size):
    data = _Items(7)
    (out,) = predict_views(_Probe(), data, _call, device="cpu", batch_size=batch_size)
    np.testing.assert_array_equal(out["index"], np.arange(7))
    np.testing.assert_array_equal(out["row"][:, 0], np.arange(7))  # pixel (0,0,0) = i


@pytest.mark.parametrize("kind", ["dataset", "loader", "list", "progress"])
def test_input_kinds_give_the_same_outputs(kind):
    data = _Items(5)
    reference = predict_views(_Probe(), data, _call, flip_views(True), "cpu", batch_size=2)
    if kind == "dataset":
        source, extra = data, {}
    elif kind == "loader":
        source, extra = DataLoader(data, batch_size=3), {}
    elif kind == "list":
        source, extra = list(DataLoader(data, batch_size=4)), {}
    else:
        source, extra = data, {"progress": True, "description": "probing"}
    outs = predict_views(_Probe(), source, _call, flip_views(True), "cpu", batch_size=2, **extra)
    for got, want in zip(outs, reference, strict=True):
        assert set(got) == set(want)
        for key in want:
            np.testing.assert_array_equal(got[key], want[key])


def test_empty_dataset_never_calls_the_model():
    calls = []

    def call(model, batch):
        calls.append(batch)
        return model(batch["image"])

    outs = predict_views(_Probe(), _Items(0), call, flip_views(True, vertical=False), "cpu")
    assert outs == [{}, {}] and calls == []


def test_model_is_moved_to_the_device_and_outputs_are_float32():
    model = _Probe().double()

    def call(m, batch):
        assert batch["image"].device.type == "cpu"
        return {"row": m(batch["image"].double())["row"]}

    (out,) = predict_views(model, _Items(3), call, device="cpu")
    assert out["row"].dtype == np.float32 and out["row"].shape == (3, W)


# --------------------------------------------------------------------------- mean_views


def test_mean_views_averages_each_output():
    views = [
        {"a": np.array([[1.0, 2.0]]), "b": np.array([0.0, 4.0])},
        {"a": np.array([[3.0, 6.0]]), "b": np.array([2.0, 0.0])},
        {"a": np.array([[2.0, 1.0]]), "b": np.array([1.0, 2.0])},
    ]
    mean = mean_views(views)
    assert set(mean) == {"a", "b"}
    np.testing.assert_allclose(mean["a"], [[2.0, 3.0]])
    np.testing.assert_allclose(mean["b"], [1.0, 2.0])
    single = mean_views(views[:1])
    np.testing.assert_array_equal(single["a"], views[0]["a"])
    assert mean_views([]) == {}


def test_tta_mean_of_a_flip_invariant_output_equals_identity():
    def call(model, batch):
        return {"mean": batch["image"].mean(dim=(1, 2, 3)), "row": model(batch["image"])["row"]}

    outs = predict_views(_Probe(), _Items(4), call, flip_views(True), "cpu", batch_size=3)
    mean = mean_views(outs)
    np.testing.assert_allclose(mean["mean"], outs[0]["mean"], rtol=1e-6)
    x = _Items(4).images[:, 0].numpy()
    want_row = (x[:, 0, :] + x[:, 0, ::-1] + x[:, -1, :]) / 3
    np.testing.assert_allclose(mean["row"], want_row, rtol=1e-6)
