"""Weights in row panels: the layouts, the products on them, and int8 inputs quantized to fit.

A layer's weights M (..., H, G, K) become panels (``pack_rows``): rows j * G + g in groups
of 32 (the last padded with zero rows). float32 (``panel_dot_f32``): for each column k
the 32 rows' weights side by side. int8 (``quantize_rows``: one float32 scale per row,
values in [-127, 127]; ``panel_dot``): for each quad of columns k .. k + 3 the 32 rows'
four bytes side by side, 128 bytes. Either product sums every row of every panel in one
pass (``simd.py`` says why this layout). The columns are [x | h], K - H = ``split`` inputs
then H recurrent ones, each part padded with zero columns to whole quads, so that the GRU
can sum the two parts apart (float32 needs no padding); ``quantize`` writes an input
vector in the same layout, with zeros in the padding. ``rows_of`` gives M back, for the
plain twins.

The inputs of every int8 product are quantized per step with one symmetric scale to
[-Q_X, Q_X] = [-64, 64] (max|x| / 64, round half to even), what AVX2 multiplies without
saturating; sums are exact in int32. Not here: the layers that use these (fused_layer.py).
"""

import numpy as np
from numba import njit, types
from numba.extending import overload

from .common import float_from_bits
from .simd import HAS_AVX2, PANEL, Q_X, QUAD, panel_dot8, panel_dot32

Q_W = 127  # int8 weights lie in [-Q_W, Q_W]


def quantize_rows(w):
    """Symmetric per-row int8 of a float array (..., K) -> (int8 (..., K), scale (...,))."""
    scale = (np.abs(w).max(axis=-1) / Q_W).astype(np.float32)
    safe = np.where(scale > 0, scale, np.float32(1))
    return np.rint(w / safe[..., None]).astype(np.int8), scale


def quantize_table(table):
    """The token table (D, V, H, G) as int8 with one float32 scale per token and direction
    (D, V): a row gathered per step is then H * G bytes, a quarter of the fp32 reads of a
    vocabulary that does not fit the caches (61 MB for IMDb's 30,000 words at 128 units,
    15 MB in int8)."""
    D, V, H, G = table.shape
    rows, scale = quantize_rows(table.reshape(D, V, H * G))
    return rows.reshape(D, V, H, G), scale


@njit(cache=True)
def quads(n):
    """Quads of columns that n columns take, the last padded."""
    return -(-n // QUAD)


def width(split, K):
    """Length of a quantized input in the layout of ``panels(A, split)``, A (R, K)."""
    return QUAD * (quads(split) + quads(K - split))


def panels(A, split):
    """A (..., R, K) -> its panels: float32 (..., panels, K, 32); int8 (..., panels, quads,
    128), columns [:split] and [split:] each padded to whole quads. Rows padded to whole
    panels."""
    *lead, R, K = A.shape
    n = -(-R // PANEL)
    if A.dtype != np.int8:
        W = np.zeros((*lead, n * PANEL, K), np.float32)
        W[..., :R, :] = A
        return np.ascontiguousarray(np.swapaxes(W.reshape(*lead, n, PANEL, K), -2, -1))
    xq, hq = quads(split), quads(K - split)
    W = np.zeros((*lead, n * PANEL, QUAD * (xq + hq)), np.int8)
    W[..., :R, :split] = A[..., :split]
    W[..., :R, QUAD * xq:QUAD * xq + K - split] = A[..., split:]
    W = np.swapaxes(W.reshape(*lead, n, PANEL, xq + hq, QUAD), -3, -2)
    return np.ascontiguousarray(W).reshape(*lead, n, xq + hq, PANEL * QUAD)


def unpanel(P, R, K, split):
    """``panels``' inverse: A (..., R, K)."""
    if P.dtype != np.int8:
        *lead, n, _, _ = P.shape
        return np.swapaxes(P, -2, -1).reshape(*lead, n * PANEL, K)[..., :R, :]
    *lead, n, kq, _ = P.shape
    W = np.swapaxes(P.reshape(*lead, n, kq, PANEL, QUAD), -3, -2).reshape(*lead, n * PANEL,
                                                                           kq * QUAD)
    at = QUAD * quads(split)
    return np.concatenate([W[..., :R, :split], W[..., :R, at:at + K - split]], axis=-1)


def pack_rows(M, split):
    """M (..., H, G, K), float32 or int8 -> panels of its H * G rows (row j * G + g: gate g
    of unit j)."""
    *lead, H, G, K = M.shape
    return panels(M.reshape(*lead, H * G, K), split)


def rows_of(P, H, G, K, split):
    """``pack_rows``' inverse: M (..., H, G, K)."""
    return unpanel(P, H * G, K, split).reshape(*P.shape[:-3], H, G, K)


def panel_dot(P, q, k0, k1, total, out):
    """out[32 p + r] = row r of panel p . q over the columns of quads [k0, k1), int8 values
    (q in int8 or int16 holders, in [-Q_X, Q_X]) summed exactly in int32; ``total`` is the
    sum of q over those columns (``qsum``). In numba code, with int8 P and q, C-contiguous,
    on an AVX2 CPU: ``simd.panel_dot8``; otherwise ``panel_dot_loop``, its plain twin
    (which ignores ``total``). From Python: ``panel_dot_loop``."""
    panel_dot_loop(P, q, k0, k1, out)


@overload(panel_dot, inline="always")
def _panel_dot(P, q, k0, k1, total, out):
    if HAS_AVX2 and P.dtype == q.dtype == types.int8 and P.layout == q.layout == "C":
        return lambda P, q, k0, k1, total, out: panel_dot8(P, q, k0, k1, total, out)
    return lambda P, q, k0, k1, total, out: panel_dot_loop(P, q, k0, k1, out)


@njit(cache=True, fastmath=False)
def panel_dot_loop(P, q, k0, k1, out):
    """``panel_dot`` as plain loops."""
    for p in range(P.shape[0]):
        for r in range(PANEL):
            acc = np.int32(0)
            for k in range(k0, k1):
                for b in range(QUAD):
                    acc = np.int32(acc + np.int32(P[p, k, QUAD * r + b])
                                   * np.int32(q[QUAD * k + b]))
            out[PANEL * p + r] = acc


def panel_dot_f32(P, x, k0, k1, out):
    """out[32 p + r] = row r of float32 panel p . x over columns [k0, k1), in column order.
    In numba code, on float32 C-contiguous P and x: ``simd.panel_dot32``; otherwise (and
    from Python) ``panel_dot_f32_loop``, its plain twin."""
    panel_dot_f32_loop(P, x, k0, k1, out)


@overload(panel_dot_f32, inline="always")
def _panel_dot_f32(P, x, k0, k1, out):
    if P.dtype == x.dtype == types.float32 and P.layout == x.layout == "C":
        return lambda P, x, k0, k1, out: panel_dot32(P, x, k0, k1, out)
    return lambda P, x, k0, k1, out: panel_dot_f32_loop(P, x, k0, k1, out)


@njit(cache=True, fastmath=False)
def panel_dot_f32_loop(P, x, k0, k1, out):
    """``panel_dot_f32`` as plain loops."""
    for p in range(P.shape[0]):
        for r in range(PANEL):
            acc = np.float32(0.0)
            for k in range(k0, k1):
                acc += P[p, k, r] * x[k]
            out[PANEL * p + r] = acc


@njit(cache=True, fastmath=False)
def sums_f32(P, x, k0, k1):
    """Every row's float32 sum over columns [k0, k1) (``panel_dot_f32``), a new array."""
    acc = np.empty(P.shape[0] * PANEL, np.float32)
    panel_dot_f32(P, x, k0, k1, acc)
    return acc


@njit(cache=True, fastmath=False)
def output_f32(P, bias, x, out):
    """out (R,) = bias + A x for float32 A (R, K) in panels."""
    acc = sums_f32(P, x, 0, x.shape[0])
    for r in range(out.shape[0]):
        out[r] = bias[r] + acc[r]


@njit(cache=True, fastmath=False)
def matvec_f32(Ps, biases, xs, outs):
    """``output_f32`` of each (Ps[i], biases[i], xs[i], outs[i]) in one call: the
    benchmarks' panel floor."""
    for i in range(len(Ps)):
        output_f32(Ps[i], biases[i], xs[i], outs[i])


@njit(cache=True, fastmath=False)
def qsum(q, lo, hi):
    """sum(q[lo:hi]) as int32: ``panel_dot``'s ``total``."""
    acc = np.int32(0)
    for k in range(lo, hi):
        acc = np.int32(acc + np.int32(q[k]))
    return acc


@njit(cache=True, fastmath=False)
def quantize(x, split, q):
    """x (K,) -> q in the columns' layout of ``panels(A, split)`` (values in [-Q_X, Q_X] in an
    int8 or int16 array at least ``width(split, K)`` long, zeros in the padding); returns
    the scale, NaN when x holds a NaN. x C-contiguous."""
    top = _abs_max(x)
    scale = top / np.float32(Q_X) if top != 0 else np.float32(1.0)
    at = QUAD * quads(split)
    n = x.shape[0] - split
    _round(x[:split], scale, q[:split])  # loops from 0 over views: LLVM vectorises these
    _zero(q[split:at])
    _round(x[split:], scale, q[at:at + n])
    _zero(q[at + n:at + QUAD * quads(n)])
    return scale


@njit(cache=True, fastmath=False)
def _abs_max(x):
    """max |x| over float32 x, through the bits: a non-negative float orders as its bits, an
    integer max vectorises (a float max does not without fast-math), and NaN, whose bits lie
    above inf's, comes out as NaN."""
    bits = x.view(np.uint32)
    top = np.uint32(0)
    for k in range(bits.shape[0]):
        top = max(top, bits[k] & np.uint32(0x7FFFFFFF))
    return float_from_bits(np.int32(top))  # top <= 0x7FFFFFFF: fits


@njit(cache=True, fastmath=False)
def _round(x, scale, q):
    for k in range(x.shape[0]):
        q[k] = np.int16(np.rint(x[k] / scale))


@njit(cache=True, fastmath=False)
def _zero(q):
    for k in range(q.shape[0]):
        q[k] = 0


@njit(cache=True, fastmath=False)
def output8(P, scale, bias, x, q, out):
    """out (R,) = bias + A x for int8 A (R, K) in panels (split K) with row scales (R,), x
    quantized into q; no cell math (output layers, the benchmarks' int8 floor)."""
    sx = quantize(x, x.shape[0], q)
    kq = P.shape[1]
    acc = np.empty(P.shape[0] * PANEL, np.int32)
    panel_dot(P, q, 0, kq, qsum(q, 0, QUAD * kq), acc)
    for r in range(out.shape[0]):
        out[r] = bias[r] + np.float32(acc[r]) * (scale[r] * sx)


@njit(cache=True, fastmath=False)
def matvec8(Ps, scales, biases, xs, qs, outs):
    """``output8`` of each (Ps[i], scales[i], biases[i], xs[i], qs[i], outs[i]), tuples of
    arrays in one call (numba's dispatch costs microseconds)."""
    for i in range(len(Ps)):
        output8(Ps[i], scales[i], biases[i], xs[i], qs[i], outs[i])


def quantize_numpy(x):
    """Plain twin of ``quantize`` without the layout: (int32 values, scale)."""
    top = np.abs(x).max() if x.size else np.float32(0)
    scale = top / np.float32(Q_X) if top != 0 else np.float32(1)
    return np.rint(x / scale).astype(np.int32), scale
