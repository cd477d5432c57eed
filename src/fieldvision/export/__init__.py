"""Deployment: ONNX export of every model a run holds, with parity checks and a manifest."""

from fieldvision.export.onnx import (
    ExportSpec,
    export_model,
    export_run,
    export_spec,
    verify_export,
)

__all__ = ["ExportSpec", "export_model", "export_run", "export_spec", "verify_export"]
