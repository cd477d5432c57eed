"""The re-identification pipeline (Kaggle Jaguar Re-ID): synth, fit, embed, search, pairs,
evaluate, demo.

Files: `config` (the run config), `data` (layouts, synthetic data), `fit` (training),
`embed` (run loading, flip-TTA embeddings), `search` (ranking from embedding files),
`pairs` (pair similarities, submission), `protocols` (closed / open / all evaluation
sets), `evaluate` (metrics, report), `background` (background-reliance diagnostic), `demo`.
"""

from fieldvision.pipelines.reid.config import ReIDPipelineConfig
from fieldvision.pipelines.reid.data import load_data, synth
from fieldvision.pipelines.reid.embed import RUN_KIND, embed, embed_images, load_run
from fieldvision.pipelines.reid.evaluate import evaluate
from fieldvision.pipelines.reid.fit import fit
from fieldvision.pipelines.reid.pairs import pair_scores, pairs
from fieldvision.pipelines.reid.search import search

__all__ = [
    "RUN_KIND",
    "ReIDPipelineConfig",
    "embed",
    "embed_images",
    "evaluate",
    "fit",
    "load_data",
    "load_run",
    "pair_scores",
    "pairs",
    "search",
    "synth",
]
