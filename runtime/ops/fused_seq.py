"""Fused kernels of whole-sequence classifiers: recurrent layers stopped at each case's true
length (ONNX ``sequence_lens``), maybe bidirectional, a pooling head, a linear layer.

One call runs a batch (B, T), rows one after another: for each row only its first ``n`` =
min(lengths[b], T) steps, each layer over time before the next (a bidirectional layer's
reverse direction runs over the valid steps backward, as the ONNX operators say, and the
layer above reads [fwd; bwd]), then the head over the top layer's valid outputs and the
linear layer into ``logits`` (B, C). What fast_seq.py reads from the graph, in the layout
of fused_layer.py, whose ``layer``/``layer8`` (and the GRU ``*_reset_first`` kernels for
linear_before_reset=0) run each step:

* layer 0 reads raw frames X (B, T, F), normalised here as the graph does ((x - mean) /
  std, float32), with ``M0`` (D, H, G, F + H) = [W | R] per direction, unit and gate; or
  token ids (B, T): ``table`` (D, V, H, G) holds embedding @ W0^T + biases, so the input
  projection is a row gather and ``M0`` (D, H, G, H) is R alone (X is then (B, T, 0)).
* ``Mup`` (L-1, D, H, G, D*H + H): [W | R] of the layers above; ``bias`` (L, D, H, G)
  Wb + Rb with GRU's Rbh apart in ``rbh`` (L, D, H).
* ``head`` 0 "last" (the final state of each top direction), 1 "mean", 2 "max" over the
  valid outputs, continued from ``pooled`` (B, D*H) and ``seen`` (B, 1) frames before this
  call as the streaming exports compute it (zeros: the whole-sequence answer, bit for bit:
  pooled + (sum - n * pooled) / (seen + n) is sum / n). ``fc`` (C, D*H), ``fc_bias`` (C,),
  always fp32.
* states h, c (L*D, B, H) start each row and receive its final states, in place.

int8 (``quant``): M0 and Mup are int8 with one float32 scale per row (``M0_scale`` (D, H,
G), ``Mup_scale`` (L-1, D, H, G); ones in fp32, unread), in the row panels of panels.py
(M0 split F, Mup split D*H).
Plain twin with the same signature: ``run_numpy``. numba's cache does not notice when a
helper from another file changes under these kernels: then delete ``runtime/ops/__pycache__``.
"""

import numpy as np
from numba import njit, types
from numba.extending import overload

from ..errors import UnsupportedError
from .common import GATES, GRU, LSTM, f32, input_bias
from .fused_layer import (copy, dot, gru_layer8_reset_first, gru_layer_reset_first, layer,
                          layer8, layer_numpy, scratch)
from .panels import pack_rows, quantize_rows, quantize_table, rows_of, width
from .simd import flat

HEADS = {"last": 0, "mean": 1, "max": 2}


def pack(cell, activation, lbr, layers, embedding, mean, std, fc, fc_bias):
    """fp32 arguments of ``run`` after ``quant``: (cell, activation, lbr, mean, std, table,
    M0, M0_scale, Mup, Mup_scale, bias, rbh, fc, fc_bias) from ONNX-layout layers [(W (D,
    G*H, I), R (D, G*H, H), B (D, 2*G*H))], an embedding (V, E) or None for frames with
    their mean and std (F,), and the head fc (C, D*H), fc_bias (C,)."""
    G, (D, _, H) = GATES[cell], layers[0][1].shape
    for i, (W, R, B) in enumerate(layers):
        if (R.shape != (D, G * H, H) or W.shape[:2] != (D, G * H) or B.shape != (D, 2 * G * H)
                or (i and W.shape[2] != D * H)):
            raise UnsupportedError(f"fast sequence engine: layer {i} has W {W.shape}, R "
                                   f"{R.shape}, B {B.shape} for {D} direction(s) of {H} units")
    if fc.shape[1:] != (D * H,) or fc_bias.shape != fc.shape[:1]:
        raise UnsupportedError(f"fast sequence engine: the head has weight {fc.shape} and "
                               f"bias {fc_bias.shape} over {D * H} features")
    by_unit = lambda a: a.reshape(G, H, *a.shape[1:]).swapaxes(0, 1)  # (G*H, ...) -> (H, G, ...)
    bias = [[input_bias(cell, b, H) for b in B] for _, _, B in layers]  # (G*H,) each
    W0, R0, _ = layers[0]
    if embedding is None:
        table = np.zeros((D, 0, H, G))
        M0 = [by_unit(np.concatenate([W0[d], R0[d]], axis=1)) for d in range(D)]
    else:  # layer 0's input projection of every token, biases included: rounded once
        table = [(embedding.astype(np.float64) @ W0[d].T.astype(np.float64) + bias[0][d])
                 .reshape(-1, G, H).swapaxes(1, 2) for d in range(D)]  # (V, H, G) each
        M0, bias[0] = [by_unit(R0[d]) for d in range(D)], [np.zeros(G * H)] * D
        mean = std = np.zeros(0)
    Mup = [[by_unit(np.concatenate([W[d], R[d]], axis=1)) for d in range(D)]
           for W, R, _ in layers[1:]]
    Mup = np.stack(Mup) if Mup else np.zeros((0, D, H, G, D * H + H))
    rbh = [[b[-H:] if cell == GRU else np.zeros(H) for b in B] for _, _, B in layers]
    return (cell, activation, lbr, f32(mean), f32(std), f32(np.asarray(table)),
            f32(np.stack(M0)), np.ones((D, H, G), np.float32), f32(Mup),
            np.ones(Mup.shape[:4], np.float32),
            f32(np.array([[by_unit(b) for b in bs] for bs in bias])), f32(np.array(rbh)),
            f32(fc), f32(fc_bias), np.zeros((D, 0), np.float32))



def panelled(packed):
    """``pack``'s arguments (rows) -> those of ``run`` in fp32: M0, Mup in panels (M0 split
    F, Mup split D*H)."""
    (D, H, _, K0), K1 = packed[6].shape, packed[8].shape[-1]
    return (*packed[:6], pack_rows(packed[6], K0 - H), packed[7], pack_rows(packed[8], K1 - H),
            *packed[9:])


def quantize(packed):
    """``pack``'s arguments (rows) -> those of ``run`` with ``quant``: int8 M0, Mup in panels
    with their row scales."""
    (M0, M0_scale), (Mup, Mup_scale) = quantize_rows(packed[6]), quantize_rows(packed[8])
    table, table_scale = packed[5], packed[14]
    if table.shape[1]:  # token ids: the table in int8 too
        table, table_scale = quantize_table(table)
    return panelled((*packed[:5], table, M0, M0_scale, Mup, Mup_scale, *packed[10:14],
                     table_scale))


def work(packed, T):
    """Work buffers of ``run`` for T steps: ya, yb (T, D*H), wh, wc (H,), x0, r0 (K0,), x1,
    r1 (D*H + H,), q0, qr0, q1, qr1 their int8 twins in the panels' column layouts (int8
    holders: the AVX2 products take them), s (4, H), feat (D*H,), acc (2, rows)
    (``fused_layer.scratch``), tbuf (H, G) (a token's row of an int8 table, in fp32)."""
    D, H, G, K0 = packed[6].shape
    f, i8, K1 = np.float32, np.int8, D * H + H
    n0, n1 = width(K0 - H, K0), width(D * H, K1)  # the panels' column layouts
    s, acc = scratch(H, G)
    return (np.zeros((T, D * H), f), np.zeros((T, D * H), f), np.zeros(H, f), np.zeros(H, f),
            np.zeros(K0, f), np.zeros(K0, f), np.zeros(K1, f), np.zeros(K1, f),
            np.zeros(n0, i8), np.zeros(n0, i8), np.zeros(n1, i8), np.zeros(n1, i8), s,
            np.zeros(D * H, f), acc, np.zeros((H, G), f))


# -- numba ------------------------------------------------------------------------------
@njit(cache=True, fastmath=False)
def _step(quant, cell, activation, lbr, M, scale, xh, q, base, rbh, h, c, xr, qr, s, acc):
    """One step of one layer direction, fp32 or int8, as fused_layer.py runs it."""
    if quant:
        if cell == GRU and lbr == 0:
            gru_layer8_reset_first(M, scale, xh, q, base, rbh, h, xr, qr, s, acc)
        else:
            layer8(cell, activation, M, scale, xh, q, base, rbh, h, c, s, acc)
    elif cell == GRU and lbr == 0:
        gru_layer_reset_first(M, xh, base, rbh, h, xr, s, acc)
    else:
        layer(cell, activation, M, xh, base, rbh, h, c, s, acc)


@njit(cache=True, fastmath=False)
def _pool(head, y, n, pooled, seen, feat):
    """The head's feature (D*H,) from outputs y[:n] continued from pooled, seen (in place).
    Time in the outer loop: every feature's sum or max runs over t in order as before (the
    same bits), and the inner loop over features vectorises (by feature, 16 µs a review of
    210 steps; 128 features)."""
    nf = np.float32(n)
    after = seen[0] + nf
    J = feat.shape[0]
    for j in range(J):
        feat[j] = np.float32(0.0) if head == 1 else y[0, j]
    for t in range(0 if head == 1 else 1, n):
        row = y[t]
        if head == 1:
            for j in range(J):
                feat[j] += row[j]
        else:
            for j in range(J):
                feat[j] = max(feat[j], row[j])
    for j in range(J):
        if head == 1:
            feat[j] = pooled[j] + (feat[j] - nf * pooled[j]) / after
        elif after > nf:
            feat[j] = max(pooled[j], feat[j])
        pooled[j] = feat[j]
    seen[0] = after


def token_row(table, scale, token, out):
    """Layer 0's input sums of ``token`` (H, G): the fp32 table's row itself, or the int8
    table's row times its scale, into ``out``. Plain twin: ``_token_row_numpy``."""
    return _token_row_numpy(table[None], scale[None], 0, token)


@overload(token_row, inline="always")
def _token_row(table, scale, token, out):
    if table.dtype != types.int8:
        return lambda table, scale, token, out: table[token]

    def dequantized(table, scale, token, out):
        H, G = out.shape
        row, into, factor = flat(table[token]), flat(out), scale[token]
        for k in range(H * G):
            into[k] = np.float32(row[k]) * factor
        return out
    return dequantized


def _token_row_numpy(table, scale, d, token):
    """Plain twin of ``token_row`` on direction d of the tables (D, V, H, G)."""
    if table.dtype != np.int8:
        return table[d, token]
    return table[d, token].astype(np.float32) * scale[d, token]


@njit(cache=True, fastmath=False)
def _row(X, tokens, b, n, h, c, quant, cell, activation, lbr, mean, std, table, M0, M0_scale,
         Mup, Mup_scale, bias, rbh, table_scale, ya, yb, wh, wc, x0, r0, x1, r1, q0, qr0, q1, qr1,
         s, acc, tbuf):
    """Every layer of batch row b over its n valid steps; returns the top layer's outputs."""
    D, H, _ = M0_scale.shape  # M0 may be int8 panels
    L, F = bias.shape[0], X.shape[2]
    yin, yout = yb, ya
    for i in range(L):
        for d in range(D):
            k = i * D + d
            copy(h[k, b], wh, 0)
            if cell == LSTM:
                copy(c[k, b], wc, 0)
            if i == 0:  # views taken once per pass, not per step
                M, scale, xh, q, xr, qr = M0[d], M0_scale[d], x0, q0, r0, qr0
            else:
                M, scale, xh, q, xr, qr = Mup[i - 1, d], Mup_scale[i - 1, d], x1, q1, r1, qr1
            tab, tsc, rb, bi = table[d], table_scale[d], rbh[i, d], bias[i, d]
            at = xh.shape[0] - H
            for u in range(n):
                t = n - 1 - u if d == 1 else u
                if i == 0:
                    for f in range(F):
                        x0[f] = (X[b, t, f] - mean[f]) / std[f]
                else:  # [fwd; bwd] of the layer below
                    copy(yin[t], x1, 0)
                copy(wh, xh, at)  # then this direction's h_prev
                first = i == 0 and tab.shape[0] > 0
                base = token_row(tab, tsc, tokens[b, t], tbuf) if first else bi
                _step(quant, cell, activation, lbr, M, scale, xh, q, base, rb, wh, wc, xr, qr, s,
                      acc)
                copy(wh, yout[t], d * H)
            copy(wh, h[k, b], 0)
            if cell == LSTM:
                copy(wc, c[k, b], 0)
        yin, yout = yout, yin
    return yin


@njit(cache=True, fastmath=False)
def _first_bad(tokens, lengths, T, vocab, clamp):
    """-1, or b when lengths[b] is outside [1, T] (above T is allowed with ``clamp``), or B +
    the flat index of the first token id outside [0, vocab)."""
    B = lengths.shape[0]
    for b in range(B):
        if lengths[b] < 1 or (lengths[b] > T and not clamp):
            return b
    flat = tokens.ravel()
    for k in range(flat.size):
        if flat[k] < 0 or flat[k] >= vocab:
            return B + k
    return -1


@njit(cache=True, fastmath=False)
def _probabilities(logits, probs, sigmoid):
    """probs (B, C) = sigmoid(logits) (C = 1) or the softmax over C, in float32."""
    for b in range(logits.shape[0]):
        row = logits[b]
        if sigmoid:
            e = np.exp(-abs(row[0]))
            probs[b, 0] = np.float32(1.0) / (1 + e) if row[0] >= 0 else e / (1 + e)
            continue
        top = row.max()
        total = np.float32(0.0)
        for v in range(row.shape[0]):
            probs[b, v] = np.exp(row[v] - top)
            total += probs[b, v]
        for v in range(row.shape[0]):
            probs[b, v] /= total


@njit(cache=True, fastmath=False)
def run(X, tokens, lengths, clamp, h, c, pooled, seen, logits, probs, head, quant, cell,
        activation, lbr, mean, std, table, M0, M0_scale, Mup, Mup_scale, bias, rbh, fc, fc_bias,
        table_scale, ya, yb, wh, wc, x0, r0, x1, r1, q0, qr0, q1, qr1, s, feat, acc, tbuf):
    """X (B, T, F) or tokens (B, T), lengths (B,) -> logits (B, C) and their sigmoid (C = 1)
    or softmax, probs; h, c (L*D, B, H), pooled (B, D*H), seen (B, 1) updated in place.

    A row runs min(lengths[b], T) steps. Returns -1, or what ``_first_bad`` says is out of
    range (then nothing is computed). Plain twin: ``run_numpy``.
    """
    D, H = M0_scale.shape[0], M0_scale.shape[1]  # M0 may be int8 panels
    L, T = bias.shape[0], X.shape[1]
    bad = _first_bad(tokens, lengths, T, table.shape[1], clamp)
    if bad >= 0:
        return bad
    for b in range(X.shape[0]):
        n = min(lengths[b], T)
        y = _row(X, tokens, b, n, h, c, quant, cell, activation, lbr, mean, std, table, M0,
                 M0_scale, Mup, Mup_scale, bias, rbh, table_scale, ya, yb, wh, wc, x0, r0, x1,
                 r1, q0, qr0, q1, qr1, s, acc, tbuf)
        if head == 0:
            for d in range(D):
                copy(h[(L - 1) * D + d, b], feat, d * H)
        else:
            _pool(head, y, n, pooled[b], seen[b], feat)
        for v in range(fc.shape[0]):
            logits[b, v] = fc_bias[v] + dot(fc, v, feat, 0, feat.shape[0])
    _probabilities(logits, probs, logits.shape[1] == 1)
    return -1


# -- numpy twin -------------------------------------------------------------------------
def run_numpy(X, tokens, lengths, clamp, h, c, pooled, seen, logits, probs, head, quant, cell,
              activation, lbr, mean, std, table, M0, M0_scale, Mup, Mup_scale, bias, rbh, fc,
              fc_bias, table_scale, *work):
    """Plain twin of ``run``: numpy products per layer, direction and step (``layer_numpy``)."""
    (D, H, G), L, (B, T, F) = M0_scale.shape, bias.shape[0], X.shape
    M0, Mup = rows_of(M0, H, G, F + H, F), rows_of(Mup, H, G, D * H + H, D * H)  # the rows
    bad = np.flatnonzero((lengths < 1) | ((lengths > T) & (not clamp)))
    if bad.size:
        return int(bad[0])
    bad = np.flatnonzero((tokens.ravel() < 0) | (tokens.ravel() >= table.shape[1]))
    if bad.size:
        return B + int(bad[0])
    for b in range(B):
        n = int(min(lengths[b], T))
        y = (X[b, :n] - mean) / std if table.shape[1] == 0 else np.zeros((n, 0), np.float32)
        for i in range(L):
            out = np.empty((n, D * H), np.float32)
            for d in range(D):
                M, scale = (M0[d], M0_scale[d]) if i == 0 else (Mup[i - 1, d], Mup_scale[i - 1, d])
                k = i * D + d
                for t in (range(n - 1, -1, -1) if d == 1 else range(n)):
                    base = (_token_row_numpy(table, table_scale, d, tokens[b, t])
                            if i == 0 and table.shape[1] else bias[i, d])
                    h[k, b], c_new = layer_numpy(cell, activation, M, y[t], h[k, b],
                                                 c[k, b] if cell == LSTM else None, base,
                                                 rbh[i, d], lbr, scale if quant else None)
                    if cell == LSTM:
                        c[k, b] = c_new
                    out[t, d * H:(d + 1) * H] = h[k, b]
            y = out
        logits[b] = fc @ _feature(head, y, h[(L - 1) * D:, b], pooled[b], seen[b]) + fc_bias
    if logits.shape[1] == 1:
        probs[:] = 1 / (1 + np.exp(-logits.astype(np.float64)))
    else:
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs[:] = e / e.sum(axis=1, keepdims=True)
    return -1


def _feature(head, y, top, pooled, seen):
    """Plain twin of the head: last (top (D, H) states), or mean / max continued in place."""
    if head == 0:
        return top.reshape(-1)
    n = np.float32(len(y))
    after = seen[0] + n
    if head == 1:
        feat = pooled + (y.sum(axis=0, dtype=np.float32) - n * pooled) / after
    else:
        feat = np.maximum(pooled, y.max(axis=0)) if after > n else y.max(axis=0)
    pooled[:], seen[0] = feat, after
    return feat.astype(np.float32)
