"""The biomass pipeline (CSIRO Image2Biomass): train, predict, evaluate, ablate, demo.

Files: `config` (the run config), `inputs` (validated tables, images, folds, loaders),
`meta` (metadata encoding for Phase 1 / FiLM), `fit` (k-fold Phase 1 + Phase 2 training),
`predict` (fold-ensemble submission, evaluation), `repeats` (repeated CV: R fold/model
seeds, mean ± std), `noise` (label-noise ranking and flags from OOF residuals), `ttt`
(test-time training on pseudo-labels for `predict --ttt`), `ablation`, `tabular`
(metadata-only baseline), `demo` (both models over repeats).
"""

from fieldvision.pipelines.biomass.config import BiomassConfig
from fieldvision.pipelines.biomass.fit import RUN_KIND, TrainResult, train
from fieldvision.pipelines.biomass.predict import EvalResult, evaluate, load_run, predict

__all__ = [
    "RUN_KIND",
    "BiomassConfig",
    "EvalResult",
    "TrainResult",
    "evaluate",
    "load_run",
    "predict",
    "train",
]
