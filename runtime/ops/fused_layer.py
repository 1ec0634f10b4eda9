"""One step of one recurrent layer on the fused weight layout, fp32 and int8, with plain twins.

The building block of the fused engines: ``fused_stack.py`` (a whole stack with its head:
streaming chains, the char model among them, and classifiers) and ``fused_node.py`` (any
LSTM/GRU/RNN node). A
layer's weights are ``M`` (H, G, K): row (j, g) is [W | R] of gate g of unit j (ONNX gate
order i, o, f, c / z, r, h), K = input + hidden, so that the G gates of unit j are
adjacent; the kernels take them in row panels (panels.py: ``pack_rows``), whose one pass
gives every row's sum. ``base`` (H, G) holds Wb + Rb without GRU's Rbh, which ``rbh``
(H,) holds. A step sums every gate row first into a (4, H) buffer, then ``units`` updates
every cell in one loop that LLVM vectorises: the operators' own ``lstm_unit``,
``gru_reset``/``gru_unit`` and ``rnn_unit`` with ``approx`` e^x (``common.exp_approx``,
within 1 ulp), no clip and no peepholes (what these kernels run; callers check the
attributes). The GRU sums its input and recurrent columns apart (the h gate needs them
so); fp32 sums run in column order, one fused multiply-add a weight.

int8: the weights are int8 with one float32 scale per row, in int8 panels (split K - H);
the input of each product is quantized per step into the panels' column layout
(``panels.quantize``) and products are exact in int32.

Every kernel's plain twin is ``layer_numpy``. numba's cache does not notice when a helper
imported from another file (common.py, lstm.py, gru.py, rnn.py, panels.py, simd.py)
changes
under a kernel: after editing one, delete ``runtime/ops/__pycache__``.
"""

import numpy as np
from numba import njit

from .common import GATES, GRU, LSTM
from .gru import gru_reset, gru_reset_numpy, gru_unit, gru_unit_numpy
from .lstm import lstm_unit, lstm_unit_numpy
from .panels import (PANEL, QUAD, panel_dot, panel_dot_f32, qsum, quads, quantize,
                     quantize_numpy)
from .rnn import rnn_unit, rnn_unit_numpy
from .simd import flat

NO_R = np.float32(0.0)  # rt is applied already when linear_before_reset=0


# fastmath is on in the dot products only, and only reassoc + contract: reassociation lets
# LLVM split the sum into SIMD partial sums (otherwise it is one serial chain of adds) and
# contract allows FMA. Not nnan/ninf: the sigmoid relies on exp overflowing to inf, and a
# NaN must come out as NaN. The int8 products need no flag: integer sums vectorise as is.
DOT_FLAGS = {"reassoc", "contract"}


@njit(cache=True, fastmath=DOT_FLAGS)
def dot(A, row, x, lo, hi):
    """A[row, lo:hi] . x[lo:hi].

    Indices rather than slices: a view per row would add a reference count in and out
    (two calls) to every row of every step. Unsigned indices: numba guards a signed index
    against negative values, which stops LLVM vectorising the loop when ``lo`` is not a
    constant (the GRU's split rows run 4x slower).
    """
    acc = np.float32(0.0)
    for k in range(lo, hi):
        u = np.uint64(k)
        acc += A[row, u] * x[u]
    return acc


@njit(cache=True, fastmath=False)
def copy(src, dst, at):
    """dst[at:at + len(src)] = src, as a loop: numba's slice assignment carries a copy
    through a temporary array for the case where the two overlap."""
    for k in range(src.shape[0]):
        dst[at + k] = src[k]


# error_model "numpy": a float division that Python would check for a zero divisor (and
# raise) is a plain division, which LLVM can vectorise; 1 + e^x is never zero anyway.
@njit(cache=True, fastmath=False, error_model="numpy")
def units(cell, activation, s, h_prev, h, c):
    """Every unit's new h[j] (and c[j]) from its gate sums s (4, H), gate-major, in ONNX
    gate order: LSTM i, o, f, c; GRU z, r, then the h gate's input part (with Wbh) and
    recurrent part (with Rbh) (linear_before_reset=1); RNN s[0] alone.

    One loop per cell over units whose sums are all known, with ``approx`` e^x: LLVM
    vectorises it (8 units per instruction on AVX2), where a cell update right after each
    unit's products calls libm's expf once per gate.
    """
    if cell == LSTM:
        for j in range(h.shape[0]):
            c[j], h[j] = lstm_unit(s[0, j], s[1, j], s[2, j], s[3, j], c[j], None, None, None,
                                   None, 0, True)
    elif cell == GRU:
        for j in range(h.shape[0]):
            h[j] = gru_unit(s[0, j], gru_reset(s[1, j], None, True), s[2, j], s[3, j], h_prev[j],
                            None, 1, True)
    else:
        for j in range(h.shape[0]):
            h[j] = rnn_unit(s[0, j], activation, None, True)


@njit(cache=True, fastmath=False)
def layer(cell, activation, P, xh, base, rbh, h, c, s, acc):
    """One layer, one step: xh = [x; h_prev] (K,), weights P (``pack_rows`` of M (H, G, K),
    float32), base (H, G) -> h, c in place; s (4, H) and acc (2, rows of P) float32 are
    work buffers (``scratch``: no allocation per step).

    Every gate sum first, into s, then ``units``; h_prev is read from xh, not from h. Plain
    twin: ``layer_numpy``.
    """
    H, G = base.shape
    K = xh.shape[0]
    split = K - H  # where h_prev starts in xh
    if cell == GRU:  # the h gate keeps its two parts apart
        ax, ah = _sums32(P, xh, 0, split, acc[0]), _sums32(P, xh, split, K, acc[1])
        for j in range(H):
            row = 3 * j
            s[0, j] = base[j, 0] + (ax[row] + ah[row])
            s[1, j] = base[j, 1] + (ax[row + 1] + ah[row + 1])
            s[2, j] = base[j, 2] + ax[row + 2]
            s[3, j] = rbh[j] + ah[row + 2]
    else:
        sums = _sums32(P, xh, 0, K, acc[0])
        b = flat(base)
        for k in range(H * G):
            sums[k] = b[k] + sums[k]
        _by_gate(sums, G, s)
    units(cell, activation, s, xh[split:], h, c)


@njit(cache=True, fastmath=False)
def _by_gate(sums, G, s):
    """s[g, j] = sums[j * G + g]: the row order of the panels to the order of ``units``.
    LSTM: four stores per unit from unsigned indices, which LLVM vectorises as one
    interleaved load (0.38x the time of unpacking a slice of four a unit)."""
    H = s.shape[1]
    if G == 4:
        for j in range(H):
            u = np.uint64(4 * j)
            s[0, j] = sums[u]
            s[1, j] = sums[u + np.uint64(1)]
            s[2, j] = sums[u + np.uint64(2)]
            s[3, j] = sums[u + np.uint64(3)]
    else:
        for g in range(G):
            for j in range(H):
                s[g, j] = sums[j * G + g]


@njit(cache=True, fastmath=False)
def layer8(cell, activation, P, scale, xh, q, base, rbh, h, c, s, acc):
    """``layer`` on int8 weights: panels P (``pack_rows`` of M (H, G, K), split K - H) with
    row scales (H, G); q receives xh quantized (``panels.quantize``); s, acc as in
    ``layer``. Plain twin: ``layer_numpy`` with ``scale``."""
    H, G = scale.shape
    split = xh.shape[0] - H
    sx = quantize(xh, split, q)
    xq, kq = quads(split), P.shape[1]
    if cell == GRU:  # the h gate keeps its two parts apart
        ax, ah = _sums8(P, q, 0, xq, acc[0]), _sums8(P, q, xq, kq, acc[1])
        for j in range(H):
            row = 3 * j
            s[0, j] = base[j, 0] + np.float32(ax[row] + ah[row]) * (scale[j, 0] * sx)
            s[1, j] = base[j, 1] + np.float32(ax[row + 1] + ah[row + 1]) * (scale[j, 1] * sx)
            s[2, j] = base[j, 2] + np.float32(ax[row + 2]) * (scale[j, 2] * sx)
            s[3, j] = rbh[j] + np.float32(ah[row + 2]) * (scale[j, 2] * sx)
    else:  # the int sums in row order (j, g) become the gate sums in acc[1], then (g, j)
        ints = _sums8(P, q, 0, kq, acc[0])
        sums, b, sc = acc[1], flat(base), flat(scale)
        for k in range(H * G):  # contiguous: vectorised, where the (g, j) order is not
            sums[k] = b[k] + np.float32(ints[k]) * (sc[k] * sx)
        _by_gate(sums, G, s)
    units(cell, activation, s, xh[split:], h, c)


@njit(cache=True, fastmath=False)
def _sums8(P, q, k0, k1, buffer):
    """Every row's int32 sum over the columns of quads [k0, k1) (``panel_dot``), into the
    float32 ``buffer``'s bytes; returns them as int32."""
    acc = buffer.view(np.int32)
    panel_dot(P, q, k0, k1, qsum(q, QUAD * k0, QUAD * k1), acc)
    return acc


@njit(cache=True, fastmath=False)
def _sums32(P, x, k0, k1, acc):
    """Every row's float32 sum over columns [k0, k1) (``panel_dot_f32``), into acc."""
    panel_dot_f32(P, x, k0, k1, acc)
    return acc


def scratch(H, G):
    """The work buffers s (4, H) and acc (2, rows rounded up to whole panels) of ``layer``,
    ``layer8`` and the GRU ``*_reset_first`` kernels."""
    return np.zeros((4, H), np.float32), np.zeros((2, -(-H * G // PANEL) * PANEL), np.float32)


@njit(cache=True, fastmath=False)
def gru_layer_reset_first(P, xh, base, rbh, h, xr, s, acc):
    """GRU ``layer`` for linear_before_reset=0, whose ht needs (rt (.) Ht-1)*(Rh^T): every
    unit's rt comes first. xr (K,) receives rt (.) Ht-1 in xr[K-H:]; s keeps zt's sum and
    the h gate's input part between the passes (s, acc as in ``layer``). Plain twin:
    ``layer_numpy``."""
    H = base.shape[0]
    K = xh.shape[0]
    split = K - H
    ax, ah = _sums32(P, xh, 0, split, acc[0]), _sums32(P, xh, split, K, acc[1])
    for j in range(H):
        row = 3 * j
        s[0, j] = base[j, 0] + (ax[row] + ah[row])
        r = gru_reset(base[j, 1] + (ax[row + 1] + ah[row + 1]), None, True)
        s[1, j] = base[j, 2] + ax[row + 2]
        xr[split + j] = r * xh[split + j]
    ah = _sums32(P, xr, split, K, acc[1])
    for j in range(H):
        h[j] = gru_unit(s[0, j], NO_R, s[1, j], rbh[j] + ah[3 * j + 2], xh[split + j], None, 0,
                        True)


@njit(cache=True, fastmath=False)
def gru_layer8_reset_first(P, scale, xh, q, base, rbh, h, xr, qr, s, acc):
    """``gru_layer_reset_first`` on int8 panels; rt (.) Ht-1 is quantized on its own into qr
    (at the h columns). The h gate's recurrent rows take a second pass over the panels."""
    H = scale.shape[0]
    split = xh.shape[0] - H
    sx = quantize(xh, split, q)
    xq, kq = quads(split), P.shape[1]
    ax, ah = _sums8(P, q, 0, xq, acc[0]), _sums8(P, q, xq, kq, acc[1])
    for j in range(H):
        row = 3 * j
        s[0, j] = base[j, 0] + np.float32(ax[row] + ah[row]) * (scale[j, 0] * sx)
        r = gru_reset(base[j, 1] + np.float32(ax[row + 1] + ah[row + 1]) * (scale[j, 1] * sx),
                      None, True)
        s[1, j] = base[j, 2] + np.float32(ax[row + 2]) * (scale[j, 2] * sx)
        xr[split + j] = r * xh[split + j]
    sr = quantize(xr[split:], 0, qr[QUAD * xq:])
    ah = _sums8(P, qr, xq, kq, acc[1])
    for j in range(H):
        h_r = rbh[j] + np.float32(ah[3 * j + 2]) * (scale[j, 2] * sr)
        h[j] = gru_unit(s[0, j], NO_R, s[1, j], h_r, xh[split + j], None, 0, True)


# -- numpy twin -------------------------------------------------------------------------
def layer_numpy(cell, activation, M, x, h_prev, c_prev, base, rbh, linear_before_reset=1,
                scale=None):
    """Plain twin of ``layer`` (``scale`` None), ``layer8`` (int8 M and its row scales) and
    the GRU ``*_reset_first`` kernels (linear_before_reset 0): (h, c), c None but for LSTM."""
    inputs, recurrent = _products(M, scale, x, h_prev, cell)  # (H, G) each
    s = base + inputs
    if cell == LSTM:
        i, o, f, c = (s + recurrent).T
        c_new, h = lstm_unit_numpy(i, o, f, c, c_prev, 0, 0, 0, np.inf, 0)
        return h, c_new
    if cell == GRU:
        r = gru_reset_numpy(s[:, 1] + recurrent[:, 1], np.inf)
        if linear_before_reset:
            h_r = recurrent[:, 2] + rbh
        else:
            h_r = _product(M[:, 2, x.size:], None if scale is None else scale[:, 2],
                           r * h_prev) + rbh
        return gru_unit_numpy(s[:, 0] + recurrent[:, 0], r, s[:, 2], h_r, h_prev, np.inf,
                              linear_before_reset), None
    return rnn_unit_numpy(s[:, 0] + recurrent[:, 0], activation, np.inf), None


def _products(M, scale, x, h_prev, cell):
    """Input and recurrent parts of the gate sums, (H, G) each, without biases.

    int8: [x; h_prev] quantized with one scale, and one sum per gate as in the kernel,
    except the GRU h gate's two parts: so here too (the recurrent part is then zero).
    """
    if scale is None:
        return M[:, :, :x.size] @ x, M[:, :, x.size:] @ h_prev
    q, sx = quantize_numpy(np.concatenate([x, h_prev]))
    M = M.astype(np.int32)
    ax, ah = M[:, :, :x.size] @ q[:x.size], M[:, :, x.size:] @ q[x.size:]
    split = 2 if cell == GRU else GATES[cell]  # gates whose two parts are summed
    ax[:, :split] += ah[:, :split]
    ah[:, :split] = 0
    return ax.astype(np.float32) * (scale * sx), ah.astype(np.float32) * (scale * sx)


def _product(M, scale, v):
    """M (J, K) @ v (K,), or its int8 version with row scales (J,)."""
    if scale is None:
        return M @ v
    q, sv = quantize_numpy(v)
    return (M.astype(np.int32) @ q).astype(np.float32) * (scale * sv)
