"""Named tolerance levels and the one comparison every parity check uses.

A value passes when ``|actual - expected| <= atol + rtol * |expected|`` element-wise
(the llm.c rule). Tests and checks name a level (``FP32``...) instead of writing
literals, and a failure reports the max absolute and relative difference and where
the worst element sits.
"""

from dataclasses import dataclass

import numpy as np

from .errors import ParityError


@dataclass(frozen=True)
class Tolerance:
    name: str
    atol: float
    rtol: float


# Same math, different summation order over hundreds of recurrent steps.
FP32 = Tolerance("fp32", atol=1e-4, rtol=1e-4)
FP16 = Tolerance("fp16", atol=2e-2, rtol=2e-2)
# Per-row int8 weights: logits of a trained 2x256 LSTM move by up to ~0.15 over 500
# steps while the top-1 choice agrees ~99%; the accuracy gates are the real check.
INT8 = Tolerance("int8", atol=2.5e-1, rtol=1e-1)
# Two implementations of one kernel on identical float32 inputs (fast path vs plain twin).
KERNEL = Tolerance("kernel", atol=1e-5, rtol=1e-5)

BY_DTYPE = {"fp32": FP32, "fp16": FP16, "int8": INT8}


@dataclass(frozen=True)
class Diff:
    """How far ``actual`` is from ``expected``."""

    name: str
    max_abs: float
    max_rel: float
    where: tuple
    ok: bool
    tolerance: Tolerance

    def __str__(self):
        verdict = "ok" if self.ok else "FAIL"
        return (f"{self.name}: max abs {self.max_abs:.3g}, max rel {self.max_rel:.3g} "
                f"at {self.where} [{self.tolerance.name}: atol {self.tolerance.atol:g}, "
                f"rtol {self.tolerance.rtol:g}] {verdict}")

    def as_dict(self):
        return {"name": self.name, "max_abs": self.max_abs, "max_rel": self.max_rel,
                "where": list(self.where), "ok": self.ok, "tolerance": self.tolerance.name}


def compare(name, actual, expected, tol=FP32):
    """Compare two arrays; shapes must match exactly."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        raise ParityError(f"{name}: shape {actual.shape} differs from expected {expected.shape}")
    if actual.size == 0:
        return Diff(name, 0.0, 0.0, (), True, tol)
    if not np.all(np.isfinite(actual)):
        bad = np.unravel_index(int(np.argmax(~np.isfinite(actual))), actual.shape)
        return Diff(name, float("inf"), float("inf"), tuple(int(i) for i in bad), False, tol)
    err = np.abs(actual - expected)
    excess = err - (tol.atol + tol.rtol * np.abs(expected))
    worst = int(np.argmax(excess))
    rel = err / np.maximum(np.abs(expected), 1e-12)
    where = tuple(int(i) for i in np.unravel_index(worst, err.shape))
    return Diff(name, float(err.max()), float(rel.max()), where, bool(excess.max() <= 0), tol)


def assert_close(name, actual, expected, tol=FP32):
    """``compare`` and raise ``ParityError`` with the report when it fails."""
    diff = compare(name, actual, expected, tol)
    if not diff.ok:
        raise ParityError(str(diff))
    return diff
