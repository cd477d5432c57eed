"""Appearance embeddings for video cameras from a trained re-ID run.

A MOT-file camera brings its embeddings in a ``.npy`` beside ``det.txt``; a video camera
has pixels, so its person crops are embedded here, in memory, with the embedding network of
a `fieldvision reid train` run (the same network and flip TTA that `reid embed` uses). The
crops are discarded once embedded: only the feature vector reaches the tracker and the
store, never the pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from fieldvision.tracking.detections import Detections

__all__ = ["CropEmbedder", "reid_crop_embedder"]

CropEmbedder = Callable[[np.ndarray, Detections], np.ndarray]


def reid_crop_embedder(run: Path, *, batch_size: int = 64) -> CropEmbedder:
    """An ``embed(frame (H, W, 3) uint8 BGR, detections) -> (N, E) float32`` function.

    Args:
        run: A finished re-ID run directory.
        batch_size: Crops per forward pass.

    Raises:
        RunError: `run` is not a finished re-ID run.
    """
    import torch
    import torch.nn.functional as F

    from fieldvision.pipelines.reid.embed import load_run

    _, cfg, model = load_run(run)
    model.eval()
    h, w = (int(v) for v in cfg.data.image_size)

    def embed(frame: np.ndarray, detections: Detections) -> np.ndarray:
        if len(detections) == 0:
            return np.zeros((0, int(model.embedding_dim)), np.float32)
        height, width = frame.shape[:2]
        rgb = torch.from_numpy(np.ascontiguousarray(frame[:, :, ::-1])).permute(2, 0, 1)
        crops = []
        for x1, y1, x2, y2 in np.round(detections.xyxy).astype(int):
            x1, y1 = max(0, x1), max(0, y1)
            x2, y2 = min(width, max(x2, x1 + 1)), min(height, max(y2, y1 + 1))
            crop = rgb[:, y1:y2, x1:x2].float()[None] / 255.0
            crops.append(F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False))
        batch = torch.cat(crops)  # (N, 3, h, w) in [0, 1]
        out = []
        with torch.inference_mode():
            for i in range(0, len(batch), batch_size):
                x = batch[i : i + batch_size]
                # Flip TTA as in `reid embed`: mean of the crop's and its mirror's embedding.
                e = model(x)["embedding"] + model(torch.flip(x, dims=[3]))["embedding"]
                out.append(F.normalize(e, dim=1))
        return torch.cat(out).numpy().astype(np.float32)

    return embed
