"""Fused streaming kernels of a stacked LSTM/GRU/RNN character model, fp32 and int8.

One call runs a whole model over tokens (B, T): every layer and the output projection,
step by step, with the states updated in place and no allocation inside the loop. The
weights come packed (``rnnedge.runtime.fast`` does the packing from an ONNX graph) in
the layout of fused_layer.py, whose ``layer``/``layer8`` run each layer:

* ``table`` (V, H, G): embedding @ W0^T + biases, so layer 0's input projection is a row
  gather; ``W0`` (H, G, H) holds layer 0's R alone.
* ``Wup`` (L-1, H, G, 2H): for layers above, row (j, g) is [W | R] of gate g, unit j.
* ``bias`` (L, H, G): Wb + Rb (layer 0: zero, the table holds it); GRU's h gate keeps
  Rbh apart in ``rbh`` (L, H), since ``linear_before_reset=1`` applies it inside r * (...).
* ``fc`` (V, H), ``fc_bias`` (V,).

int8 (``Packed8``): the same weights as int8 with one symmetric scale per row
(``*_scale``), in the row panels of panels.py: ``W0`` split 0 (all recurrent), ``Wup``
split H ([x | h]), ``fc`` split H (all input).

Every kernel has a plain numpy twin with the same signature (``*_numpy``) that reads the
same packed arrays; the tests check the kernels against them (KERNEL tolerance).
Recurrent equations: the operators' own (ops/lstm.py, gru.py, rnn.py), forward, no clip,
no peepholes. Batch rows run one after another through the batch-1 path. Not a runner of
other graphs: fused_node.py runs any single LSTM/GRU/RNN node.

numba's cache does not notice when a helper from another file changes under these
kernels: after editing one, delete ``runtime/ops/__pycache__``.
"""

from typing import NamedTuple

import numpy as np
from numba import njit

from .common import LSTM, first_bad
from .fused_layer import copy, layer, layer8, layer_numpy, scratch
from .panels import (output8, output_f32, pack_rows, panels, quantize_numpy, quantize_rows,
                     rows_of, unpanel, width)


class Packed(NamedTuple):
    """fp32 weights of a char model in the fused layout (see the module docstring)."""

    cell: int           # LSTM, GRU or RNN
    activation: int     # RNN's activation code (ops/common.py); unused by LSTM, GRU
    table: np.ndarray   # (V, H, G)
    W0: np.ndarray      # (H, G, H); ``run`` takes it in panels (``panelled``)
    Wup: np.ndarray     # (L-1, H, G, 2H); in panels too
    bias: np.ndarray    # (L, H, G)
    rbh: np.ndarray     # (L, H)
    fc: np.ndarray      # (V, H); in panels too
    fc_bias: np.ndarray  # (V,)


class Packed8(NamedTuple):
    """int8 weights with per-row scales; ``table``, biases and ``rbh`` stay float32."""

    cell: int
    activation: int
    table: np.ndarray     # (V, H, G) float32
    W0: np.ndarray        # panels of (H, G, H) int8, split 0
    W0_scale: np.ndarray  # (H, G)
    Wup: np.ndarray       # (L-1, ...) panels of (H, G, 2H) int8, split H
    Wup_scale: np.ndarray  # (L-1, H, G)
    bias: np.ndarray      # (L, H, G)
    rbh: np.ndarray       # (L, H)
    fc: np.ndarray        # panels of (V, H) int8, split H
    fc_scale: np.ndarray  # (V,)
    fc_bias: np.ndarray   # (V,)


def panelled(p):
    """``Packed`` as ``pack`` gives it (rows) -> the same weights in panels, what ``run``
    takes (W0 split 0, Wup split H, fc split H)."""
    H = p.rbh.shape[1]
    return p._replace(W0=pack_rows(p.W0, 0), Wup=pack_rows(p.Wup, H), fc=panels(p.fc, H))


def quantize(p):
    """``Packed`` as ``pack`` gives it (rows) -> ``Packed8``: int8 rows, then ``panelled``."""
    (W0, W0_scale), (Wup, Wup_scale), (fc, fc_scale) = map(quantize_rows, (p.W0, p.Wup, p.fc))
    q = panelled(p._replace(W0=W0, Wup=Wup, fc=fc))
    return Packed8(p.cell, p.activation, p.table, q.W0, W0_scale, q.Wup, Wup_scale, p.bias,
                   p.rbh, q.fc, fc_scale, p.fc_bias)


class Work(NamedTuple):
    """Buffers one stream reuses on every step; ``work(p)`` sizes them."""

    h: np.ndarray   # (L, H) the state of the batch row being run
    c: np.ndarray   # (L, H)
    xh: np.ndarray  # (2H,) [x; h_prev] of the layer being run
    q: np.ndarray   # xh quantized (int8 only), in the panels' layout (``panels.width``)
    s: np.ndarray   # (4, H) and
    acc: np.ndarray  # (2, rows): ``fused_layer.scratch``


def work(p):
    L, H = p.rbh.shape
    return Work(np.empty((L, H), np.float32), np.empty((L, H), np.float32),
                np.empty(2 * H, np.float32), np.zeros(width(H, 2 * H), np.int8),
                *scratch(H, p.bias.shape[2]))


# -- numba ------------------------------------------------------------------------------
@njit(cache=True, fastmath=False)
def _step(token, p, w, logits):
    """One token through every layer and the output layer; state in w.h, w.c."""
    L, H = w.h.shape
    copy(w.h[0], w.xh, 0)
    layer(p.cell, p.activation, p.W0, w.xh[:H], p.table[token], p.rbh[0], w.h[0], w.c[0], w.s,
          w.acc)
    for i in range(1, L):  # layer i reads [h of layer i - 1; its own h_prev]
        copy(w.h[i - 1], w.xh, 0)
        copy(w.h[i], w.xh, H)
        layer(p.cell, p.activation, p.Wup[i - 1], w.xh, p.bias[i], p.rbh[i], w.h[i], w.c[i],
              w.s, w.acc)
    output_f32(p.fc, p.fc_bias, w.h[L - 1], logits)


@njit(cache=True, fastmath=False)
def _step8(token, p, w, logits):
    """``_step`` on int8 weights."""
    L, H = w.h.shape
    copy(w.h[0], w.xh, 0)
    layer8(p.cell, p.activation, p.W0, p.W0_scale, w.xh[:H], w.q, p.table[token],
           p.rbh[0], w.h[0], w.c[0], w.s, w.acc)
    for i in range(1, L):
        copy(w.h[i - 1], w.xh, 0)
        copy(w.h[i], w.xh, H)
        layer8(p.cell, p.activation, p.Wup[i - 1], p.Wup_scale[i - 1], w.xh, w.q, p.bias[i],
               p.rbh[i], w.h[i], w.c[i], w.s, w.acc)
    output8(p.fc, p.fc_scale, p.fc_bias, w.h[L - 1], w.q, logits)


@njit(cache=True, fastmath=False)
def run(tokens, h, c, logits, cell, activation, table, W0, Wup, bias, rbh, fc, fc_bias,
        wh, wc, xh, q, s, acc):
    """tokens (B, T) -> logits (B, T, V); h and, for LSTM, c (L, B, H) updated in place.

    Call it as ``run(tokens, h, c, logits, *packed, *work)``: numba dispatches a call on
    plain arrays some microseconds faster than one on named tuples. Returns -1, or the
    flat index of the first token outside the vocabulary (then nothing is computed).
    Batch rows run one after another. Plain twin: ``run_numpy``.
    """
    p = Packed(cell, activation, table, W0, Wup, bias, rbh, fc, fc_bias)
    w = Work(wh, wc, xh, q, s, acc)
    bad = first_bad(tokens, table.shape[0])
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
         rbh, fc, fc_scale, fc_bias, wh, wc, xh, q, s, acc):
    """``run`` on the fields of ``Packed8`` (a second entry point: numba cannot cache a
    kernel that takes the step function as an argument). Plain twin: ``run8_numpy``."""
    p = Packed8(cell, activation, table, W0, W0_scale, Wup, Wup_scale, bias, rbh, fc,
                fc_scale, fc_bias)
    w = Work(wh, wc, xh, q, s, acc)
    bad = first_bad(tokens, table.shape[0])
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
    for i in range(h.shape[0]):
        copy(h[i, b], w.h[i], 0)
        if cell == LSTM:
            copy(c[i, b], w.c[i], 0)


@njit(cache=True, fastmath=False)
def _store_row(cell, h, c, b, w):
    for i in range(h.shape[0]):
        copy(w.h[i], h[i, b], 0)
        if cell == LSTM:
            copy(w.c[i], c[i, b], 0)


# -- numpy twins ------------------------------------------------------------------------
def run_numpy(tokens, h, c, logits, *packed_and_work):
    """Plain twin of ``run``: the same packed arrays, numpy products per layer and step."""
    return _run_numpy(tokens, Packed(*packed_and_work[:len(Packed._fields)]), h, c, logits)


def run8_numpy(tokens, h, c, logits, *packed_and_work):
    """Plain twin of ``run8``."""
    return _run_numpy(tokens, Packed8(*packed_and_work[:len(Packed8._fields)]), h, c, logits)


def _run_numpy(tokens, p, h, c, logits):
    flat = tokens.ravel()
    bad = np.flatnonzero((flat < 0) | (flat >= p.table.shape[0]))
    if bad.size:
        return int(bad[0])
    int8 = isinstance(p, Packed8)
    L, H = h.shape[0], h.shape[2]
    G = p.bias.shape[2]  # the twin reads the rows the panels hold
    p = p._replace(W0=rows_of(p.W0, H, G, H, 0), Wup=rows_of(p.Wup, H, G, 2 * H, H),
                   fc=unpanel(p.fc, p.fc_bias.shape[0], H, H))
    for b, t in np.ndindex(*tokens.shape):
        for i in range(L):
            x = h[i - 1, b] if i else np.zeros(0, np.float32)  # layer 0: in the table
            base = p.table[tokens[b, t]] if i == 0 else p.bias[i]  # (H, G)
            M = p.W0 if i == 0 else p.Wup[i - 1]
            scale = (p.W0_scale if i == 0 else p.Wup_scale[i - 1]) if int8 else None
            h[i, b], c_new = layer_numpy(p.cell, p.activation, M, x, h[i, b],
                                         c[i, b] if p.cell == LSTM else None, base, p.rbh[i],
                                         scale=scale)
            if p.cell == LSTM:
                c[i, b] = c_new
        logits[b, t] = _output8(p, h[L - 1, b]) if int8 else p.fc @ h[L - 1, b] + p.fc_bias
    return -1


def _output8(p, h):
    q, sx = quantize_numpy(h)
    return p.fc_bias + (p.fc.astype(np.int32) @ q).astype(np.float32) * (p.fc_scale * sx)
