"""Fused kernels of a chain of forward LSTM/GRU/RNN layers with a linear head, fp32 and int8.

One call runs a whole streaming model over its input (B, T): every layer, step by step,
then the head on every step's top output or on the last one, with the states updated in
place and no allocation inside the loop. ``pack`` puts the weights that
``fast_chain.py`` reads from an ONNX graph into the layout of fused_layer.py, whose
``layer``/``layer8`` (and the GRU ``*_reset_first`` kernels for linear_before_reset=0)
run each layer:

* layer 0 reads frames X (B, T, F): ``M0`` (H, G, F + H) is [W | R] per unit and gate,
  its biases in ``bias[0]``; or token ids (B, T): ``table`` (V, H, G) holds embedding @
  W0^T + biases, so its input projection is a row gather, and ``M0`` (H, G, H) is R
  alone (then X is (B, T, 0)). Frames pass an empty ``table`` (0, H, G).
* ``Mup`` (L-1, H, G, 2H): [W | R] of the layers above; ``bias`` (L, H, G) Wb + Rb with
  GRU's Rbh apart in ``rbh`` (L, H).
* the head ``fc`` (C, H), ``fc_bias`` (C,): into y (B, T, C) when ``every``, else into
  y (B, 1, C) after the last step.

int8 (``run8``, ``arguments(..., quantize=True)``): M0, Mup and fc as int8 with one float32
scale per row (``*_scale``), in the row panels of panels.py (M0 split F, Mup split H, fc
split H). Batch rows run one after
another. The cell equations are the operators' own (through fused_layer.py); not a graph
reader: fast_chain.py is.

Every kernel has a plain numpy twin with the same signature (``run_numpy``,
``run8_numpy``). numba's cache does not notice when a helper from another file changes
under these kernels: after editing one, delete ``runtime/ops/__pycache__``.
"""

import numpy as np
from numba import njit

from ..errors import UnsupportedError
from .common import GATES, GRU, LSTM, f32, first_bad, input_bias
from .fused_layer import (copy, gru_layer8_reset_first, gru_layer_reset_first, layer,
                          layer8, layer_numpy, scratch)
from .panels import (output8, output_f32, pack_rows, panels, quantize_numpy, quantize_rows,
                     rows_of, unpanel, width)

NO_STATE = np.zeros((0, 0, 0), np.float32)  # c of a GRU or RNN: never read by the kernels


def pack(cell, activation, lbr, layers, embedding, fc, fc_bias):
    """fp32 arguments of ``run`` after ``every``: (cell, activation, lbr, table, M0, Mup,
    bias, rbh, fc, fc_bias) from ONNX-layout layers [(W (G*H, I), R (G*H, H), B (2*G*H,))],
    an embedding (V, E) or None for frames, and the head fc (C, H), fc_bias (C,)."""
    G = GATES[cell]
    H = layers[0][1].shape[1]
    for i, (W, R, B) in enumerate(layers):
        if R.shape != (G * H, H) or W.shape[0] != G * H or (i and W.shape[1] != H):
            raise UnsupportedError(f"fast chain engine: layer {i} has W {W.shape}, R {R.shape};"
                                   f" expected ({G * H}, {'I' if i == 0 else H}), ({G * H}, {H})")
    if fc.shape[1] != H or fc_bias.shape != fc.shape[:1]:
        raise UnsupportedError(f"fast chain engine: the head has weight {fc.shape} and bias "
                               f"{fc_bias.shape} over {H} units")
    by_unit = lambda a: a.reshape(G, H, *a.shape[1:]).swapaxes(0, 1)  # (G*H, ...) -> (H, G, ...)
    bias = [input_bias(cell, B, H) for _, _, B in layers]  # (G*H,) each
    W0, R0, _ = layers[0]
    if embedding is None:
        table, M0 = np.zeros((0, H, G)), by_unit(np.concatenate([W0, R0], axis=1))
    else:  # layer 0's input projection of every token, biases included: rounded once
        table = embedding.astype(np.float64) @ W0.T.astype(np.float64) + bias[0]
        table, M0 = table.reshape(-1, G, H).swapaxes(1, 2), by_unit(R0)  # (V, G*H) -> (V, H, G)
        bias[0] = np.zeros(G * H)
    Mup = [by_unit(np.concatenate([W, R], axis=1)) for W, R, _ in layers[1:]]
    rbh = [B[-H:] if cell == GRU else np.zeros(H) for _, _, B in layers]
    return (cell, activation, lbr, f32(table), f32(M0),
            f32(np.stack(Mup) if Mup else np.zeros((0, H, G, 2 * H))),
            f32(np.stack([by_unit(b) for b in bias])), f32(np.stack(rbh)), f32(fc), f32(fc_bias))



def panelled(packed):
    """``pack``'s arguments (rows) -> those of ``run``: M0, Mup, fc in panels (M0 split F,
    Mup split H, fc split H)."""
    cell, activation, lbr, table, M0, Mup, bias, rbh, fc, fc_bias = packed
    H, K0 = M0.shape[0], M0.shape[2]
    return (cell, activation, lbr, table, pack_rows(M0, K0 - H), pack_rows(Mup, H), bias, rbh,
            panels(fc, H), fc_bias)


def quantize_packed(packed):
    """``pack``'s arguments (rows) -> those of ``run8``: int8 M0, Mup, fc in panels with
    their row scales."""
    cell, activation, lbr, table, M0, Mup, bias, rbh, fc, fc_bias = packed
    (M0, M0_scale), (Mup, Mup_scale), (fc, fc_scale) = map(quantize_rows, (M0, Mup, fc))
    p = panelled((cell, activation, lbr, table, M0, Mup, bias, rbh, fc, fc_bias))
    return (*p[:5], M0_scale, p[5], Mup_scale, *p[6:9], fc_scale, p[9])


def work(packed):
    """Work buffers of both kernels: wh, wc (L, H); xs float32 [x0 (F + H) | x1 (2H) | r0 |
    r1]; qs int8 [q0 (n0) | q1 (n1) | qr0 | qr1] in the panels' column layouts; s, acc
    (``scratch``). One buffer of each type, sliced in the kernel: every argument costs the
    streamed call about 50 ns of dispatch."""
    L, H = packed[7].shape
    K0 = packed[4].shape[2]
    n0, n1 = width(K0 - H, K0), width(H, 2 * H)
    return (np.zeros((L, H), np.float32), np.zeros((L, H), np.float32),
            np.zeros(2 * (K0 + 2 * H), np.float32), np.zeros(2 * (n0 + n1), np.int8),
            *scratch(H, packed[6].shape[2]))


def arguments(packed, every, quantize=False):
    """The kernel's arguments after (X, tokens, h, c, y), from ``pack``'s: ``dims`` (every,
    cell, activation, lbr, n0, n1) as one int64 array, the weights (int8 with their row
    scales for ``run8`` when ``quantize``), the work buffers."""
    cell, activation, lbr, K0, H = *packed[:3], packed[4].shape[2], packed[7].shape[1]
    dims = np.array([every, cell, activation, lbr, width(K0 - H, K0), width(H, 2 * H)], np.int64)
    weights = quantize_packed(packed) if quantize else panelled(packed)
    return (dims, *weights[3:], *work(packed))


# -- numba ------------------------------------------------------------------------------
@njit(cache=True, fastmath=False)
def _rows(cell, h, c, b, wh, wc, load):
    """Batch row b of the states (L, B, H) into the work rows wh, wc (L, H), or back."""
    for i in range(h.shape[0]):
        if load:
            copy(h[i, b], wh[i], 0)
        else:
            copy(wh[i], h[i, b], 0)
        if cell == LSTM:
            if load:
                copy(c[i, b], wc[i], 0)
            else:
                copy(wc[i], c[i, b], 0)


@njit(cache=True, fastmath=False)
def _layer(cell, activation, lbr, M, xh, base, rbh, h, c, xr, s, acc):
    if cell == GRU and lbr == 0:
        gru_layer_reset_first(M, xh, base, rbh, h, xr, s, acc)
    else:
        layer(cell, activation, M, xh, base, rbh, h, c, s, acc)


@njit(cache=True, fastmath=False)
def _layer8(cell, activation, lbr, M, scale, xh, q, base, rbh, h, c, xr, qr, s, acc):
    if cell == GRU and lbr == 0:
        gru_layer8_reset_first(M, scale, xh, q, base, rbh, h, xr, qr, s, acc)
    else:
        layer8(cell, activation, M, scale, xh, q, base, rbh, h, c, s, acc)


@njit(cache=True, fastmath=False)
def _slices(dims, K0, H, xs, qs):
    """x0, x1, r0, r1 of xs and q0, q1, qr0, qr1 of qs (``work``)."""
    n0, n1 = dims[4], dims[5]
    a, b = K0 + 2 * H, 2 * K0 + 2 * H
    return (xs[:K0], xs[K0:a], xs[a:b], xs[b:], qs[:n0], qs[n0:n0 + n1],
            qs[n0 + n1:2 * n0 + n1], qs[2 * n0 + n1:])


@njit(cache=True, fastmath=False)
def run(X, tokens, h, c, y, dims, table, M0, Mup, bias, rbh, fc, fc_bias, wh, wc, xs, qs, s,
        acc):
    """X (B, T, F), tokens (B, T) -> y; h and, for LSTM, c (L, B, H) updated in place. With
    token ids (a table) X is an empty (1, 1, 0) and (B, T) is tokens'.

    ``dims``: every, cell, activation, lbr, n0, n1 (``arguments``); work: wh, wc (L, H), xs,
    qs (``work``), s (4, H), acc. Returns -1, or the flat index of the first token outside
    the table (then nothing is computed). Plain twin: ``run_numpy``.
    """
    B, T = tokens.shape if table.shape[0] > 0 else X.shape[:2]  # ids: X is any (., ., 0)
    F = X.shape[2]
    L, H = wh.shape
    every, cell, activation, lbr = dims[0], dims[1], dims[2], dims[3]
    x0, x1, r0, r1, _, _, _, _ = _slices(dims, F + H, H, xs, qs)
    if table.shape[0] > 0:
        bad = first_bad(tokens, table.shape[0])
        if bad >= 0:
            return bad
    for b in range(B):
        _rows(cell, h, c, b, wh, wc, True)
        for t in range(T):
            if F > 0:  # token ids: X is an empty (1, 1, 0), not indexed
                copy(X[b, t], x0, 0)
            copy(wh[0], x0, F)  # x0 = [Xt; Ht-1]
            base = table[tokens[b, t]] if table.shape[0] > 0 else bias[0]
            _layer(cell, activation, lbr, M0, x0, base, rbh[0], wh[0], wc[0], r0, s, acc)
            for i in range(1, L):  # layer i reads [h of layer i - 1; its own h_prev]
                copy(wh[i - 1], x1, 0)
                copy(wh[i], x1, H)
                _layer(cell, activation, lbr, Mup[i - 1], x1, bias[i], rbh[i], wh[i], wc[i],
                       r1, s, acc)
            if every or t == T - 1:
                output_f32(fc, fc_bias, wh[L - 1], y[b, t if every else 0])
        _rows(cell, h, c, b, wh, wc, False)
    return -1


@njit(cache=True, fastmath=False)
def run8(X, tokens, h, c, y, dims, table, M0, M0_scale, Mup, Mup_scale, bias, rbh, fc, fc_scale,
         fc_bias, wh, wc, xs, qs, s, acc):
    """``run`` on int8 M0, Mup, fc with row scales (H, G), (L-1, H, G), (C,).
    Plain twin: ``run8_numpy``."""
    B, T = tokens.shape if table.shape[0] > 0 else X.shape[:2]  # ids: X is any (., ., 0)
    F = X.shape[2]
    L, H = wh.shape
    every, cell, activation, lbr = dims[0], dims[1], dims[2], dims[3]
    x0, x1, r0, r1, q0, q1, qr0, qr1 = _slices(dims, F + H, H, xs, qs)
    if table.shape[0] > 0:
        bad = first_bad(tokens, table.shape[0])
        if bad >= 0:
            return bad
    for b in range(B):
        _rows(cell, h, c, b, wh, wc, True)
        for t in range(T):
            if F > 0:
                copy(X[b, t], x0, 0)
            copy(wh[0], x0, F)
            base = table[tokens[b, t]] if table.shape[0] > 0 else bias[0]
            _layer8(cell, activation, lbr, M0, M0_scale, x0, q0, base, rbh[0], wh[0], wc[0],
                    r0, qr0, s, acc)
            for i in range(1, L):
                copy(wh[i - 1], x1, 0)
                copy(wh[i], x1, H)
                _layer8(cell, activation, lbr, Mup[i - 1], Mup_scale[i - 1], x1, q1, bias[i],
                        rbh[i], wh[i], wc[i], r1, qr1, s, acc)
            if every or t == T - 1:
                output8(fc, fc_scale, fc_bias, wh[L - 1], q1, y[b, t if every else 0])
        _rows(cell, h, c, b, wh, wc, False)
    return -1


# -- numpy twins ------------------------------------------------------------------------
def run_numpy(X, tokens, h, c, y, dims, table, M0, Mup, bias, rbh, fc, fc_bias, *work):
    """Plain twin of ``run``: numpy products per layer and step (``layer_numpy``) on the
    rows the panels hold."""
    every, cell, activation, lbr = (int(d) for d in dims[:4])
    (H, G), F = bias.shape[1:], X.shape[2]
    M0, Mup = rows_of(M0, H, G, F + H, F), rows_of(Mup, H, G, 2 * H, H)
    fc = unpanel(fc, fc_bias.shape[0], H, H)
    return _run_numpy(X, tokens, h, c, y, every, cell, activation, lbr, table,
                      (M0, None), [(M, None) for M in Mup], bias, rbh, (fc, None), fc_bias)


def run8_numpy(X, tokens, h, c, y, dims, table, M0, M0_scale, Mup, Mup_scale, bias, rbh, fc,
               fc_scale, fc_bias, *work):
    """Plain twin of ``run8``: the rows the panels hold."""
    every, cell, activation, lbr = (int(d) for d in dims[:4])
    (H, G), F = M0_scale.shape, X.shape[2]
    M0, Mup = rows_of(M0, H, G, F + H, F), rows_of(Mup, H, G, 2 * H, H)
    fc = unpanel(fc, fc_bias.shape[0], H, H)
    return _run_numpy(X, tokens, h, c, y, every, cell, activation, lbr, table,
                      (M0, M0_scale), list(zip(Mup, Mup_scale)), bias, rbh, (fc, fc_scale),
                      fc_bias)


def _run_numpy(X, tokens, h, c, y, every, cell, activation, lbr, table, first, above, bias,
               rbh, head, fc_bias):
    if table.shape[0]:
        bad = np.flatnonzero((tokens.ravel() < 0) | (tokens.ravel() >= table.shape[0]))
        if bad.size:
            return int(bad[0])
    B, T = tokens.shape if table.shape[0] else X.shape[:2]
    X = X if not table.shape[0] else np.zeros((B, T, 0), np.float32)
    for b, t in np.ndindex(B, T):
        for i, (M, scale) in enumerate([first] + above):
            x = X[b, t] if i == 0 else h[i - 1, b]
            base = table[tokens[b, t]] if i == 0 and table.shape[0] else bias[i]
            h[i, b], c_new = layer_numpy(cell, activation, M, x, h[i, b],
                                         c[i, b] if cell == LSTM else None, base, rbh[i], lbr,
                                         scale)
            if cell == LSTM:
                c[i, b] = c_new
        if every or t == T - 1:
            y[b, t if every else 0] = _head(*head, fc_bias, h[-1, b])
    return -1


def _head(fc, scale, fc_bias, v):
    """fc (C, H) @ v + fc_bias, or its int8 version with row scales (C,)."""
    if scale is None:
        return fc @ v + fc_bias
    q, sv = quantize_numpy(v)
    return fc_bias + (fc.astype(np.int32) @ q).astype(np.float32) * (scale * sv)
