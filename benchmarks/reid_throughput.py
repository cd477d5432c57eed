"""Embedding throughput of re-ID models (images / second), CPU and CUDA when available.

Measures ``ReIDModel`` forward passes in eval mode under ``torch.no_grad`` on random input
(decoding excluded), for our CPU backbones and two real timm backbones (random init; no
weights are downloaded), at several batch sizes. With ``--tta`` every batch is embedded
twice (image + mirror), as ``fieldvision reid embed`` does by default.

    python benchmarks/reid_throughput.py [--quick] [--tta] [--threads N]
"""

from __future__ import annotations

import argparse
import time

import torch

from fieldvision.models.reid import ReIDModel, ReIDModelConfig

MODELS = [  # (backbone, input side)
    ("fv_tiny_cnn", 96),
    ("fv_small_resnet", 128),
    ("resnet50", 224),
    ("convnext_tiny", 224),
]


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def images_per_second(
    model: ReIDModel, side: int, batch: int, device: str, tta: bool, min_seconds: float
) -> float:
    """Warm up, then time whole batches for at least `min_seconds`; images per second."""
    x = torch.rand(batch, 3, side, side, device=device)
    ctx = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device == "cuda"
        else torch.autocast("cpu", enabled=False)
    )
    with ctx:
        for _ in range(2):  # warm-up (cudnn autotune, allocator, lazy init)
            model(x)
        _sync(device)
        n, t0 = 0, time.perf_counter()
        while True:
            model(x)
            if tta:
                model(x.flip(-1))
            n += batch
            _sync(device)
            elapsed = time.perf_counter() - t0
            if elapsed >= min_seconds and n >= 2 * batch:
                return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Fewer sizes, shorter timing.")
    parser.add_argument("--tta", action="store_true", help="Count flip TTA (two passes).")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads.")
    parser.add_argument("--models", default=None, help="Comma-separated backbone names.")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    batches = [1, 16] if args.quick else [1, 16, 64]
    min_seconds = 0.5 if args.quick else 2.0
    models = MODELS
    if args.models:
        wanted = args.models.split(",")
        models = [(n, s) for n, s in MODELS if n in wanted] or [(n, 224) for n in wanted]
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}, tta={args.tta}")
    if "cuda" in devices:
        print(f"CUDA device: {torch.cuda.get_device_name()}")
    header = f"{'backbone':<18}{'input':>7}{'params':>9}{'device':>8}" + "".join(
        f"{'bs=' + str(b):>11}" for b in batches
    )
    print(header)
    print("-" * len(header))
    for name, side in models:
        model = ReIDModel(ReIDModelConfig(backbone=name, embedding_dim=512)).eval()
        params = sum(p.numel() for p in model.parameters()) / 1e6
        for device in devices:
            m = model.to(device)
            cpu_big = device == "cpu" and side >= 224
            cells = []
            for b in batches:
                secs = min_seconds if not cpu_big else max(min_seconds, 1.0)
                cells.append(f"{images_per_second(m, side, b, device, args.tta, secs):>11.1f}")
            print(f"{name:<18}{side:>7}{params:>8.1f}M{device:>8}" + "".join(cells))
    print("(images / second, embedding forward only; decode + resize excluded)")


if __name__ == "__main__":
    main()
