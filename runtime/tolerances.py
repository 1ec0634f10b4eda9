"""Named tolerance levels and the one comparison every parity check uses.

A value passes when ``|actual - expected| <= atol + rtol * |expected|`` element-wise
(the llm.c rule). Tests and checks name a level (``FP32``...) instead of writing
literals; an engine's level comes from the precision it computes in (``level("int8")``),
never from its name. ``compare`` checks the dtype, then the shape, then (when the shapes
match) the values, and reports every way they differ in one ``Diff`` instead of raising:
the max absolute and relative difference, where the worst element sits, and what differs.
Not here: which outputs two engines must both produce (``parity.compare_outputs``).
"""

import math
from dataclasses import dataclass

import numpy as np

from .errors import ParityError, UnsupportedError


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
# Weights after a few steps of 2 training processes against 1 on the same global batch: the
# same float32 math, the gradient summed in another order (and Adam's step divides by its root).
DDP_FP32 = Tolerance("ddp-fp32", atol=1e-5, rtol=1e-5)

BY_DTYPE = {"fp32": FP32, "fp16": FP16, "int8": INT8}


def level(dtype):
    """The tolerance of an engine that computes in ``dtype``: "fp32", "fp16" or "int8"."""
    try:
        return BY_DTYPE[dtype]
    except KeyError:
        raise UnsupportedError(f"no tolerance level for precision {dtype!r}; the levels are "
                               f"{', '.join(BY_DTYPE)}") from None


@dataclass(frozen=True)
class Diff:
    """How far ``actual`` is from ``expected``.

    ``check`` names the first check that failed ("name", "dtype", "shape" or "value"; empty
    when all passed) and ``message`` says what differs. ``max_abs`` and ``max_rel`` are NaN
    when no values were compared (a missing output, a shape mismatch).
    """

    name: str
    max_abs: float
    max_rel: float
    where: tuple
    ok: bool
    tolerance: Tolerance
    check: str = ""
    message: str = ""

    def __str__(self):
        verdict = "ok" if self.ok else "FAIL"
        values = (None if math.isnan(self.max_abs) else
                  f"max abs {self.max_abs:.3g}, max rel {self.max_rel:.3g} at {self.where}")
        what = "; ".join(p for p in (self.message, values) if p)
        return (f"{self.name}: {what} [{self.tolerance.name}: atol {self.tolerance.atol:g}, "
                f"rtol {self.tolerance.rtol:g}] {verdict}")

    def as_dict(self):
        out = {"name": self.name, "max_abs": self.max_abs, "max_rel": self.max_rel,
               "where": list(self.where), "ok": self.ok, "tolerance": self.tolerance.name}
        if not self.ok:
            out.update(check=self.check, message=self.message)
        return out


def unmatched(name, message, tol=FP32):
    """A failed ``Diff`` with no values compared: ``check`` "name" (an output on one side only)."""
    return Diff(name, math.nan, math.nan, (), False, tol, "name", message)


def compare(name, actual, expected, tol=FP32, dtype=None):
    """Diff of ``actual`` against ``expected``: dtype, then shape, then values if shapes match.

    ``dtype``: what ``actual`` must hold; by default ``expected``'s, except that a float64
    ``expected`` (a reference computed wider, or built from Python floats) takes any float.
    """
    actual, expected = np.asarray(actual), np.asarray(expected)
    failures = []  # (check, message), in the order checked
    wrong_dtype = _dtype_problem(actual, expected, dtype)
    if wrong_dtype:
        failures.append(("dtype", wrong_dtype))
    comparable = actual.shape == expected.shape and _numeric(actual) and _numeric(expected)
    if actual.shape != expected.shape:
        failures.append(("shape", f"shape {actual.shape}, expected {expected.shape}"))
    elif not comparable and not failures:
        failures.append(("dtype", f"dtypes {actual.dtype} and {expected.dtype} hold no numbers"))
    if not comparable:
        return Diff(name, math.nan, math.nan, (), False, tol, failures[0][0],
                    "; ".join(m for _, m in failures))
    max_abs, max_rel, where, beyond = _values(actual.astype(np.float64),
                                              expected.astype(np.float64), tol)
    if beyond:
        failures.append(("value", beyond))
    return Diff(name, max_abs, max_rel, where, not failures, tol,
                failures[0][0] if failures else "", "; ".join(m for _, m in failures))


def _numeric(array):
    return array.dtype.kind in "biuf"


def _dtype_problem(actual, expected, dtype):
    """What is wrong with ``actual``'s dtype, or ""."""
    if dtype is None and expected.dtype == np.float64:
        return "" if actual.dtype.kind == "f" else f"dtype {actual.dtype}, expected a float"
    want = np.dtype(expected.dtype if dtype is None else dtype)
    return "" if actual.dtype == want else f"dtype {actual.dtype}, expected {want}"


def _index(flat, shape):
    return tuple(int(i) for i in np.unravel_index(int(flat), shape))


def _values(actual, expected, tol):
    """(max abs, max rel, where the worst excess is, "" or what fails) of two float64 arrays."""
    if actual.size == 0:
        return 0.0, 0.0, (), ""
    for side, array in (("actual", actual), ("expected", expected)):
        finite = np.isfinite(array)
        if not finite.all():
            where = _index(np.argmax(~finite), array.shape)
            return (math.inf, math.inf, where, f"{side} holds {int((~finite).sum())} NaN or inf "
                                               f"value(s), the first at {where}")
    err = np.abs(actual - expected)
    excess = err - (tol.atol + tol.rtol * np.abs(expected))
    rel = err / np.maximum(np.abs(expected), 1e-12)
    beyond = int((excess > 0).sum())
    message = f"{beyond} of {err.size} value(s) beyond the tolerance" if beyond else ""
    return float(err.max()), float(rel.max()), _index(np.argmax(excess), err.shape), message


def assert_close(name, actual, expected, tol=FP32):
    """``compare`` and raise ``ParityError`` with the report when it fails."""
    diff = compare(name, actual, expected, tol)
    if not diff.ok:
        raise ParityError(str(diff))
    return diff
