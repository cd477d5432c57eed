"""Training: the optimiser recipe, the base system, the fitting loop and grouped k-fold."""

from fieldvision.training.fit import FitTask, Split, fit_splits, kfold_splits
from fieldvision.training.kfold import fold_table, grouped_folds
from fieldvision.training.optim import OptimConfig, build_optimizer
from fieldvision.training.system import StepOutput, TaskSystem
from fieldvision.training.trainer import FitResult, build_trainer, fit_resumable

__all__ = [
    "FitResult",
    "FitTask",
    "OptimConfig",
    "Split",
    "StepOutput",
    "TaskSystem",
    "build_optimizer",
    "build_trainer",
    "fit_resumable",
    "fit_splits",
    "fold_table",
    "grouped_folds",
    "kfold_splits",
]
