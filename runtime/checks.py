"""Checks of the arrays a caller feeds a model: shapes and dtypes, with typed errors."""

import numpy as np

from .errors import InputError


def as_float32(name, array, shape):
    """Check a state array's shape (``None`` dims are free) and make it contiguous float32."""
    array = np.asarray(array)
    if array.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, array.shape)):
        want = "(" + ", ".join("?" if s is None else str(s) for s in shape) + ")"
        raise InputError(f"{name} has shape {tuple(array.shape)}, expected {want}")
    return np.ascontiguousarray(array, dtype=np.float32)
