"""CLI behaviour of `fieldvision reid`: a tiny end-to-end run and table-driven bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fieldvision.cli.__main__ import main
from fieldvision.data.reid import EmbeddingSet, load_embeddings, save_embeddings

from .conftest import bad_export

TINY = [
    "--set", "data.image_size=[32,32]", "--set", "model.backbone=fv_tiny_cnn",
    "--set", "model.embedding_dim=16", "--set", "train.epochs=2", "--set", "train.p=3",
    "--set", "train.k=2", "--set", "inference.rerank_k1=4", "--set", "inference.rerank_k2=2",
    "--no-progress",
]  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("coats") / "data"
    args = [
        "reid",
        "synth",
        "--out",
        str(out),
        "--identities",
        "5",
        "--per-id",
        "6",
        "--size",
        "32",
    ]
    assert main(args) == 0
    return out


@pytest.fixture(scope="module")
def run(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    assert main(["reid", "train", "--data", str(data), "--out", str(out), *TINY]) == 0
    return out


@pytest.mark.e2e
def test_synth_train_embed_search_pairs_evaluate(data, run, tmp_path, capsys):
    assert {p.name for p in data.iterdir()} >= {
        "train.csv",
        "test.csv",
        "test_truth.csv",
        "train",
        "test",
    }
    for name in ("run.json", "config.yaml", "metrics.json", "train/model.safetensors"):
        assert (run / name).is_file(), name
    g, q = tmp_path / "g.npz", tmp_path / "q.npz"
    assert (
        main(["reid", "embed", "--run", str(run), "--images", str(data / "test"), "--out", str(g)])
        == 0
    )
    assert main(["reid", "embed", "--run", str(run), "--images", str(data / "test_truth.csv"),
                 "--image-root", str(data / "test"), "--out", str(q), "--no-tta"]) == 0  # fmt: skip
    emb = load_embeddings(q)
    assert emb.embeddings.shape[1] == 16 and emb.identities is not None
    ranks = tmp_path / "ranks.csv"
    assert main(["reid", "search", "--query", str(q), "--gallery", str(g), "--out", str(ranks),
                 "--top", "3", "--qe", "2", "--rerank", "--k1", "4", "--k2", "2"]) == 0  # fmt: skip
    table = pd.read_csv(ranks)
    assert list(table.columns) == ["query", "rank", "gallery", "score"]
    assert len(table) == 3 * len(emb)
    sub = tmp_path / "submission.csv"
    assert main(["reid", "pairs", "--run", str(run), "--data", str(data), "--out", str(sub)]) == 0
    written, pairs = pd.read_csv(sub), pd.read_csv(data / "test.csv")
    assert list(written.columns) == ["row_id", "similarity"]
    assert written["row_id"].tolist() == pairs["row_id"].tolist()
    assert written["similarity"].between(0, 1).all()
    capsys.readouterr()
    assert main(["reid", "evaluate", "--run", str(run), "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert "raw:mAP=" in out and "+QE+re-rank:mAP=" in out and "report:" in out
    assert (run / "report.md").is_file()


def _npz(path: Path, dim: int) -> Path:
    save_embeddings(path, EmbeddingSet(np.eye(2, dim, dtype=np.float32), ("a", "b")))
    return path


def _case_missing_data(tmp: Path, data: Path, run: Path) -> tuple[list[str], str]:
    return ["reid", "train", "--data", str(tmp / "nope"), "--out", str(tmp / "r")], "nope"


def _case_bad_set(tmp: Path, data: Path, run: Path) -> tuple[list[str], str]:
    args = [
        "reid",
        "train",
        "--data",
        str(data),
        "--out",
        str(tmp / "r"),
        "--set",
        "train.lr_rate=1",
    ]
    return args, "train.lr_rate"


def _case_missing_image(tmp: Path, data: Path, run: Path) -> tuple[list[str], str]:
    bad = tmp / "bad"
    bad.mkdir()
    frame = pd.read_csv(data / "train.csv")
    frame.loc[3, "filename"] = "missing.png"
    frame.to_csv(bad / "train.csv", index=False)
    (bad / "train").symlink_to(data / "train")
    return ["reid", "train", "--data", str(bad), "--out", str(tmp / "r"), *TINY], "row 4 (line 5)"


def _case_not_a_run(tmp: Path, data: Path, run: Path) -> tuple[list[str], str]:
    args = [
        "reid",
        "embed",
        "--run",
        str(tmp),
        "--images",
        str(data / "test"),
        "--out",
        str(tmp / "e.npz"),
    ]
    return args, "not a run directory"


def _case_dim_mismatch(tmp: Path, data: Path, run: Path) -> tuple[list[str], str]:
    a, b = _npz(tmp / "a.npz", 4), _npz(tmp / "b.npz", 3)
    return [
        "reid",
        "search",
        "--query",
        str(a),
        "--gallery",
        str(b),
        "--out",
        str(tmp / "r.csv"),
    ], "b.npz"


def _case_no_pairs_file(tmp: Path, data: Path, run: Path) -> tuple[list[str], str]:
    copy = tmp / "nopairs"
    copy.mkdir()
    (copy / "train.csv").write_text((data / "train.csv").read_text())
    (copy / "train").symlink_to(data / "train")
    return [
        "reid",
        "pairs",
        "--run",
        str(run),
        "--data",
        str(copy),
        "--out",
        str(tmp / "s.csv"),
    ], "test.csv"


def _case_bad_protocol(tmp: Path, data: Path, run: Path) -> tuple[list[str], str]:
    return [
        "reid",
        "evaluate",
        "--run",
        str(run),
        "--data",
        str(data),
        "--protocol",
        "half",
    ], "half"


def _case_wrong_protocol(tmp: Path, data: Path, run: Path) -> tuple[list[str], str]:
    return [
        "reid",
        "evaluate",
        "--run",
        str(run),
        "--data",
        str(data),
        "--protocol",
        "open",
    ], "no open set"


def _case_synth_one_identity(tmp: Path, data: Path, run: Path) -> tuple[list[str], str]:
    return ["reid", "synth", "--out", str(tmp / "s"), "--identities", "1"], "--identities"


def _case_unknown_pair_image(tmp: Path, data: Path, run: Path) -> tuple[list[str], str]:
    copy = tmp / "ghost"
    copy.mkdir()
    for name in ("train.csv", "test_truth.csv"):
        (copy / name).write_text((data / name).read_text())
    for name in ("train", "test"):
        (copy / name).symlink_to(data / name)
    frame = pd.read_csv(data / "test.csv")
    frame.loc[2, "query_image"] = "ghost.png"
    frame.to_csv(copy / "test.csv", index=False)
    return [
        "reid",
        "pairs",
        "--run",
        str(run),
        "--data",
        str(copy),
        "--out",
        str(tmp / "s.csv"),
    ], "ghost.png"


def _case_p_above_identities(tmp: Path, data: Path, run: Path) -> tuple[list[str], str]:
    args = ["reid", "train", "--data", str(data), "--out", str(tmp / "r"), *TINY]
    return [*args, "--set", "train.p=40"], "train.p=40"


def _case_corrupt_image(tmp: Path, data: Path, run: Path) -> tuple[list[str], str]:
    import shutil

    bad = tmp / "bad"
    shutil.copytree(data, bad)
    sorted((bad / "train").glob("*.png"))[2].write_bytes(b"\x89PNG broken")
    return ["reid", "train", "--data", str(bad), "--out", str(tmp / "r"), *TINY], "row"


def _case_escaping_name(tmp: Path, data: Path, run: Path) -> tuple[list[str], str]:
    bad = tmp / "bad"
    bad.mkdir()
    frame = pd.read_csv(data / "train.csv")
    frame.loc[1, "filename"] = "../../../etc/passwd"
    frame.to_csv(bad / "train.csv", index=False)
    (bad / "train").symlink_to(data / "train")
    return ["reid", "train", "--data", str(bad), "--out", str(tmp / "r"), *TINY], "outside"


def _case_training_override_on_a_finished_run(tmp, data, run):
    args = ["reid", "embed", "--run", str(run), "--images", str(data / "test")]
    return [*args, "--out", str(tmp / "e.npz"), "--set", "model.embedding_dim=8"], "runtime"


CASES = [
    _case_missing_data,
    _case_p_above_identities,
    _case_corrupt_image,
    _case_escaping_name,
    _case_training_override_on_a_finished_run,
    _case_bad_set,
    _case_missing_image,
    _case_not_a_run,
    _case_dim_mismatch,
    _case_no_pairs_file,
    _case_bad_protocol,
    _case_wrong_protocol,
    _case_synth_one_identity,
    _case_unknown_pair_image,
]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__.removeprefix("_case_") for c in CASES])
def test_bad_input_exits_2_with_message(case, data, run, tmp_path, capsys):
    args, fragment = case(tmp_path, data, run)
    before = sorted(p for p in tmp_path.rglob("*"))
    run_files = sorted(p for p in run.rglob("*"))
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and fragment in err, err
    # Nothing was written anywhere: no --out directory, no output file, no temp files.
    assert sorted(p for p in tmp_path.rglob("*")) == before
    assert sorted(p for p in run.rglob("*")) == run_files


# --------------------------------------------------------------------------- --runtime onnx


@pytest.fixture(scope="module")
def exported(run: Path, tmp_path_factory) -> Path:
    """A copy of the run with its FP32 ONNX export where --runtime onnx looks: RUN/export."""
    import shutil

    out = tmp_path_factory.mktemp("exported") / "run"
    shutil.copytree(run, out)
    assert main(["export", "--run", str(out), "--out", str(out / "export")]) == 0
    return out


def test_embed_runtime_onnx_writes_the_torch_embeddings(data, exported, tmp_path, capsys):
    base = ["reid", "embed", "--run", str(exported), "--images", str(data / "train"),
            "--no-progress"]  # fmt: skip
    assert main([*base, "--out", str(tmp_path / "torch.npz")]) == 0
    capsys.readouterr()
    assert main([*base, "--out", str(tmp_path / "onnx.npz"), "--runtime", "onnx"]) == 0
    assert f"(runtime onnx, export {exported / 'export'})" in capsys.readouterr().out
    with np.load(tmp_path / "torch.npz") as t, np.load(tmp_path / "onnx.npz") as o:
        assert sorted(t.files) == sorted(o.files)
        assert list(t["names"]) == list(o["names"])
        np.testing.assert_allclose(o["embeddings"], t["embeddings"], rtol=1e-3, atol=1e-5)
    want, got = load_embeddings(tmp_path / "torch.npz"), load_embeddings(tmp_path / "onnx.npz")
    assert want.meta["runtime"] == "torch" and got.meta["runtime"] == "onnx"
    assert {k: v for k, v in got.meta.items() if k != "runtime"} == {
        k: v for k, v in want.meta.items() if k != "runtime"
    }


@pytest.mark.parametrize("problem", ["missing", "edited", "another_run"])
def test_embed_runtime_onnx_refuses_a_bad_export(problem, data, exported, tmp_path, capsys):
    run, onnx, fragment = bad_export(
        problem, exported, tmp_path, graph="train.onnx", weights="train/model.safetensors"
    )
    out = tmp_path / "out" / "emb.npz"
    capsys.readouterr()
    args = ["reid", "embed", "--run", str(run), "--images", str(data / "train"), "--out", str(out)]
    assert main([*args, "--runtime", "onnx", *onnx]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and fragment in err, err
    assert not (tmp_path / "out").exists()
