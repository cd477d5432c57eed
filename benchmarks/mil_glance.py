"""Glance and focus vs full tiling on the same images: tiles, wall time, macro-F1, AUC.

Runs a trained MIL run's expert(s) and scouter(s) on a labelled dataset in full mode and in
glance mode at budgets 10/20/30/50 % (entropy rule on, as configured), measuring real wall
time per image for each (decoded pixels to probabilities; the decode itself, equal for
both, is excluded), and times one heatmap of a 1024² image. Prints a Markdown table with
ratios against full tiling::

    .venv/bin/python benchmarks/mil_glance.py --run RUN --data DIR [--budgets 0.1,0.2,0.3,0.5]

With no ``--run``, trains the demo recipe on a small synthetic set first (a few minutes);
``--set`` overrides that recipe, e.g. a heavier tile expert, the setting glance is for (the
expert's cost dominates the scouter's; with the demo's 0.1 M-parameter expert the scouter
costs about as much as scoring every tile)::

    .venv/bin/python benchmarks/mil_glance.py --set expert.backbone=fv_small_resnet
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from fieldvision.data.mil import BagStore
from fieldvision.metrics.classification import classification_metrics
from fieldvision.pipelines.mil import load_run
from fieldvision.pipelines.mil.engine import Predictor
from fieldvision.pipelines.mil.inputs import bag_spec, read_samples


def _demo_run(tmp: Path, overrides: list[str]) -> tuple[Path, Path]:
    from fieldvision.config import load_config
    from fieldvision.data.synthetic.leaves import generate_leaf_dataset
    from fieldvision.pipelines.mil import MILConfig, train

    if not (tmp / "train" / "labels.csv").is_file():
        generate_leaf_dataset(tmp / "train", n=240, size=512, classes=3, seed=0, progress=False)
        generate_leaf_dataset(tmp / "test", n=120, size=512, classes=3, seed=1, progress=False)
    cfg = load_config(MILConfig, "mil_demo", ["train.progress=false", *overrides])
    train(tmp / "train", tmp / "run", cfg)  # a finished run in `tmp` is re-opened, not retrained
    return tmp / "run", tmp / "test"


def _scouter_ms(store: BagStore, predictor: Predictor) -> float:
    """Mean ms per image of the scouter's part of glance: whole-image view + network."""
    total = 0.0
    for i in range(len(store)):
        image = store.load_image(i)  # decoding is not timed, as in `Predictor.run`
        start = time.perf_counter()
        predictor.scout(store.scout_view(image))
        total += time.perf_counter() - start
    return total / len(store) * 1000.0


def _heatmap_ms(store: BagStore, predictor: Predictor) -> float:
    """ms for one 1024² heatmap: scouter map + render (glance mode, as `--heatmaps`)."""
    from fieldvision.ops.glance import tile_boxes
    from fieldvision.report.mil import HeatmapExample, render_heatmap

    image = torch.rand(3, 1024, 1024)
    rows, cols = store.spec.grid
    boxes = tile_boxes(1024, 1024, rows, cols)
    start = time.perf_counter()
    scores = predictor.scout(store.scout_view(image)).numpy()
    rgb = (image.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    render_heatmap(HeatmapExample(rgb, boxes, scores, scores >= np.quantile(scores, 0.7)))
    return (time.perf_counter() - start) * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--budgets", default="0.1,0.2,0.3,0.5")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved timing rounds")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        dest="overrides",
        help="override of the demo recipe (without --run), repeatable",
    )
    parser.add_argument("--work", type=Path, help="keep the demo data and run here (re-used)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        run, data = (args.run, args.data) if args.run else _demo_run(work, args.overrides)
        loaded = load_run(run)
        samples = read_samples(data, loaded.cfg)
        store = BagStore(samples, bag_spec(loaded.cfg), max_pixels=loaded.cfg.data.max_image_pixels)
        labels = samples.label_ids(loaded.classes)
        predictor = Predictor(loaded.experts, loaded.scouters, loaded.negative, "cpu")
        predictor.run(store.__class__(samples.subset(range(2)), store.spec), "full")  # warm-up
        g = loaded.cfg.glance
        modes = [("full", 1.0)] + [("glance", float(b)) for b in args.budgets.split(",")]
        rows, best_ms = [], [float("inf")] * len(modes)
        # Interleaved rounds, best mean per mode: a shared machine slows some passes.
        for _ in range(args.rounds):
            rows = []
            for j, (mode, budget) in enumerate(modes):
                res = predictor.run(store, mode, budget, g.min_tiles, g.stop_entropy)
                m = classification_metrics(labels, np.stack([r.prob for r in res]), loaded.classes)
                tiles = np.mean([r.selected.sum() for r in res])
                best_ms[j] = min(best_ms[j], float(np.mean([r.ms for r in res])))
                rows.append((mode, budget, tiles, tiles / len(res[0].selected), best_ms[j],
                             m["macro_f1"], m["auc"]))  # fmt: skip
        scout_ms = _scouter_ms(store, predictor)
        print(f"run={run} images={len(samples)} grid={loaded.cfg.data.grid} "
              f"threads={torch.get_num_threads()} folds={len(loaded.experts)}")  # fmt: skip
        print()
        print(
            "| mode | budget | tiles/image | tile fraction | ms/image | ms vs full "
            "| macro-F1 | ΔF1 vs full | AUC |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        full_ms, full_f1 = rows[0][4], rows[0][5]
        for mode, budget, tiles, frac, ms, f1, auc in rows:
            print(f"| {mode} | {budget:.2f} | {tiles:.1f} | {frac:.3f} | {ms:.1f} | "
                  f"{ms / full_ms:.2f} | {f1:.4f} | {f1 - full_f1:+.4f} | {auc:.4f} |")  # fmt: skip
        print()
        print(f"scouter alone (view + network), in every glance row: {scout_ms:.1f} ms/image")
        heat = _heatmap_ms(store, predictor)
        print(f"heatmap of a 1024x1024 image (scouter + render): {heat:.1f} ms")


if __name__ == "__main__":
    main()
