"""Biomass throughput: training and inference images/s, and the decode-and-clean cache.

Prints one table. Peers, run side by side in this process on the same images:
  * cache: `ImageCache` (decoded + cleaned once, then loaded) vs no cache (decode + clean every
    time), reported as a speed-up ratio;
  * model: Phase 2 of the demo recipe (global + 8 tiles, attention, FiLM) vs the global-only
    baseline, train step (forward + backward + AdamW) and inference, images/s.

Usage:
    python benchmarks/biomass_throughput.py [--images 48] [--batch 16] [--device cpu]
        [--backbone fv_tiny_cnn] [--size 256x512] [--bf16]

On a GPU machine, e.g. ``--device cuda --backbone convnextv2_tiny --size 512x1024 --bf16``
runs a real timm backbone on 256×256 tiles (512×1024 cleaned image).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from fieldvision.data.biomass import BiomassDataset
from fieldvision.data.cache import ImageCache
from fieldvision.data.synthetic.pasture import generate_pasture_dataset
from fieldvision.models.biomass import Phase2Config, Phase2Model, weighted_biomass_loss
from fieldvision.ops.cleaning import CleanConfig


def _time(fn, repeat: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def bench_cache(paths: list[Path], size: tuple[int, int], root: Path) -> dict[str, float]:
    cfg = CleanConfig(size=size)
    uncached = ImageCache(root, cfg, enabled=False)
    cached = ImageCache(root, cfg)
    cached.warm(paths, progress=False)  # first epoch pays the decode + clean once
    t_none = _time(lambda: [uncached.get(p) for p in paths])
    t_disk = _time(lambda: [cached.get(p) for p in paths], repeat=3)
    return {
        "no cache img/s": len(paths) / t_none,
        "disk cache img/s": len(paths) / t_disk,
        "speed-up": t_none / t_disk,
    }


def bench_model(
    images: torch.Tensor, cfg: Phase2Config, device: str, bf16: bool, steps: int
) -> dict[str, float]:
    model = Phase2Model(cfg, meta_dim=4, target_scale=(30.0, 20.0, 10.0, 40.0, 60.0)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = images.to(device)
    y = torch.rand(len(x), 5, device=device) * 50
    meta = torch.randn(len(x), model.meta_dim, device=device)
    scale = model.target_scale
    amp = torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16)

    def train_step() -> None:
        with amp:
            out = model(x, meta)["targets"]
            loss = weighted_biomass_loss(out.float(), y, scale=scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    @torch.no_grad()
    def infer() -> None:
        with amp:
            model(x, meta)

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    model.train()
    for _ in range(2):  # warm-up (allocator, oneDNN / cuDNN kernel selection)
        train_step()
    sync()
    t_train = _time(lambda: (train_step(), sync()), repeat=steps)
    model.eval()
    for _ in range(2):
        infer()
    sync()
    t_infer = _time(lambda: (infer(), sync()), repeat=steps)
    return {"train img/s": len(x) / t_train, "infer img/s": len(x) / t_infer}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--backbone", default="fv_tiny_cnn")
    parser.add_argument("--size", default="256x512", help="cleaned image HxW")
    parser.add_argument("--bf16", action="store_true")
    args = parser.parse_args()
    h, w = (int(v) for v in args.size.split("x"))

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        generate_pasture_dataset(
            tmp / "data", n_train=args.images, n_test=1, size=(256, 512), seed=0, progress=False
        )
        paths = sorted((tmp / "data" / "train").glob("*.jpg"))
        cache_stats = bench_cache(paths, (h, w), tmp / "cache")
        ds = BiomassDataset(
            paths[: args.batch], ImageCache(tmp / "cache", CleanConfig(size=(h, w)))
        )
        images = torch.stack([ds[i]["image"] for i in range(len(ds))])

    print(
        f"device={args.device} backbone={args.backbone} image={h}x{w} batch={args.batch} "
        f"threads={torch.get_num_threads()} bf16={args.bf16}"
    )
    print()
    print("| stage | peer | images/s | ratio |")
    print("|---|---|---|---|")
    print(f"| decode+clean | no cache | {cache_stats['no cache img/s']:.1f} | 1.00 |")
    cached, ratio = cache_stats["disk cache img/s"], cache_stats["speed-up"]
    print(f"| decode+clean | disk cache (ours) | {cached:.1f} | {ratio:.1f}x |")
    common = dict(
        backbone=args.backbone,
        global_size=(h // 2, w // 2),
        tile_grid=(2, 4),
    )
    variants = {
        "global-only baseline": Phase2Config(**common, use_tiles=False, use_film=False),
        "global + 8 tiles + attention + FiLM": Phase2Config(**common),
    }
    results = {
        name: bench_model(images, cfg, args.device, args.bf16, args.steps)
        for name, cfg in variants.items()
    }
    base = results["global-only baseline"]
    for stage in ("train img/s", "infer img/s"):
        for name, res in results.items():
            ratio = res[stage] / base[stage]
            print(f"| {stage.split()[0]} | {name} | {res[stage]:.1f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
