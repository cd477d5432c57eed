"""Eval-mode BatchNorm folded into the convolutions vs the same backbone unfolded.

`fieldvision.models.batchnorm_folding.fold_batchnorm` removes one operator per convolution.
This times both versions of each backbone side by side (interleaved rounds in one process,
best round each, so a busy machine slows both alike) at the batch sizes glance-and-focus
inference runs: a few tiles per image (glance) and a whole 8×8 grid (full tiling). Prints a
Markdown table; the peer is the unfolded eager module::

    .venv/bin/python benchmarks/batchnorm_folding.py [--threads 2] [--size 32] [--rounds 5]
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from fieldvision.models.backbone import create_backbone
from fieldvision.models.batchnorm_folding import fold_batchnorm


def _ms(model: torch.nn.Module, x: torch.Tensor, calls: int) -> float:
    with torch.no_grad():
        model(x)  # warm-up: oneDNN primitives for this shape
        start = time.perf_counter()
        for _ in range(calls):
            model(x)
    return (time.perf_counter() - start) / calls * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default="fv_tiny_cnn,fv_small_resnet,resnet18")
    parser.add_argument("--batches", default="3,64", help="tiles per call")
    parser.add_argument("--size", type=int, default=32, help="tile side in pixels")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"threads={torch.get_num_threads()} tile={args.size}px rounds={args.rounds}\n")
    print(
        "| backbone | tiles/call | pairs folded | unfolded ms | folded ms | speed-up | max diff |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in args.backbones.split(","):
        torch.manual_seed(0)
        model = create_backbone(name).eval().to(memory_format=torch.channels_last)
        folded = copy.deepcopy(model)
        pairs = fold_batchnorm(folded)
        for batch in (int(b) for b in args.batches.split(",")):
            x = torch.rand(batch, 3, args.size, args.size).contiguous(
                memory_format=torch.channels_last
            )
            calls = max(5, 600 // batch)
            best = [float("inf"), float("inf")]
            for _ in range(args.rounds):  # interleaved: both see the same machine state
                best[0] = min(best[0], _ms(model, x, calls))
                best[1] = min(best[1], _ms(folded, x, calls))
            with torch.no_grad():
                diff = (model(x) - folded(x)).abs().max().item()
            print(
                f"| {name} | {batch} | {pairs} | {best[0]:.2f} | {best[1]:.2f} | "
                f"{best[0] / best[1]:.2f}x | {diff:.1e} |"
            )


if __name__ == "__main__":
    main()
