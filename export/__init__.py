"""From PyTorch to ONNX, behind a parity gate: rnnedge's checkpoints and users' own modules.

``export_model(module, example_inputs, out, ...)`` exports any ``nn.Module`` with recurrent
layers (``user_model.py``); ``exporter.export(checkpoint, out)`` rnnedge's own checkpoints.
"""

from .user_model import ExportReport, export_model

__all__ = ["ExportReport", "export_model"]
