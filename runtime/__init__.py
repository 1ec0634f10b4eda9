"""rnnedge runtime: run exported models with numpy, onnx, onnxruntime and numba. Never torch."""

from .cache import use_writable_cache

__version__ = "0.1.0"

use_writable_cache()  # before any numba kernel is defined: a read-only install still runs


def load(path, engine="ort", threads=1):
    """Load an rnnedge ONNX model; see ``rnnedge.runtime.model.load``."""
    from .model import load as _load

    return _load(path, engine=engine, threads=threads)
