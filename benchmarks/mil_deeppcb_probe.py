"""How learnable are DeepPCB's defects per tile? A box-supervised probe, the ceiling for MIL.

The MIL pipeline learns DeepPCB (real 640² board scans, `../shared/data/deeppcb`) from
image labels only. When it stays at chance, this probe separates "the evidence cannot be
seen at this resolution by this backbone" from "MIL cannot find it from image labels":
it trains the same tile backbone *with* tile labels taken from the defect boxes (a tile is
positive when a defect box's centre lies in it; never done by the pipeline, which uses
boxes only to measure localisation) on the same grouped split (a board's two scans on one
side), and reports per epoch the tile ROC-AUC and the image ROC-AUC of max-pooled tile
scores on the held-out boards. Epochs sample every positive tile and twice as many
negatives, with random 90° turns and mirrors.

::

    .venv/bin/python benchmarks/mil_deeppcb_probe.py [--backbone fv_tiny_cnn] [--tile 80]
        [--seen 80] [--epochs 4] [--data ../shared/data/deeppcb]

Prints one Markdown row per epoch.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from fieldvision.data.images import read_rgb
from fieldvision.models.backbone import BACKBONES

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "deeppcb"


def _load(root: Path, tile: int) -> tuple[torch.Tensor, np.ndarray, np.ndarray, list[dict]]:
    """Grey tiles uint8 [N·T, tile, tile], tile labels bool [N·T], image index [N·T], rows."""
    rows = list(csv.DictReader((root / "labels.csv").open()))
    grid = 640 // tile
    tiles, labels, owner = [], [], []
    for i, row in enumerate(rows):
        grey = read_rgb(root / row["image"])[..., 0]  # the scans are grey: one channel
        lab = np.zeros((grid, grid), bool)
        if row["boxes"]:
            for line in (root / row["boxes"]).read_text().splitlines():
                x1, y1, x2, y2 = (int(v) for v in line.replace(",", " ").split()[:4])
                cy, cx = (y1 + y2) // 2 // tile, (x1 + x2) // 2 // tile
                lab[min(cy, grid - 1), min(cx, grid - 1)] = True
        cut = grey[: grid * tile, : grid * tile].reshape(grid, tile, grid, tile)
        tiles.append(cut.transpose(0, 2, 1, 3).reshape(-1, tile, tile))
        labels.append(lab.reshape(-1))
        owner += [i] * grid * grid
    return torch.from_numpy(np.concatenate(tiles)), np.concatenate(labels), np.array(owner), rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--backbone", default="fv_tiny_cnn")
    parser.add_argument("--tile", type=int, default=80, help="tile side in source pixels")
    parser.add_argument("--seen", type=int, default=80, help="side the backbone sees")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--val-boards", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    x, y, owner, rows = _load(args.data, args.tile)
    boards = sorted({r["group"] for r in rows})
    rng.shuffle(boards)
    val_boards = set(boards[: args.val_boards])
    is_val = np.array([rows[i]["group"] in val_boards for i in owner])
    train_idx, val_idx = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    pos, neg = train_idx[y[train_idx]], train_idx[~y[train_idx]]
    backbone = BACKBONES.get(args.backbone)(in_chans=1)
    model = torch.nn.Sequential(backbone, torch.nn.Linear(backbone.num_features, 1))
    opt = torch.optim.AdamW(model.parameters(), 2e-3, weight_decay=1e-4)

    def batch(idx: np.ndarray, augment: bool) -> torch.Tensor:
        t = x[idx].float().div(255).unsqueeze(1)  # (n, 1, tile, tile)
        if args.seen != args.tile:
            t = F.interpolate(t, size=(args.seen,) * 2, mode="bilinear", antialias=True)
        if augment:
            t = torch.rot90(t, int(rng.integers(4)), (2, 3))
            t = t.flip(3) if rng.random() < 0.5 else t
        return (t - 0.5) / 0.5

    print(f"data={args.data} backbone={args.backbone} tile={args.tile} seen={args.seen} "
          f"train_pos_tiles={len(pos)} val_tiles={len(val_idx)}")  # fmt: skip
    print()
    print("| epoch | train loss | tile AUC | image AUC (max over tiles) | seconds |")
    print("|---|---|---|---|---|")
    for epoch in range(args.epochs):
        start = time.perf_counter()
        model.train()
        order = np.concatenate([pos, rng.choice(neg, 2 * len(pos), replace=False)])
        rng.shuffle(order)
        total = 0.0
        for b in range(0, len(order), 64):
            idx = order[b : b + 64]
            logit = model(batch(idx, True)).squeeze(1)
            loss = F.binary_cross_entropy_with_logits(logit, torch.from_numpy(y[idx]).float())
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * len(idx)
        model.eval()
        with torch.no_grad():
            scores = torch.cat(
                [
                    model(batch(val_idx[b : b + 512], False)).squeeze(1)
                    for b in range(0, len(val_idx), 512)
                ]
            ).numpy()
        images = np.unique(owner[val_idx])
        image_score = [scores[owner[val_idx] == i].max() for i in images]
        image_label = [rows[i]["label"] == "defect" for i in images]
        print(f"| {epoch} | {total / len(order):.3f} | {roc_auc_score(y[val_idx], scores):.3f} | "
              f"{roc_auc_score(image_label, image_score):.3f} | "
              f"{time.perf_counter() - start:.0f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
