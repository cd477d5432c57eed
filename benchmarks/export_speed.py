"""Inference speed of exported models: torch eager FP32 vs ONNX Runtime FP32, on CPU.

For each model (the demo-sized fieldvision models and real timm backbones with random
weights, embedded as a re-ID network at 224²), the same batch is run side by side through
torch eager and through ONNX Runtime (the file `fieldvision.export.export_model` writes,
parity-checked) with the same number of threads; prints a Markdown table of images/s,
ms/image, ratio vs torch, and the ONNX file size::

    .venv/bin/python benchmarks/export_speed.py [--threads 2] [--batch 8] [--seconds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

import fieldvision.models.biomass
import fieldvision.models.mil  # noqa: F401
from fieldvision.export import export_model, export_spec
from fieldvision.models.registry import create_model

CASES = [
    ("reid fv_tiny_cnn 96²", "reid_embedder", {"backbone": "fv_tiny_cnn"}, {}, (96, 96)),
    ("reid resnet50 224²", "reid_embedder", {"backbone": "resnet50", "embedding_dim": 512}, {},
     (224, 224)),
    ("reid convnext_tiny 224²", "reid_embedder", {"backbone": "convnext_tiny",
                                                  "embedding_dim": 512}, {}, (224, 224)),
    ("biomass phase2 (demo)", "biomass_phase2", {}, {"meta_dim": 4}, (256, 512)),
    ("mil expert tiles 32²", "mil_expert", {"tile_size": 32}, {"num_classes": 3}, None),
    ("mil scouter 128²", "mil_scouter", {}, {"grid": [8, 8]}, None),
]  # fmt: skip


def _rate(fn, n_images: int, seconds: float) -> float:
    fn()  # warm-up
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        done += n_images
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--quick", action="store_true", help="fieldvision models only")
    args = parser.parse_args()
    import onnxruntime as ort

    torch.set_num_threads(args.threads)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    print(f"torch {torch.__version__}, onnxruntime {ort.__version__}, threads={args.threads}, "
          f"batch={args.batch}")  # fmt: skip
    print()
    print("| model | runtime | images/s | ms/image | ratio vs torch | MB |")
    print("|---|---|---|---|---|---|")
    cases = [c for c in CASES if not (args.quick and ("resnet" in c[0] or "convnext" in c[0]))]
    with tempfile.TemporaryDirectory() as tmp:
        for label, name, cfg, dims, size in cases:
            model = create_model(name, cfg, **dims).eval()
            path = Path(tmp) / f"{name}.onnx"
            export_model(model, path, image_size=size, batches=(1, 2))
            spec = export_spec(model, size)
            inputs = spec.example(args.batch)
            session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            feeds = {n: x.numpy() for (n, _), x in zip(spec.inputs, inputs, strict=True)}

            def run_torch(m=model, s=spec, x=inputs):
                with torch.no_grad():
                    s.call(m, *x)

            def run_onnx(sess=session, f=feeds, s=spec):
                sess.run(s.outputs, f)

            eager = _rate(run_torch, args.batch, args.seconds)
            onnx = _rate(run_onnx, args.batch, args.seconds)
            mb = path.stat().st_size / 1e6
            for runtime, rate in (("torch eager FP32", eager), ("ONNX Runtime FP32", onnx)):
                print(f"| {label} | {runtime} | {rate:.1f} | {1000 / rate:.2f} | "
                      f"{rate / eager:.2f}x | {mb:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
