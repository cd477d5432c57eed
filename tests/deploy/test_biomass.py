"""`biomass predict --runtime onnx|onnx-int8`: the torch runtime's submission, without torch."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fieldvision.deploy.biomass import film_meta
from fieldvision.deploy.biomass import predict as onnx_predict
from fieldvision.pipelines.biomass import predict as torch_predict


def test_film_meta_is_the_pipelines(tmp_path):
    from fieldvision.pipelines.biomass.meta import film_meta as torch_film_meta

    rng = np.random.default_rng(0)
    outs = {"month": rng.normal(size=(5, 2)), "ndvi": rng.normal(size=5),
            "height": rng.normal(size=5), "species": rng.normal(size=(5, 3))}  # fmt: skip
    np.testing.assert_array_equal(film_meta(outs), torch_film_meta(outs))


def test_onnx_submission_equals_torch_with_and_without_tta(biomass_case, tmp_path):
    run, data = biomass_case
    for tta in (None, False):
        torch_predict(run, data, tmp_path / "torch.csv", tta=tta)
        onnx_predict(run, data, tmp_path / "onnx.csv", tta=tta)
        want = pd.read_csv(tmp_path / "torch.csv")
        got = pd.read_csv(tmp_path / "onnx.csv")
        assert list(got.columns) == list(want.columns) == ["sample_id", "target"]
        assert got["sample_id"].tolist() == want["sample_id"].tolist() and len(got) == 15
        # Grams after the fold and view means and the clip at 0: FP32 rtol, 1e-4 g atol.
        np.testing.assert_allclose(got["target"], want["target"], rtol=1e-3, atol=1e-4)


def test_onnx_int8_submission_is_close(biomass_case, tmp_path):
    run, data = biomass_case
    want = torch_predict(run, data, tmp_path / "torch.csv")
    got = onnx_predict(run, data, tmp_path / "int8.csv", runtime="onnx-int8")
    assert got["sample_id"].tolist() == want["sample_id"].tolist()
    scale = float(want["target"].abs().max())
    assert np.abs(got["target"] - want["target"]).max() <= 0.05 * scale
    assert (got["target"] >= 0).all()


def test_the_onnx_cli_never_imports_torch(biomass_case, tmp_path, cli_without_torch):
    run, data = biomass_case
    out = tmp_path / "sub.csv"
    argv = ["biomass", "predict", "--run", str(run), "--data", str(data), "--out", str(out),
            "--runtime", "onnx", "--no-progress"]  # fmt: skip
    rc, torch_modules = cli_without_torch(argv, tmp_path)
    assert rc == 0 and len(pd.read_csv(out)) == 15
    assert torch_modules == []
