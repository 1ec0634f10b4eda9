"""Fused streaming kernels of a stacked LSTM/GRU/RNN character model, fp32 and int8.

One call runs a whole model over tokens (B, T): every layer and the output projection,
step by step, with the states updated in place and no allocation inside the loop. The
weights come packed (``rnnedge.runtime.fast`` does the packing from an ONNX graph):

* ``table`` (V, H, G): embedding @ W0^T + biases, so layer 0's input projection is a row
  gather; ``W0`` (H, G, H) holds layer 0's R alone.
* ``Wup`` (L-1, H, G, 2H): for layers above, row (j, g) is [W | R] of gate g, unit j
  (ONNX gate order i, o, f, c / z, r, h), so that the G gates of unit j are contiguous and
  one pass over them yields its pre-activations, followed at once by its cell update.
* ``bias`` (L, H, G): Wb + Rb (layer 0: zero, the table holds it); GRU's h gate keeps
  Rbh apart in ``rbh`` (L, H), since ``linear_before_reset=1`` applies it inside r * (...).
* ``fc`` (V, H), ``fc_bias`` (V,).

int8 (``Packed8``): the same layout with int8 weights and one symmetric scale per row
(``*_scale``, float32 scale = max|row| / 127). The input of each product, [x; h_prev] or
the last h, is quantized per step with one symmetric scale (max|v| / 127, round half to
even) into int16 holders of int8 values, so the weights are sign-extended once per load
and the activations once per step; products accumulate exactly in int32.

Every kernel has a plain numpy twin with the same signature (``*_numpy``) that reads the
same packed arrays; the tests check the kernels against them (KERNEL tolerance).
Recurrent equations as in ops/lstm.py, gru.py and rnn.py (ONNX operators, forward,
no clip, no peepholes). Batch rows run one after another through the batch-1 path.

numba's cache does not notice when ``common.activate`` changes under these kernels: after
editing ops/common.py, delete ``runtime/ops/__pycache__``.
"""

from typing import NamedTuple

import numpy as np
from numba import njit

from . import common

LSTM, GRU, RNN = 0, 1, 2
GATES = {LSTM: 4, GRU: 3, RNN: 1}
Q_MAX = 127


class Packed(NamedTuple):
    """fp32 weights of a char model in the fused layout (see the module docstring)."""

    cell: int           # LSTM, GRU or RNN
    activation: int     # RNN's common.TANH / RELU / SIGMOID; unused by LSTM and GRU
    table: np.ndarray   # (V, H, G)
    W0: np.ndarray      # (H, G, H)
    Wup: np.ndarray     # (L-1, H, G, 2H)
    bias: np.ndarray    # (L, H, G)
    rbh: np.ndarray     # (L, H)
    fc: np.ndarray      # (V, H)
    fc_bias: np.ndarray  # (V,)


class Packed8(NamedTuple):
    """int8 weights with per-row scales; ``table``, biases and ``rbh`` stay float32."""

    cell: int
    activation: int
    table: np.ndarray     # (V, H, G) float32
    W0: np.ndarray        # (H, G, H) int8
    W0_scale: np.ndarray  # (H, G)
    Wup: np.ndarray       # (L-1, H, G, 2H) int8
    Wup_scale: np.ndarray  # (L-1, H, G)
    bias: np.ndarray      # (L, H, G)
    rbh: np.ndarray       # (L, H)
    fc: np.ndarray        # (V, H) int8
    fc_scale: np.ndarray  # (V,)
    fc_bias: np.ndarray   # (V,)


def quantize_rows(w):
    """Symmetric per-row int8 of a float array (..., K) -> (int8 (..., K), scale (...,))."""
    scale = (np.abs(w).max(axis=-1) / Q_MAX).astype(np.float32)
    safe = np.where(scale > 0, scale, np.float32(1))
    return np.rint(w / safe[..., None]).astype(np.int8), scale


def quantize(p):
    """``Packed`` -> ``Packed8``."""
    W0, W0_scale = quantize_rows(p.W0)
    Wup, Wup_scale = quantize_rows(p.Wup)
    fc, fc_scale = quantize_rows(p.fc)
    return Packed8(p.cell, p.activation, p.table, W0, W0_scale, Wup, Wup_scale, p.bias, p.rbh,
                   fc, fc_scale, p.fc_bias)


class Work(NamedTuple):
    """Buffers one stream reuses on every step; ``work(p)`` sizes them."""

    h: np.ndarray   # (L, H) the state of the batch row being run
    c: np.ndarray   # (L, H)
    xh: np.ndarray  # (2H,) [x; h_prev] of the layer being run
    q: np.ndarray   # (2H,) int16, xh quantized (int8 only)


def work(p):
    L, H = p.rbh.shape
    return Work(np.empty((L, H), np.float32), np.empty((L, H), np.float32),
                np.empty(2 * H, np.float32), np.empty(2 * H, np.int16))


# -- numba ------------------------------------------------------------------------------
# fastmath is on in the dot products only, and only reassoc + contract: reassociation lets
# LLVM split the sum into SIMD partial sums (otherwise it is one serial chain of adds) and
# contract allows FMA. Not nnan/ninf: the sigmoid relies on exp overflowing to inf, and a
# NaN must come out as NaN. The int8 products need no flag: integer sums vectorise as is.
DOT_FLAGS = {"reassoc", "contract"}


@njit(cache=True, fastmath=DOT_FLAGS)
def _dot(A, row, x, lo, hi):
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
def _idot(A, row, q, lo, hi):
    """int8 A[row, lo:hi] . int16 q[lo:hi], summed exactly in int32 (|sum| <= 127^2 K).

    Indices as in ``_dot``. The casts keep the sum int32 (numba would widen it to int64),
    which LLVM turns into vpmaddwd on x86.
    """
    acc = np.int32(0)
    for k in range(lo, hi):
        u = np.uint64(k)
        acc = np.int32(acc + np.int32(A[row, u]) * np.int32(q[u]))
    return acc


@njit(cache=True, fastmath=False)
def _quantize(x, q):
    """x (K,) -> q (K,) int8 values in int16; returns the scale."""
    top = np.float32(0.0)
    for k in range(x.shape[0]):
        top = max(top, abs(x[k]))
    scale = top / np.float32(Q_MAX) if top > 0 else np.float32(1.0)
    for k in range(x.shape[0]):
        q[k] = np.int16(np.rint(x[k] / scale))
    return scale


@njit(cache=True, fastmath=False)
def _copy(src, dst, at):
    """dst[at:at + len(src)] = src, as a loop: numba's slice assignment carries a copy
    through a temporary array for the case where the two overlap."""
    for k in range(src.shape[0]):
        dst[at + k] = src[k]


@njit(cache=True, fastmath=False, inline="always")  # inlined by numba: else a call per unit
def _update(cell, activation, g0, g1, g2, g3, h_prev, j, h, c):
    """Unit j's cell from its pre-activations: LSTM i, o, f, c; GRU z, r, then the h gate's
    input part (with Wbh) and recurrent part (with Rbh); RNN g0 alone."""
    if cell == LSTM:
        i = common.activate(common.SIGMOID, g0)
        o = common.activate(common.SIGMOID, g1)
        f = common.activate(common.SIGMOID, g2)
        c[j] = f * c[j] + i * common.activate(common.TANH, g3)
        h[j] = o * common.activate(common.TANH, c[j])
    elif cell == GRU:
        z = common.activate(common.SIGMOID, g0)
        r = common.activate(common.SIGMOID, g1)
        n = common.activate(common.TANH, g2 + r * g3)
        h[j] = (np.float32(1.0) - z) * n + z * h_prev
    else:
        h[j] = common.activate(activation, g0)


@njit(cache=True, fastmath=False)
def _layer(cell, activation, M, xh, base, rbh, h, c):
    """One layer, one step: xh = [x; h_prev] (K,), M (H, G, K), base (H, G) -> h, c in place.

    Unit j's gate rows are adjacent in M, and its cell is updated as soon as they are
    summed: no buffer of pre-activations, and h_prev is read from xh, not from h.
    """
    H, G, K = M.shape
    A = M.reshape(H * G, K)  # row j * G + g: gate g of unit j
    split = K - H  # where h_prev starts in xh: 0 for layer 0
    g1 = g2 = g3 = np.float32(0.0)
    for j in range(H):
        row = j * G
        g0 = base[j, 0] + _dot(A, row, xh, 0, K)
        if cell == LSTM:
            g1 = base[j, 1] + _dot(A, row + 1, xh, 0, K)
            g2 = base[j, 2] + _dot(A, row + 2, xh, 0, K)
            g3 = base[j, 3] + _dot(A, row + 3, xh, 0, K)
        elif cell == GRU:
            g1 = base[j, 1] + _dot(A, row + 1, xh, 0, K)
            g2 = base[j, 2] + _dot(A, row + 2, xh, 0, split)
            g3 = rbh[j] + _dot(A, row + 2, xh, split, K)
        _update(cell, activation, g0, g1, g2, g3, xh[split + j], j, h, c)


@njit(cache=True, fastmath=False)
def _step(token, p, w, logits):
    """One token through every layer and the output layer; state in w.h, w.c."""
    L, H = w.h.shape
    _copy(w.h[0], w.xh, 0)
    _layer(p.cell, p.activation, p.W0, w.xh[:H], p.table[token], p.rbh[0], w.h[0], w.c[0])
    for layer in range(1, L):
        _copy(w.h[layer - 1], w.xh, 0)
        _copy(w.h[layer], w.xh, H)
        _layer(p.cell, p.activation, p.Wup[layer - 1], w.xh, p.bias[layer], p.rbh[layer],
               w.h[layer], w.c[layer])
    top = w.h[L - 1]
    for v in range(logits.shape[0]):
        logits[v] = p.fc_bias[v] + _dot(p.fc, v, top, 0, H)


@njit(cache=True, fastmath=False)
def _layer8(cell, activation, M, scale, xh, q, base, rbh, h, c):
    """``_layer`` with int8 M (H, G, K) and row scales (H, G); q (K,) is xh quantized here."""
    H, G, K = M.shape
    A = M.reshape(H * G, K)
    split = K - H
    sx = _quantize(xh, q)
    g1 = g2 = g3 = np.float32(0.0)
    for j in range(H):
        row = j * G
        g0 = base[j, 0] + np.float32(_idot(A, row, q, 0, K)) * (scale[j, 0] * sx)
        if cell == LSTM:
            g1 = base[j, 1] + np.float32(_idot(A, row + 1, q, 0, K)) * (scale[j, 1] * sx)
            g2 = base[j, 2] + np.float32(_idot(A, row + 2, q, 0, K)) * (scale[j, 2] * sx)
            g3 = base[j, 3] + np.float32(_idot(A, row + 3, q, 0, K)) * (scale[j, 3] * sx)
        elif cell == GRU:
            g1 = base[j, 1] + np.float32(_idot(A, row + 1, q, 0, K)) * (scale[j, 1] * sx)
            g2 = base[j, 2] + np.float32(_idot(A, row + 2, q, 0, split)) * (scale[j, 2] * sx)
            g3 = rbh[j] + np.float32(_idot(A, row + 2, q, split, K)) * (scale[j, 2] * sx)
        _update(cell, activation, g0, g1, g2, g3, xh[split + j], j, h, c)


@njit(cache=True, fastmath=False)
def _step8(token, p, w, logits):
    """``_step`` on int8 weights."""
    L, H = w.h.shape
    _copy(w.h[0], w.xh, 0)
    _layer8(p.cell, p.activation, p.W0, p.W0_scale, w.xh[:H], w.q[:H], p.table[token],
            p.rbh[0], w.h[0], w.c[0])
    for layer in range(1, L):
        _copy(w.h[layer - 1], w.xh, 0)
        _copy(w.h[layer], w.xh, H)
        _layer8(p.cell, p.activation, p.Wup[layer - 1], p.Wup_scale[layer - 1], w.xh, w.q,
                p.bias[layer], p.rbh[layer], w.h[layer], w.c[layer])
    sx = _quantize(w.h[L - 1], w.q[:H])
    for v in range(logits.shape[0]):
        logits[v] = p.fc_bias[v] + np.float32(_idot(p.fc, v, w.q, 0, H)) * (p.fc_scale[v] * sx)


@njit(cache=True, fastmath=False)
def _first_bad(tokens, vocab):
    """Flat index of the first token outside [0, vocab), or -1."""
    flat = tokens.ravel()
    for k in range(flat.size):
        if flat[k] < 0 or flat[k] >= vocab:
            return k
    return -1


@njit(cache=True, fastmath=False)
def run(tokens, h, c, logits, cell, activation, table, W0, Wup, bias, rbh, fc, fc_bias,
        wh, wc, xh, q):
    """tokens (B, T) -> logits (B, T, V); h and, for LSTM, c (L, B, H) updated in place.

    Call it as ``run(tokens, h, c, logits, *packed, *work)``: numba dispatches a call on
    plain arrays some microseconds faster than one on named tuples. Returns -1, or the
    flat index of the first token outside the vocabulary (then nothing is computed).
    Batch rows run one after another. Plain twin: ``run_numpy``.
    """
    p = Packed(cell, activation, table, W0, Wup, bias, rbh, fc, fc_bias)
    w = Work(wh, wc, xh, q)
    bad = _first_bad(tokens, table.shape[0])
    if bad >= 0:
        return bad
    for b in range(tokens.shape[0]):
        _load_row(cell, h, c, b, w)
        for t in range(tokens.shape[1]):
            _step(tokens[b, t], p, w, logits[b, t])
        _store_row(cell, h, c, b, w)
    return -1


@njit(cache=True, fastmath=False)
def run8(tokens, h, c, logits, cell, activation, table, W0, W0_scale, Wup, Wup_scale, bias,
         rbh, fc, fc_scale, fc_bias, wh, wc, xh, q):
    """``run`` on the fields of ``Packed8`` (a second entry point: numba cannot cache a
    kernel that takes the step function as an argument). Plain twin: ``run8_numpy``."""
    p = Packed8(cell, activation, table, W0, W0_scale, Wup, Wup_scale, bias, rbh, fc,
                fc_scale, fc_bias)
    w = Work(wh, wc, xh, q)
    bad = _first_bad(tokens, table.shape[0])
    if bad >= 0:
        return bad
    for b in range(tokens.shape[0]):
        _load_row(cell, h, c, b, w)
        for t in range(tokens.shape[1]):
            _step8(tokens[b, t], p, w, logits[b, t])
        _store_row(cell, h, c, b, w)
    return -1


@njit(cache=True, fastmath=False)
def _load_row(cell, h, c, b, w):
    for layer in range(h.shape[0]):
        _copy(h[layer, b], w.h[layer], 0)
        if cell == LSTM:
            _copy(c[layer, b], w.c[layer], 0)


@njit(cache=True, fastmath=False)
def _store_row(cell, h, c, b, w):
    for layer in range(h.shape[0]):
        _copy(w.h[layer], h[layer, b], 0)
        if cell == LSTM:
            _copy(w.c[layer], c[layer, b], 0)

# -- numpy twins ------------------------------------------------------------------------
def run_numpy(tokens, h, c, logits, *packed_and_work):
    """Plain twin of ``run``: the same packed arrays, numpy products per layer and step."""
    p = Packed(*packed_and_work[:len(Packed._fields)])
    return _run_numpy(tokens, p, h, c, logits, _products, _output)


def run8_numpy(tokens, h, c, logits, *packed_and_work):
    """Plain twin of ``run8``."""
    p = Packed8(*packed_and_work[:len(Packed8._fields)])
    return _run_numpy(tokens, p, h, c, logits, _products8, _output8)


def _run_numpy(tokens, p, h, c, logits, products, output):
    flat = tokens.ravel()
    bad = np.flatnonzero((flat < 0) | (flat >= p.table.shape[0]))
    if bad.size:
        return int(bad[0])
    L = h.shape[0]
    for b, t in np.ndindex(*tokens.shape):
        for layer in range(L):
            x = h[layer - 1, b] if layer else np.zeros(0, np.float32)  # layer 0: in the table
            base = p.table[tokens[b, t]] if layer == 0 else p.bias[layer]  # (H, G)
            gx, gh = products(p, layer, x, h[layer, b])  # (H, G) each
            h[layer, b], c_new = _cell_numpy(p, base + gx, gh, p.rbh[layer], h[layer, b],
                                             c[layer, b] if p.cell == LSTM else None)
            if p.cell == LSTM:
                c[layer, b] = c_new
        logits[b, t] = output(p, h[L - 1, b])
    return -1


def _cell_numpy(p, gx, gh, rbh, h_prev, c_prev):
    """(h, c) of a layer from the input part gx (with biases) and recurrent part gh (H, G)."""
    if p.cell == LSTM:
        i, o, f, g = (gx + gh).T
        c = common.sigmoid(f) * c_prev + common.sigmoid(i) * np.tanh(g)
        return common.sigmoid(o) * np.tanh(c), c
    if p.cell == GRU:
        z, r = common.sigmoid(gx[:, 0] + gh[:, 0]), common.sigmoid(gx[:, 1] + gh[:, 1])
        n = np.tanh(gx[:, 2] + r * (gh[:, 2] + rbh))
        return (1 - z) * n + z * h_prev, None
    return common.NUMPY_ACTIVATIONS[p.activation](gx[:, 0] + gh[:, 0]), None


def _products(p, layer, x, h_prev):
    """Input and recurrent parts of the pre-activations, (H, G) each."""
    M = p.W0 if layer == 0 else p.Wup[layer - 1]  # (H, G, K)
    return M[:, :, :x.size] @ x, M[:, :, x.size:] @ h_prev


def _output(p, h):
    return p.fc @ h + p.fc_bias


def _products8(p, layer, x, h_prev):
    """As ``_products`` with int32 sums of int8 weights and [x; h_prev] quantized.

    The kernel scales one sum per gate, except the GRU h gate's two parts: so here too.
    """
    M = (p.W0 if layer == 0 else p.Wup[layer - 1]).astype(np.int32)
    q, sx = _quantize_numpy(np.concatenate([x, h_prev]))
    scale = (p.W0_scale if layer == 0 else p.Wup_scale[layer - 1]) * sx  # (H, G)
    ax, ah = M[:, :, :x.size] @ q[:x.size], M[:, :, x.size:] @ q[x.size:]
    split = 2 if p.cell == GRU else GATES[p.cell]  # gates whose two parts are summed
    ax[:, :split] += ah[:, :split]
    ah[:, :split] = 0
    return ax.astype(np.float32) * scale, ah.astype(np.float32) * scale


def _output8(p, h):
    q, sx = _quantize_numpy(h)
    return p.fc_bias + (p.fc.astype(np.int32) @ q).astype(np.float32) * (p.fc_scale * sx)


def _quantize_numpy(x):
    top = np.abs(x).max()
    scale = top / np.float32(Q_MAX) if top > 0 else np.float32(1)
    return np.rint(x / scale).astype(np.int32), scale
