"""The MIL pipeline (seed 002): classify high-resolution images from image-level labels by
pooling a tile expert over a bag of tiles, and spend compute only where a scouter looks.

Files: `config`, `inputs` (validated samples, bags, splits), `fit` (expert, then scouter by
distillation), `engine` (full tiling and glance-and-focus inference), `scoring` (metrics,
budget curve, localisation), `predict` (run loading, predictions, tiles.csv, heatmaps,
evaluation + report), `demo`.
"""

from fieldvision.pipelines.mil.config import MILConfig
from fieldvision.pipelines.mil.fit import RUN_KIND, train
from fieldvision.pipelines.mil.predict import evaluate, load_run, predict

__all__ = ["RUN_KIND", "MILConfig", "evaluate", "load_run", "predict", "train"]
