"""Torch-free deployment: predict with a run's ONNX export (``--runtime onnx|onnx-int8``).

``fieldvision export --run RUN --out RUN/export [--int8 --calibration IMAGES]`` writes the
models; the predict commands then run them with ONNX Runtime, NumPy and the image readers
(Pillow / OpenCV) only. Nothing under this package imports torch, and the CLI dispatches
here before importing any pipeline module, so a ``--runtime onnx`` process never loads it
(checked in a subprocess by the tests).

Modules: `manifest` (the export's ``manifest.json`` and its checksums), `session` (opening
and verifying a run's export, settings, ONNX Runtime sessions), `images` (uint8 → float and
the antialiased bilinear resize, equal to torch's), `biomass`, `reid`, `mil` (the three
prediction commands, same output files as the torch runtime).
"""

from fieldvision.deploy.session import DEFAULT_EXPORT, RUNTIMES, Deployment, open_deployment

__all__ = ["DEFAULT_EXPORT", "RUNTIMES", "Deployment", "open_deployment"]
