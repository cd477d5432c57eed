"""Error types that the CLI turns into a one-line message and exit code 2.

Library code raises these for anything the *user* can fix (bad file, bad column, bad
config). Programming errors stay ordinary Python exceptions so they keep their traceback.
"""

from __future__ import annotations


class FieldVisionError(Exception):
    """Base class for user-facing errors.

    Args:
        message: What went wrong, naming the file, row or field.
        hint: Optional one-line suggestion for how to fix it.
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message} (hint: {self.hint})"


class ConfigError(FieldVisionError):
    """A config file or `--set` override is invalid."""


class DataError(FieldVisionError):
    """An input table, image or directory is missing or malformed."""


class RunError(FieldVisionError):
    """A run directory is missing, unfinished or from an incompatible config."""
