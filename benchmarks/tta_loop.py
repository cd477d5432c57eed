"""Flip TTA in the shared inference loop: views inside each batch vs one data pass per view.

`fieldvision.inference.predict_views` decodes each image once and runs every view on the
batch already in memory; the peer is the straightforward loop that iterates the dataset
once per view (what the biomass pipeline did before the skeleton). Both use the same model,
dataset and batch size; outputs are checked equal. Prints a Markdown table::

    .venv/bin/python benchmarks/tta_loop.py [--images 96] [--size 256] [--views 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from fieldvision.data.images import write_image
from fieldvision.data.reid import ReIDDataset
from fieldvision.data.transforms import EvalTransform
from fieldvision.inference import flip_views, mean_views, predict_views
from fieldvision.models.reid import ReIDModel, ReIDModelConfig


def _call(model, batch):
    return {"embedding": model(batch["image"])["embedding"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--size", type=int, default=256, help="side of the stored PNGs")
    parser.add_argument("--input", type=int, default=96, help="model input side")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    model = ReIDModel(ReIDModelConfig(backbone="fv_tiny_cnn", embedding_dim=64)).eval()
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(args.images):
            img = rng.integers(0, 255, (args.size, args.size, 3), dtype=np.uint8)
            paths.append(write_image(Path(tmp) / f"{i}.png", img))
        dataset = ReIDDataset(paths, None, EvalTransform((args.input, args.input)))
        print(f"images={args.images} stored={args.size}px input={args.input}px "
              f"batch={args.batch} threads={torch.get_num_threads()}")  # fmt: skip
        print()
        print("| views | peer | seconds | ratio |")
        print("|---|---|---|---|")
        for tta, vertical in ((True, False), (True, True)):
            views = flip_views(tta, vertical)
            best = {"one pass per view": float("inf"), "views in batch (ours)": float("inf")}
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                per_view = [
                    predict_views(model, dataset, _call, (v,), "cpu", args.batch)[0] for v in views
                ]
                best["one pass per view"] = min(best["one pass per view"], time.perf_counter() - t0)
                t0 = time.perf_counter()
                ours = predict_views(model, dataset, _call, views, "cpu", args.batch)
                spent = time.perf_counter() - t0
                best["views in batch (ours)"] = min(best["views in batch (ours)"], spent)
            ref = mean_views(per_view)["embedding"]
            np.testing.assert_allclose(mean_views(ours)["embedding"], ref, rtol=1e-5, atol=1e-6)
            peer = best["one pass per view"]
            for name, secs in best.items():
                print(f"| {len(views)} | {name} | {secs:.2f} | {peer / secs:.2f}x |")


if __name__ == "__main__":
    main()
