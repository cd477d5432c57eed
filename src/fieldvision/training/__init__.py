"""Training: Lightning systems, the trainer builder with resume, and grouped k-fold."""

from fieldvision.training.kfold import fold_table, grouped_folds
from fieldvision.training.trainer import FitResult, build_trainer, fit_resumable

__all__ = ["FitResult", "build_trainer", "fit_resumable", "fold_table", "grouped_folds"]
