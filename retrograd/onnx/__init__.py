"""Export inference graphs to ONNX, traced from the ops a forward pass records.

>>> rg.onnx.export(model, rg.randn(1, 3, 32, 32), "model.onnx")   # batch dimension dynamic

The `onnx` package is needed only when exporting: pip install 'retrograd[onnx]'. Importing
retrograd never imports it.
"""
from .export import UnsupportedOpError, export, supported_ops

__all__ = ["export", "supported_ops", "UnsupportedOpError"]
