"""The export manifest's checksum rule, shared by ``fieldvision export`` and the deploy path."""

from __future__ import annotations

import json
import shutil

import pytest

from fieldvision.deploy.manifest import MANIFEST, sha256, verify_export
from fieldvision.errors import RunError


def _export(folder, files: dict[str, bytes], int8: dict[str, bytes] | None = None):
    folder.mkdir()
    models = {}
    for name, data in files.items():
        (folder / f"{name}.onnx").write_bytes(data)
        models[name] = {"file": f"{name}.onnx", "sha256": sha256(folder / f"{name}.onnx")}
        if int8 and name in int8:
            (folder / f"{name}.int8.onnx").write_bytes(int8[name])
            models[name]["int8"] = {"file": f"{name}.int8.onnx",
                                    "sha256": sha256(folder / f"{name}.int8.onnx")}  # fmt: skip
    (folder / MANIFEST).write_text(json.dumps({"models": models}))
    return folder


def test_verify_export_checks_every_file(tmp_path):
    folder = _export(tmp_path / "e", {"a": b"graph-a", "b": b"graph-b"}, {"a": b"int8-a"})
    assert set(verify_export(folder)["models"]) == {"a", "b"}
    (folder / "a.int8.onnx").write_bytes(b"int8-A")
    with pytest.raises(RunError, match=r"a.int8.onnx: checksum differs"):
        verify_export(folder)
    (folder / "a.int8.onnx").unlink()
    with pytest.raises(RunError, match="file a.int8.onnx is missing"):
        verify_export(folder)
    with pytest.raises(RunError, match="no readable manifest.json"):
        verify_export(tmp_path / "nothing")
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / MANIFEST).write_text("[1, 2]")
    with pytest.raises(RunError, match="not an export manifest"):
        verify_export(tmp_path / "odd")


def test_the_exporter_uses_the_same_rule():
    from fieldvision.export import onnx

    assert onnx.verify_export is verify_export and onnx.MANIFEST == MANIFEST


@pytest.mark.parametrize("inputs", ["real", "random"])
def test_the_parity_fields_of_a_default_export_do_not_disturb_the_runtime(
    reid_case, tmp_path, inputs
):
    from fieldvision.deploy.reid import embed as onnx_embed
    from fieldvision.deploy.session import open_deployment
    from fieldvision.export.parity import export_run_with_parity

    run, data = reid_case
    run = shutil.copytree(run, tmp_path / "run", ignore=shutil.ignore_patterns("export"))
    if inputs == "random":  # a run.json from before the data location was recorded
        info = json.loads((run / "run.json").read_text())
        del info["data"]
        (run / "run.json").write_text(json.dumps(info))
    export_run_with_parity(run, run / "export", n=4)
    manifest = verify_export(run / "export")
    assert manifest["models"]["train"]["parity_inputs"] == inputs
    dep = open_deployment(run, "reid", "onnx")
    assert dep.manifest["models"]["train"]["parity_inputs"] == inputs
    got = onnx_embed(run, data / "train", tmp_path / "e.npz", progress=False)
    assert got.embeddings.shape == (13, 8) and got.meta["runtime"] == "onnx"
