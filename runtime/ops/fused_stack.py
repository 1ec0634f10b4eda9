"""The fused kernels of a whole recurrent stack, fp32 and int8: one numba call a run.

Every fused engine runs here (``fast_chain.py``: streaming chains, rnnedge's char model
among them; ``fast_seq.py``: classifiers with true lengths, bidirectional layers and
pooled heads). One call of ``run`` runs a batch (B, T), rows one after another: for each
row only its first ``n`` = min(lengths[b], T) steps (a streaming chain passes lengths above
T), each layer over time before the next (a bidirectional layer's reverse direction runs
over the valid steps backward, as the ONNX operators say, and the layer above reads [fwd;
bwd]), then the head. ``stream`` runs a forward chain time-major instead, each step
through every layer, the streamed call's order (fewer views a step), with the same bits. The weights are in the layout of fused_layer.py, whose ``layer``/``layer8``
(and the GRU ``*_reset_first`` kernels for linear_before_reset=0) run each step:

* layer 0 reads frames X (B, T, F), normalised as the graph does ((x - mean) / std,
  float32; a chain passes mean 0 and std 1, which leave every value as it is), with ``M0``
  (D, H, G, F + H) = [W | R] per direction, unit and gate; or token ids (B, T): ``table``
  (D, V, H, G) holds embedding @ W0^T + biases, so the input projection is a row gather,
  and ``M0`` (D, H, G, H) is R alone (X is then (., ., 0)).
* ``Mup`` (L-1, D, H, G, D*H + H): [W | R] of the layers above; ``bias`` (L, D, H, G)
  Wb + Rb with GRU's Rbh apart in ``rbh`` (L, D, H).
* the head (``HEADS``): a classifier's "last" (the final state of each top direction),
  "mean" or "max" over the valid outputs, continued from ``pooled`` (B, D*H) and ``seen``
  (B, 1) frames before this call as the streaming exports compute it (zeros: the
  whole-sequence answer, bit for bit: pooled + (sum - n * pooled) / (seen + n) is sum /
  n), through ``fc`` (C, D*H) rows in fp32, into y (B, 1, C); or a chain's "every" (the top
  output of every step into y (B, T, C)) and "final" (the last step's, into y (B, 1, C)),
  through ``fc`` in panels, int8 with the weights. ``probs`` (like y) receives the
  sigmoid (C = 1) or softmax of y when ``dims`` asks (``PROBS``).
* states h, c (L*D, B, H) start each row and receive its final states, in place.

int8 (``arguments(..., quantize=True)``): M0 and Mup are int8 with one float32 scale per
row (``M0_scale`` (D, H, G), ``Mup_scale`` (L-1, D, H, G); ones in fp32, unread), in the
row panels of panels.py (M0 split F, Mup split D*H); a classifier's token table in int8
with a scale per token row (``table_scale``), a chain's stays fp32.
Plain twin with the same signature: ``run_numpy``, in this file as kernel and twin are
one idea, read side by side. numba's cache does not notice when a helper from another file
changes under these kernels: then delete ``runtime/ops/__pycache__``.
"""

import numba
import numpy as np
from numba import get_thread_id, njit, prange, types
from numba.extending import overload

from ..errors import UnsupportedError
from ..feeds import copy_finite3
from .common import GATES, GRU, LSTM, f32, first_bad, input_bias
from .fused_layer import (copy, dot, gru_layer8_reset_first, gru_layer_reset_first, layer,
                          layer8, layer_numpy, scratch)
from .panels import (output8, output_f32, pack_rows, panels, quantize_numpy, quantize_rows,
                     quantize_table, rows_of, unpanel, width)
from .simd import flat

HEADS = {"last": 0, "mean": 1, "max": 2, "every": 3, "final": 4}
EVERY, FINAL = HEADS["every"], HEADS["final"]
PROBS = {"none": 0, "sigmoid": 1, "softmax": 2}
NO_STATE = np.zeros((0, 0, 0), np.float32)  # c of a GRU or RNN: never read by the kernels
NO_POOL = np.zeros((0, 0), np.float32)  # the pooled sums and counts a chain has not
NO_PROBS = np.zeros((0, 0, 0), np.float32)  # a chain's head gives logits alone
NOT_FINITE = -2  # ``run``'s code for a NaN or infinity in the frames or the given states


def pack(cell, activation, lbr, layers, embedding, mean, std, fc, fc_bias):
    """fp32 rows (cell, activation, lbr, mean, std, table, M0, M0_scale, Mup, Mup_scale,
    bias, rbh, fc, fc_bias, table_scale) from ONNX-layout layers [(W (D, G*H, I), R (D,
    G*H, H), B (D, 2*G*H))], an embedding (V, E) or None for frames with their mean and std
    (F,), and the head fc (C, D*H), fc_bias (C,); ``arguments`` makes the kernel's."""
    G, (D, _, H) = GATES[cell], layers[0][1].shape
    for i, (W, R, B) in enumerate(layers):
        if (R.shape != (D, G * H, H) or W.shape[:2] != (D, G * H) or B.shape != (D, 2 * G * H)
                or (i and W.shape[2] != D * H)):
            raise UnsupportedError(f"fast engine: layer {i} has W {W.shape}, R "
                                   f"{R.shape}, B {B.shape} for {D} direction(s) of {H} units")
    if fc.shape[1:] != (D * H,) or fc_bias.shape != fc.shape[:1]:
        raise UnsupportedError(f"fast engine: the head has weight {fc.shape} and "
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


def arguments(packed, head, quantize=False, clamp=False, probs="none", int8_table=True):
    """The kernel's arguments after (X, tokens, lengths, h, c, pooled, seen, y, probs):
    ``dims`` (head, quant, cell, activation, lbr, clamp, probs, n0, n1, rows) as one int64
    array, mean and std as ``norm`` (2, F), then the weights (``run``). ``int8_table``: a
    token table in int8 too when ``quantize`` (the classifiers' large vocabularies)."""
    (cell, activation, lbr, mean, std, table, M0, M0_scale, Mup, Mup_scale, bias, rbh, fc,
     fc_bias, table_scale) = packed
    D, H, G, K0 = M0.shape
    K1 = D * H + H
    fc_scale = np.ones(fc.shape[0], np.float32)
    if quantize:
        (M0, M0_scale), (Mup, Mup_scale) = quantize_rows(M0), quantize_rows(Mup)
        if table.shape[1] and int8_table:
            table, table_scale = quantize_table(table)
        if head in (EVERY, FINAL):
            fc, fc_scale = quantize_rows(fc)
    if head in (EVERY, FINAL):
        fc = panels(fc, fc.shape[1])
    dims = np.array([head, quantize, cell, activation, lbr, clamp, PROBS[probs],
                     width(K0 - H, K0), width(K1 - H, K1), scratch(H, G)[1].shape[1]], np.int64)
    norm = np.stack([mean, std]) if mean.size else np.zeros((2, 0), np.float32)
    return (dims, f32(norm), table, table_scale, pack_rows(M0, K0 - H), M0_scale,
            pack_rows(Mup, K1 - H), Mup_scale, bias, rbh, fc, fc_scale, fc_bias)


def work(packed, T):
    """Work buffers of ``run`` for up to T steps (``stream``'s too): one float32 array [wh,
    wc (H) | x0, r0 (K0) | x1, r1 (D*H + H) | feat (D*H) | ya, yb (T, D*H)] and one int8
    array [q0, qr0 (n0) | q1, qr1 (n1)] in the panels' column layouts, sliced in the
    kernels (every argument costs a call some tens of ns of dispatch), then s (4, H), acc
    (2, rows) (``fused_layer.scratch``) and tbuf (H, G), whole (a reshape costs more)."""
    D, H, G, K0 = packed[6].shape
    K1 = D * H + H
    n0, n1 = width(K0 - H, K0), width(D * H, K1)
    fixed = 2 * H + 2 * K0 + 2 * K1 + D * H
    return (np.zeros(fixed + 2 * T * D * H, np.float32), np.zeros(2 * (n0 + n1), np.int8),
            *scratch(H, G), np.zeros((H, G), np.float32))


def thread_work(packed, T, threads):
    """``work``'s buffers for ``run_threads``: each stacked, one per thread numba may run."""
    return tuple(np.ascontiguousarray(np.stack([w] * threads)) for w in work(packed, T))


class Calls:
    """An engine's calls of ``run``: its work buffers, grown to the longest sequence seen, and
    for several rows with ``threads`` above 1, ``run_threads`` on per-thread buffers (at most
    numba's thread count, the machine's cores unless ``NUMBA_NUM_THREADS`` says less).
    ``twin``: the plain numpy twin instead. Not thread-safe, as the engines."""

    def __init__(self, packed, threads=1, twin=False):
        self.packed, self.twin = packed, twin
        self.threads = max(1, min(threads, numba.config.NUMBA_NUM_THREADS))
        self.steps, self.work = 1, work(packed, 1)
        self.thread_steps, self.thread_work = 0, None

    def run(self, B, T, *inputs):
        """``run``'s code on ``inputs`` (its arguments before the work buffers)."""
        if self.threads > 1 and B > 1 and not self.twin:
            if self.thread_steps < T:
                self.thread_steps = T
                self.thread_work = thread_work(self.packed, T, numba.config.NUMBA_NUM_THREADS)
            numba.set_num_threads(min(self.threads, B))
            return run_threads(*inputs, *self.thread_work)
        if self.steps < T:
            self.steps, self.work = T, work(self.packed, T)
        return (run_numpy if self.twin else run)(*inputs, *self.work)


# -- numba ------------------------------------------------------------------------------
@njit(cache=True, fastmath=False)
def _vectors(work, qs, dims, D, H, K0):
    """wh, wc, x0, r0, x1, r1, feat and q0, qr0, q1, qr1: the views of ``work`` and ``qs``
    (see ``work``) before the steps."""
    K1, n0, n1 = D * H + H, dims[7], dims[8]
    a = 2 * H + 2 * K0
    b = a + 2 * K1
    q0, qr0 = qs[:n0], qs[n0:2 * n0]
    q1, qr1 = qs[2 * n0:2 * n0 + n1], qs[2 * n0 + n1:2 * n0 + 2 * n1]
    return (work[:H], work[H:2 * H], work[2 * H:2 * H + K0], work[2 * H + K0:a],
            work[a:a + K1], work[a + K1:b], work[b:b + D * H], q0, qr0, q1, qr1)


@njit(cache=True, fastmath=False)
def _steps(work, D, H, K0):
    """ya, yb (T, D*H): the rest of ``work``, each layer's outputs over time."""
    at = 2 * H + 2 * K0 + 2 * (D * H + H) + D * H
    T = (work.shape[0] - at) // (2 * D * H)
    return (work[at:at + T * D * H].reshape((T, D * H)),
            work[at + T * D * H:at + 2 * T * D * H].reshape((T, D * H)))


def step(cell, activation, lbr, M, scale, xh, q, base, rbh, h, c, xr, qr, s, acc):
    """One step of one layer direction as fused_layer.py runs it: int8 when M is int8
    panels, else fp32; the GRU ``*_reset_first`` kernels for linear_before_reset=0. numba
    only (an overload): a kernel compiled for int8 weights holds no fp32 step and the
    reverse, which the streamed step pays for in code size (about 10%)."""
    raise NotImplementedError("step runs in numba; the plain twin is layer_numpy")


@overload(step)
def _step(cell, activation, lbr, M, scale, xh, q, base, rbh, h, c, xr, qr, s, acc):
    if M.dtype == types.int8:
        def int8(cell, activation, lbr, M, scale, xh, q, base, rbh, h, c, xr, qr, s, acc):
            if cell == GRU and lbr == 0:
                gru_layer8_reset_first(M, scale, xh, q, base, rbh, h, xr, qr, s, acc)
            else:
                layer8(cell, activation, M, scale, xh, q, base, rbh, h, c, s, acc)
        return int8

    def fp32(cell, activation, lbr, M, scale, xh, q, base, rbh, h, c, xr, qr, s, acc):
        if cell == GRU and lbr == 0:
            gru_layer_reset_first(M, xh, base, rbh, h, xr, s, acc)
        else:
            layer(cell, activation, M, xh, base, rbh, h, c, s, acc)
    return fp32


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


def head_out(fc, fc_scale, fc_bias, v, q, out):
    """out (C,) = fc v + fc_bias: fc as rows (C, J) in fp32 (a classifier's head, row by
    row), or in panels, fp32 or int8 with row scales (a chain's). numba only (an overload);
    the plain twin is ``_head_numpy``."""
    raise NotImplementedError("head_out runs in numba; the plain twin is _head_numpy")


@overload(head_out, inline="always")
def _head_out(fc, fc_scale, fc_bias, v, q, out):
    if fc.ndim == 2:
        def rows(fc, fc_scale, fc_bias, v, q, out):
            for r in range(fc.shape[0]):
                out[r] = fc_bias[r] + dot(fc, r, v, 0, v.shape[0])
        return rows
    if fc.dtype == types.int8:
        return lambda fc, fc_scale, fc_bias, v, q, out: output8(fc, fc_scale, fc_bias, v, q, out)
    return lambda fc, fc_scale, fc_bias, v, q, out: output_f32(fc, fc_bias, v, out)


@njit(cache=True, fastmath=False)
def _row(X, tokens, b, n, h, c, cell, activation, lbr, norm, table, table_scale, M0,
         M0_scale, Mup, Mup_scale, bias, rbh, ya, yb, wh, wc, x0, r0, x1, r1, q0, qr0, q1, qr1,
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
                        x0[f] = (X[b, t, f] - norm[0, f]) / norm[1, f]
                else:  # [fwd; bwd] of the layer below
                    copy(yin[t], x1, 0)
                copy(wh, xh, at)  # then this direction's h_prev
                first = i == 0 and tab.shape[0] > 0
                base = token_row(tab, tsc, tokens[b, t], tbuf) if first else bi
                step(cell, activation, lbr, M, scale, xh, q, base, rb, wh, wc, xr, qr, s, acc)
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
    flat_ = tokens.ravel()
    for k in range(flat_.size):
        if flat_[k] < 0 or flat_[k] >= vocab:
            return B + k
    return -1


@njit(cache=True, fastmath=False)
def _probabilities(y, probs, sigmoid):
    """probs = sigmoid(y) (C = 1) or the softmax over C, in float32, for y (B, T, C)."""
    for b in range(y.shape[0]):
        for t in range(y.shape[1]):
            row, out = y[b, t], probs[b, t]
            if sigmoid:
                e = np.exp(-abs(row[0]))
                out[0] = np.float32(1.0) / (1 + e) if row[0] >= 0 else e / (1 + e)
                continue
            top = row.max()
            total = np.float32(0.0)
            for v in range(row.shape[0]):
                out[v] = np.exp(row[v] - top)
                total += out[v]
            for v in range(row.shape[0]):
                out[v] /= total


@njit(cache=True, fastmath=False)
def run(X, tokens, lengths, h0, c0, h, c, pooled, seen, y, probs, dims, norm, table,
        table_scale, M0, M0_scale, Mup, Mup_scale, bias, rbh, fc, fc_scale, fc_bias, work, qs,
        s, acc, tbuf):
    """X (B, T, F) or tokens (B, T) (X then (., ., 0)), lengths (B,) -> y (B, T or 1, C) and,
    when ``dims`` asks, probs (like y); h, c (L*D, B, H), pooled (B, D*H), seen (B, 1)
    updated in place. ``dims``, ``norm`` and the weights: ``arguments``; ``work``, ``qs``,
    s, acc, tbuf: ``work``. h0, c0 (like h, c, or empty): given states, copied into h, c and
    checked for NaN and infinity with the frames in one pass, the streamed call's check
    (``NOT_FINITE``).

    A row runs min(lengths[b], T) steps. Returns -1, ``NOT_FINITE``, or what ``_first_bad``
    says is out of range (then nothing is computed). Plain twin: ``run_numpy``; on several
    threads: ``run_threads``.
    """
    bad = _refused(X, tokens, lengths, h0, c0, h, c, dims, table)
    if bad != -1:
        return bad
    B = tokens.shape[0] if table.shape[1] > 0 else X.shape[0]
    for b in range(B):
        _case(b, X, tokens, lengths, h, c, pooled, seen, y, dims, norm, table, table_scale, M0,
              M0_scale, Mup, Mup_scale, bias, rbh, fc, fc_scale, fc_bias, work, qs, s, acc, tbuf)
    if dims[6]:
        _probabilities(y, probs, dims[6] == 1)
    return -1


@njit(cache=True, fastmath=False, parallel=True)
def run_threads(X, tokens, lengths, h0, c0, h, c, pooled, seen, y, probs, dims, norm, table,
                table_scale, M0, M0_scale, Mup, Mup_scale, bias, rbh, fc, fc_scale, fc_bias,
                works, qss, ss, accs, tbufs):
    """``run`` with the batch rows spread over numba's threads (``numba.set_num_threads``),
    each thread on its own work buffers (``thread_work``: ``work``'s, one per thread, by
    ``numba.get_thread_id``); every row's arithmetic is ``run``'s, so the same bits."""
    bad = _refused(X, tokens, lengths, h0, c0, h, c, dims, table)
    if bad != -1:
        return bad
    B = tokens.shape[0] if table.shape[1] > 0 else X.shape[0]
    for b in prange(B):
        k = get_thread_id()
        _case(b, X, tokens, lengths, h, c, pooled, seen, y, dims, norm, table, table_scale, M0,
              M0_scale, Mup, Mup_scale, bias, rbh, fc, fc_scale, fc_bias, works[k], qss[k],
              ss[k], accs[k], tbufs[k])
    if dims[6]:
        _probabilities(y, probs, dims[6] == 1)
    return -1


@njit(cache=True, fastmath=False)
def _refused(X, tokens, lengths, h0, c0, h, c, dims, table):
    """-1, or ``run``'s code for inputs it refuses: ``NOT_FINITE``, or ``_first_bad``'s."""
    if not copy_finite3(X, h0, c0, h, c):  # empty h0, c0: nothing copied
        return NOT_FINITE
    T = tokens.shape[1] if table.shape[1] > 0 else X.shape[1]
    return _first_bad(tokens, lengths, T, table.shape[1], dims[5])


@njit(cache=True, fastmath=False)
def _case(b, X, tokens, lengths, h, c, pooled, seen, y, dims, norm, table, table_scale, M0,
          M0_scale, Mup, Mup_scale, bias, rbh, fc, fc_scale, fc_bias, work, qs, s, acc, tbuf):
    """Batch row b through every layer and the head, on the work buffers given."""
    # dims[1] (int8) is the weights' dtype here: ``step`` and ``head_out`` read it from them
    head, cell, activation, lbr = dims[0], dims[2], dims[3], dims[4]
    D, H, _ = M0_scale.shape  # M0 may be int8 panels
    L = bias.shape[0]
    T = tokens.shape[1] if table.shape[1] > 0 else X.shape[1]
    K0 = X.shape[2] + H  # layer 0's [x | h]: X is (., ., 0) for token ids
    wh, wc, x0, r0, x1, r1, feat, q0, qr0, q1, qr1 = _vectors(work, qs, dims, D, H, K0)
    ya, yb = _steps(work, D, H, K0)
    n = min(lengths[b], T)
    top = _row(X, tokens, b, n, h, c, cell, activation, lbr, norm, table, table_scale, M0,
               M0_scale, Mup, Mup_scale, bias, rbh, ya, yb, wh, wc, x0, r0, x1, r1, q0, qr0, q1,
               qr1, s, acc, tbuf)
    if head == EVERY:
        for t in range(n):
            head_out(fc, fc_scale, fc_bias, top[t], q1, y[b, t])
        return
    if head == FINAL:
        head_out(fc, fc_scale, fc_bias, top[n - 1], q1, y[b, 0])
        return
    if head == 0:
        for d in range(D):
            copy(h[(L - 1) * D + d, b], feat, d * H)
    else:
        _pool(head, top, n, pooled[b], seen[b], feat)
    head_out(fc, fc_scale, fc_bias, feat, q1, y[b, 0])


@njit(cache=True, fastmath=False)
def stream(X, tokens, h0, c0, h, c, y, dims, norm, table, table_scale, M0, M0_scale, Mup,
           Mup_scale, bias, rbh, fc, fc_scale, fc_bias, work, qs, s, acc, tbuf):
    """``run`` of a forward stack (D = 1) with a chain's head (every or final) over every
    step of every row, time-major: each step through every layer. The same step and head
    functions, so the same bits; fewer views a step than ``run``'s layer-major order, which
    the streamed call (T = 1) pays for, where ``run`` gains over long sequences. Arguments:
    ``run``'s, without lengths, pooled, seen and probs. Plain twin: ``stream_numpy``."""
    if not copy_finite3(X, h0, c0, h, c):  # empty h0, c0: nothing copied
        return NOT_FINITE
    head, cell, activation, lbr = dims[0], dims[2], dims[3], dims[4]
    H, L, F, vocab = M0_scale.shape[1], bias.shape[0], X.shape[2], table.shape[1]
    B, T = tokens.shape if vocab > 0 else X.shape[:2]
    if vocab > 0:
        bad = first_bad(tokens, vocab)
        if bad >= 0:
            return B + bad  # ``run``'s code of a token
    wh, wc, x0, r0, x1, r1, _, q0, qr0, q1, qr1 = _vectors(work, qs, dims, 1, H, F + H)
    M, scale, tab, tsc = M0[0], M0_scale[0], table[0], table_scale[0]
    for b in range(B):
        for t in range(T):
            for i in range(L):
                copy(h[i, b], wh, 0)
                if cell == LSTM:
                    copy(c[i, b], wc, 0)
                if i == 0:
                    for f in range(F):
                        x0[f] = (X[b, t, f] - norm[0, f]) / norm[1, f]
                    copy(wh, x0, F)
                    base = token_row(tab, tsc, tokens[b, t], tbuf) if vocab > 0 else bias[0, 0]
                    step(cell, activation, lbr, M, scale, x0, q0, base, rbh[0, 0], wh, wc, r0,
                         qr0, s, acc)
                else:  # [h of the layer below, now; its own h_prev]
                    copy(h[i - 1, b], x1, 0)
                    copy(wh, x1, H)
                    step(cell, activation, lbr, Mup[i - 1, 0], Mup_scale[i - 1, 0], x1, q1,
                         bias[i, 0], rbh[i, 0], wh, wc, r1, qr1, s, acc)
                copy(wh, h[i, b], 0)
                if cell == LSTM:
                    copy(wc, c[i, b], 0)
            if head == EVERY or t == T - 1:
                head_out(fc, fc_scale, fc_bias, h[L - 1, b], q1, y[b, t if head == EVERY else 0])
    return -1


def stream_numpy(X, tokens, h0, c0, h, c, y, *rest):
    """Plain twin of ``stream``: ``run_numpy`` with every case's whole time."""
    B = tokens.shape[0] if rest[2].shape[1] else X.shape[0]
    return run_numpy(X, tokens, np.full(B, np.iinfo(np.int64).max), h0, c0, h, c, NO_POOL,
                     NO_POOL, y, NO_PROBS, *rest)


# -- numpy twin -------------------------------------------------------------------------
def run_numpy(X, tokens, lengths, h0, c0, h, c, pooled, seen, y, probs, dims, norm, table,
              table_scale, M0, M0_scale, Mup, Mup_scale, bias, rbh, fc, fc_scale, fc_bias,
              *work):
    """Plain twin of ``run``: numpy products per layer, direction and step (``layer_numpy``)
    on the rows the panels hold."""
    if not all(np.isfinite(a).all() for a in (X, h0, c0)):
        return NOT_FINITE
    for given, state in ((h0, h), (c0, c)):
        if given.size:
            state[...] = given
    head, quant, cell, activation, lbr, clamp, probs_of = (int(d) for d in dims[:7])
    (D, H, G), L = M0_scale.shape, bias.shape[0]
    vocab = table.shape[1]
    B, T = tokens.shape if vocab else X.shape[:2]
    F = 0 if vocab else X.shape[2]
    M0, Mup = rows_of(M0, H, G, F + H, F), rows_of(Mup, H, G, D * H + H, D * H)  # the rows
    if head in (EVERY, FINAL):
        fc = unpanel(fc, fc_bias.shape[0], D * H, D * H)
    bad = np.flatnonzero((lengths < 1) | ((lengths > T) & (not clamp)))
    if bad.size:
        return int(bad[0])
    bad = np.flatnonzero((tokens.ravel() < 0) | (tokens.ravel() >= vocab)) if vocab else []
    if len(bad):
        return B + int(bad[0])
    for b in range(B):
        n = int(min(lengths[b], T))
        out = (X[b, :n] - norm[0]) / norm[1] if not vocab else np.zeros((n, 0), np.float32)
        for i in range(L):
            ys = np.empty((n, D * H), np.float32)
            for d in range(D):
                M, scale = (M0[d], M0_scale[d]) if i == 0 else (Mup[i - 1, d], Mup_scale[i - 1, d])
                k = i * D + d
                for t in (range(n - 1, -1, -1) if d == 1 else range(n)):
                    base = (_token_row_numpy(table, table_scale, d, tokens[b, t])
                            if i == 0 and vocab else bias[i, d])
                    h[k, b], c_new = layer_numpy(cell, activation, M, out[t], h[k, b],
                                                 c[k, b] if cell == LSTM else None, base,
                                                 rbh[i, d], lbr, scale if quant else None)
                    if cell == LSTM:
                        c[k, b] = c_new
                    ys[t, d * H:(d + 1) * H] = h[k, b]
            out = ys
        head_of = lambda v: _head_numpy(fc, fc_scale if head in (EVERY, FINAL) and quant
                                        else None, fc_bias, v)
        if head == EVERY:
            for t in range(n):
                y[b, t] = head_of(out[t])
        elif head == FINAL:
            y[b, 0] = head_of(out[n - 1])
        else:
            y[b, 0] = head_of(_feature(head, out, h[(L - 1) * D:, b], pooled[b], seen[b]))
    if probs_of == 1:
        probs[:] = 1 / (1 + np.exp(-y.astype(np.float64)))
    elif probs_of == 2:
        e = np.exp(y - y.max(axis=-1, keepdims=True))
        probs[:] = e / e.sum(axis=-1, keepdims=True)
    return -1


def _head_numpy(fc, scale, fc_bias, v):
    """fc (C, J) @ v + fc_bias, or its int8 version with row scales (C,)."""
    if scale is None:
        return fc @ v + fc_bias
    q, sv = quantize_numpy(v)
    return fc_bias + (fc.astype(np.int32) @ q).astype(np.float32) * (scale * sv)


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
