"""fieldvision: competition-grade CV pipelines for small, noisy image datasets."""

from fieldvision.errors import FieldVisionError

__version__ = "0.1.0"
__all__ = ["FieldVisionError", "__version__"]
