"""Small helpers to build Markdown reports: tables, figures, sections."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from fieldvision.io import atomic_path, write_text

__all__ = ["fmt", "markdown_table", "new_figure", "save_figure", "write_report"]


def new_figure(width: float = 6.0, height: float = 4.0) -> Figure:
    """A pyplot-free figure: no global state, no display backend, safe in workers and CI."""
    return Figure(figsize=(width, height), layout="constrained")


def fmt(value: Any, digits: int = 4) -> str:
    """Format a cell: floats to `digits` significant decimals, others via str()."""
    if isinstance(value, float):
        if value != value:  # NaN
            return "nan"
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, digits: int = 4
) -> str:
    """Render dict rows as a GitHub-flavoured Markdown table (empty rows -> empty string)."""
    if not rows:
        return ""
    columns = list(columns or rows[0].keys())
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(fmt(row.get(c, ""), digits) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = 110) -> Path:
    """Save a matplotlib figure atomically as PNG (figures from `new_figure` need no close)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    return path


def write_report(
    path: str | os.PathLike[str], title: str, sections: Sequence[tuple[str, str]]
) -> Path:
    """Write a Markdown report of `(heading, body)` sections atomically."""
    parts = [f"# {title}\n"]
    for heading, body in sections:
        parts.append(f"## {heading}\n\n{body.rstrip()}\n")
    return write_text(path, "\n".join(parts))
