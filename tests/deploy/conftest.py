"""Fixtures of the deploy tests: one tiny finished run per pipeline, exported to
``RUN/export`` with FP32 and INT8 models (the default folder ``--runtime onnx`` reads).

Sizes are chosen so every NumPy resize of the deploy path runs: re-ID photos are 40 px for
a 32 px model, MIL photos 80 px resized to 72 px (``data.input_size``) and cut into 18 px
cells resized to 16 px tiles, with a 32 px scouter view; biomass photos are cropped and
resized by the shared cleaning code.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fieldvision.config import load_config

#: Packages the ONNX path must never import.
TORCH_PACKAGES = ("torch", "torchvision", "timm", "lightning", "pytorch_lightning")


def run_without_torch(argv: list[str], cwd: Path) -> tuple[int, list[str]]:
    """Run the CLI in a fresh interpreter; return its exit code and the torch modules it
    had imported when it finished."""
    code = (
        "import json, sys\n"
        "from fieldvision.cli.__main__ import main\n"
        f"rc = main({argv!r})\n"
        f"roots = {TORCH_PACKAGES!r}\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in roots)\n"
        "print('RESULT', rc, json.dumps(loaded))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=cwd
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, f"no result line; stdout={proc.stdout!r} stderr={proc.stderr[-2000:]!r}"
    _, rc, loaded = lines[-1].split(" ", 2)
    return int(rc), json.loads(loaded)


@pytest.fixture(scope="module")
def reid_case(tmp_path_factory) -> tuple[Path, Path]:
    """``(run, data)``: a tiny re-ID run (Kaggle layout) with ``run/export`` (FP32 + INT8)."""
    from fieldvision.data.synthetic.coats import generate_coat_dataset
    from fieldvision.export.quantize import export_run_int8
    from fieldvision.pipelines.reid import ReIDPipelineConfig, fit

    root = tmp_path_factory.mktemp("reid")
    data = root / "data"
    generate_coat_dataset(data, n_identities=4, per_id=4, seed=1, size=(40, 40))
    cfg = load_config(ReIDPipelineConfig, overrides=REID)
    fit(data, root / "run", cfg, progress=False)
    export_run_int8(root / "run", root / "run" / "export", data, n=8)
    return root / "run", data


#: The tiny re-ID recipe (batch 4 < the number of images: several ONNX batches).
REID = [
    "data.image_size=[32,32]",
    "model.backbone=fv_tiny_cnn",
    "model.embedding_dim=8",
    "train.epochs=1",
    "train.p=2",
    "train.k=2",
    "train.progress=false",
    "train.device=cpu",
    "inference.batch_size=4",
]

#: The tiny biomass recipe: 2 folds, FiLM on (Phase 1 feeds Phase 2), 1 epoch each.
BIOMASS = [
    "train.folds=2",
    "phase1.epochs=1",
    "phase2.epochs=1",
    "data.clean.size=[64,128]",
    "phase1.input_size=[32,64]",
    "phase2.global_size=[32,64]",
    "train.progress=false",
    "data.batch_size=2",
    "train.device=cpu",
]


@pytest.fixture(scope="module")
def biomass_case(tmp_path_factory) -> tuple[Path, Path]:
    """``(run, data)``: a tiny biomass run with ``run/export`` (FP32 + INT8)."""
    from fieldvision.data.synthetic.pasture import generate_pasture_dataset
    from fieldvision.export.quantize import export_run_int8
    from fieldvision.pipelines.biomass import BiomassConfig, train

    root = tmp_path_factory.mktemp("biomass")
    data = root / "data"
    generate_pasture_dataset(data, n_train=12, n_test=3, size=(64, 128), seed=2, progress=False)
    cfg = load_config(BiomassConfig, overrides=[*BIOMASS, f"data.cache_dir={root / 'cache'}"])
    train(data, root / "run", cfg)
    export_run_int8(root / "run", root / "run" / "export", data, n=8)
    return root / "run", data


#: The tiny MIL recipe: attention pooling over log-odds against the healthy class.
MIL = [
    "data.grid=[4,4]",
    "data.min_tile_px=8",
    "data.input_size=[72,72]",
    "data.batch_size=8",
    "expert.tile_size=16",
    "expert.epochs=2",
    "expert.sparsity_warmup_epochs=1",
    "expert.pooling=attention",
    "expert.attention_dim=8",
    "scouter.input_size=[32,32]",
    "scouter.epochs=1",
    "train.progress=false",
    "train.device=cpu",
    "data.negative_class=healthy",
]


def write_spots(root: Path, n: int = 12, size: int = 80, seed: int = 0) -> Path:
    """Green-noise leaves, odd ones with a red square; ``root/labels.csv`` and images."""
    from fieldvision.data.images import write_image

    rng = np.random.default_rng(seed)
    rows = ["image,label,group"]
    for i in range(n):
        img = np.zeros((size, size, 3), np.uint8)
        img[..., 1] = rng.integers(90, 160, (size, size))
        img[..., 0] = rng.integers(0, 40, (size, size))
        label = "spot" if i % 2 else "healthy"
        if label == "spot":
            y, x = rng.integers(0, size - 12, 2)
            img[y : y + 11, x : x + 11] = (220, 30, 30)
        write_image(root / "images" / f"{i:03d}.png", img)
        rows.append(f"images/{i:03d}.png,{label},g{i // 3}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def mil_case(tmp_path_factory) -> tuple[Path, Path]:
    """``(run, data)``: a tiny MIL run with ``run/export`` (FP32 + INT8)."""
    from fieldvision.export.quantize import export_run_int8
    from fieldvision.pipelines.mil import MILConfig, train

    root = tmp_path_factory.mktemp("mil")
    data = write_spots(root / "data")
    train(data, root / "run", load_config(MILConfig, overrides=MIL))
    export_run_int8(root / "run", root / "run" / "export", data, n=6)
    return root / "run", data


@pytest.fixture(scope="session")
def cli_without_torch():
    """`cli_without_torch(argv, cwd) -> (exit code, torch modules imported)`, in a fresh
    interpreter (the test process itself has torch loaded)."""
    return run_without_torch
