"""Atomic file writes and small I/O helpers.

Every output of the project goes through these so that an interrupted process never leaves a
half-written file behind: data is written to a temporary file in the same directory and
renamed over the target (`os.replace` is atomic on POSIX and Windows).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import yaml

__all__ = [
    "atomic_path",
    "atomic_write",
    "read_yaml",
    "write_bytes",
    "write_csv",
    "write_json",
    "write_text",
    "write_yaml",
]


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it over `target` on success.

    Use this for writers that want a filename (``torch.save``, ``fig.savefig``,
    ``np.savez``). On any exception the temporary file is removed and `target` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_write(target: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file beside `target` for writing; rename it over `target` on close."""
    if "w" not in mode:
        raise ValueError(f"atomic_write needs a write mode, got {mode!r}")
    with atomic_path(target) as tmp:
        encoding = None if "b" in mode else "utf-8"
        with open(tmp, mode, encoding=encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())


def write_text(target: str | os.PathLike[str], text: str) -> Path:
    """Write `text` atomically and return the target path."""
    with atomic_write(target) as fh:
        fh.write(text)
    return Path(target)


def write_bytes(target: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` atomically and return the target path."""
    with atomic_write(target, "wb") as fh:
        fh.write(data)
    return Path(target)


def write_json(target: str | os.PathLike[str], obj: Any) -> Path:
    """Write `obj` as indented JSON atomically."""
    return write_text(target, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_yaml(target: str | os.PathLike[str], obj: Any) -> Path:
    """Write `obj` as YAML atomically (keys in insertion order)."""
    return write_text(target, yaml.safe_dump(obj, sort_keys=False))


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """Read a YAML file, raising `ConfigError` that names the file on a parse error."""
    from fieldvision.errors import ConfigError

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc


def write_csv(target: str | os.PathLike[str], frame: Any, **kwargs: Any) -> Path:
    """Write a pandas DataFrame as CSV atomically (no index unless asked)."""
    kwargs.setdefault("index", False)
    with atomic_write(target) as fh:
        frame.to_csv(fh, **kwargs)
    return Path(target)
