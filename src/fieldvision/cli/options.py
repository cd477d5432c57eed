"""The typer options every command shares, declared once.

``--config`` (a YAML file or a packaged recipe name), ``--set key=value`` (repeatable),
``--device`` and ``--progress/--no-progress`` mean the same on every command that takes
them. On commands that use a finished run, ``--set`` may only change runtime fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["ConfigOpt", "DeviceOpt", "ProgressOpt", "SetOpt", "runtime_flags"]

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="YAML config file, or a packaged recipe (e.g. reid_demo)."),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config value, e.g. --set train.epochs=20 (repeatable)."),
]
DeviceOpt = Annotated[
    str | None, typer.Option("--device", help="auto, cpu or cuda (default: the config's).")
]
ProgressOpt = Annotated[
    bool, typer.Option("--progress/--no-progress", help="Progress bars on stderr.")
]


def runtime_flags(section: str, device: str | None, progress: bool | None) -> list[str]:
    """``--set`` strings for the shared runtime flags of a config whose runtime knobs live in
    `section` (``train``)."""
    flags = []
    if device is not None:
        flags.append(f"{section}.device={device}")
    if progress is not None:
        flags.append(f"{section}.progress={str(progress).lower()}")
    return flags
