"""The export folder's ``manifest.json``: reading it and checking its files (no torch).

`fieldvision.export` writes the manifest; this module only reads it, so the ONNX deploy
path (`fieldvision.deploy`) and ``fieldvision export`` share one checksum rule without the
deploy path importing the exporter (which imports torch).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from fieldvision.errors import RunError

__all__ = ["INFERENCE_FORMAT", "MANIFEST", "sha256", "verify_export"]

MANIFEST = "manifest.json"
#: Version of the manifest's ``inference`` block (written by the exporter, read by
#: `fieldvision.deploy.session`): the resolved config and the runtime fields' specs.
INFERENCE_FORMAT = 1


def sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_export(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Check an export folder against its manifest (files present, checksums equal).

    Returns:
        The manifest.

    Raises:
        RunError: Missing manifest or file, or a file whose sha256 differs (edited, or from
            another export).
    """
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise RunError(f"{folder}: no readable {MANIFEST}", hint="run fieldvision export") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("models"), dict):
        raise RunError(f"{folder / MANIFEST}: not an export manifest (no models)")
    for name, entry in manifest["models"].items():
        # The FP32 file and, after --int8, its quantized copy: both are checksummed.
        for record in (entry, entry.get("int8")):
            if record is None:
                continue
            path = folder / record["file"]
            if not path.is_file():
                raise RunError(f"{folder}: model {name!r} file {record['file']} is missing")
            if sha256(path) != record["sha256"]:
                raise RunError(
                    f"{path}: checksum differs from {MANIFEST} (edited, or from another export)",
                    hint="re-export the run",
                )
    return manifest
