"""ONNX ``LSTM`` (opset 14): a numba kernel, its plain numpy twin, and ``lstm_unit``, the
cell equations every LSTM kernel of rnnedge runs (this reference and the fused ones).

Implements https://onnx.ai/onnx/operators/onnx__LSTM.html with gate order i, o, f, c in
W, R and B, peepholes P in order i, o, f, ``clip``, ``input_forget``, ``sequence_lens`` and
both layouts. Only the default activations (Sigmoid, Tanh, Tanh) are implemented; any
other list raises ``UnsupportedError``. Reading the attributes of an ONNX node is
``reference.py``'s job, not this file's.

Both paths compute in float32, accumulating the products in float32 as onnxruntime (MLAS)
and PyTorch do: the summation-order difference stays well inside the FP32 tolerance,
and float32 halves the memory traffic and doubles the SIMD width of the inner loops.
"""

import numpy as np
from numba import njit

from . import common

DEFAULT_ACTIVATIONS = ("Sigmoid", "Tanh", "Tanh")


def _arguments(X, W, R, B, sequence_lens, initial_h, initial_c, P,
               hidden_size, direction, layout, clip, input_forget, activations):
    a = common.normalise("LSTM", 4, X, W, R, B, sequence_lens, initial_h,
                         hidden_size, direction, layout)
    num_directions = a.W.shape[0]
    common.check_default_activations("LSTM", activations, DEFAULT_ACTIVATIONS, num_directions)
    initial_c = common.state("LSTM", "initial_c", initial_c, a.initial_h.shape, layout)
    P = common.f32(common.param("LSTM", "P", P, (num_directions, 3 * hidden_size), a.X.shape))
    return (a, initial_c, P, common.clip_value("LSTM", clip),
            common.flag("LSTM", "input_forget", input_forget))


def lstm(X, W, R, B=None, sequence_lens=None, initial_h=None, initial_c=None, P=None, *,
         hidden_size, direction="forward", layout=0, clip=None, input_forget=0,
         activations=None):
    """ONNX LSTM -> (Y, Y_h, Y_c), float32; plain twin: ``lstm_numpy``.

    Layout 0: X (seq, batch, input), Y (seq, num_directions, batch, hidden), states
    (num_directions, batch, hidden); layout 1 puts batch first in all of them. Y is zero
    after each entry's ``sequence_lens``; Y_h and Y_c hold the state after its last real
    step (the initial state for a length of 0).
    """
    a, initial_c, P, clip, input_forget = _arguments(
        X, W, R, B, sequence_lens, initial_h, initial_c, P,
        hidden_size, direction, layout, clip, input_forget, activations)
    G = 4 * hidden_size
    bias = np.ascontiguousarray(a.B[:, :G] + a.B[:, G:])  # Wb + Rb: (num_directions, 4H)
    Y, Y_h, Y_c = _lstm_kernel(a.X, common.transposed(a.W), common.transposed(a.R), bias,
                               a.sequence_lens, a.initial_h, initial_c, P, clip,
                               input_forget, a.direction)
    return common.to_layout(a.layout, Y, Y_h, Y_c)


@njit(cache=True, fastmath=False)
def _lstm_kernel(X, WT, RT, bias, sequence_lens, initial_h, initial_c, P, clip,
                 input_forget, direction):
    """ONNX LSTM on layout-0 float32 arrays; plain twin: ``lstm_numpy``.

    WT (D, input, 4H) and RT (D, hidden, 4H) are W and R transposed; bias (D, 4H) is
    Wb + Rb. The input projection of every step is computed before the recurrence.
    """
    seq_length, batch_size, _ = X.shape
    num_directions, _, hidden_size = initial_h.shape
    Y = np.zeros((seq_length, num_directions, batch_size, hidden_size), np.float32)
    Y_h = initial_h.copy()  # the running state H, updated in place
    Y_c = initial_c.copy()  # the running cell state C
    gates = np.empty((num_directions, seq_length, batch_size, 4 * hidden_size), np.float32)
    for d in range(num_directions):
        common.project(X, WT[d], bias[d], gates[d])  # Xt*(W^T) + Wb + Rb: (T, N, 4H)
    for visit in common.schedule(sequence_lens, seq_length, num_directions, direction):
        d, t, b = visit[0], visit[1], visit[2]
        common.accumulate(Y_h[d, b], RT[d], gates[d, t, b], 0, 4 * hidden_size)  # + Ht-1*(R^T)
        _cell(gates[d, t, b], P[d], Y_c[d, b], Y_h[d, b], clip, input_forget)
        Y[t, d, b, :] = Y_h[d, b]
    return Y, Y_h, Y_c


@njit(cache=True, fastmath=False)
def _cell(g, P, C, H, clip, input_forget):
    """One batch entry, one step: pre-activations g (4H, order i, o, f, c) -> C, H in place."""
    n = H.shape[0]
    g_i, g_o, g_f, g_c = g[:n], g[n:2 * n], g[2 * n:3 * n], g[3 * n:]
    P_i, P_o, P_f = P[:n], P[n:2 * n], P[2 * n:]
    for j in range(n):
        C[j], H[j] = lstm_unit(g_i[j], g_o[j], g_f[j], g_c[j], C[j], P_i[j], P_o[j], P_f[j],
                               clip, input_forget)


@njit(cache=True, fastmath=False, inline="always")  # inlined by numba: else a call per unit
def lstm_unit(i, o, f, c, C_prev, P_i, P_o, P_f, clip, input_forget, approx=False):
    """One unit, one step: the gates' pre-activations without peepholes (Xt*(W^T) +
    Ht-1*(R^T) + Wb + Rb of gate i, o, f, c) and Ct-1 -> (Ct, Ht), float32 scalars.

    The reference kernel above and every fused kernel (fused_layer.py) call this one
    function; the fused ones pass None for the peepholes and the clip (see
    ``common.gate``), input_forget 0 and ``approx`` True (``common.exp_approx``, within
    1 ulp of e^x, for libm's expf). Plain twin: ``lstm_unit_numpy``.
    """
    # it = f(Xt*(Wi^T) + Ht-1*(Ri^T) + Pi (.) Ct-1 + Wbi + Rbi)
    i = common.activate(common.SIGMOID, common.gate(i, clip, P_i, C_prev), approx)
    # ft = f(Xt*(Wf^T) + Ht-1*(Rf^T) + Pf (.) Ct-1 + Wbf + Rbf), or 1 - it with input_forget
    if input_forget:
        f = np.float32(1.0) - i
    else:
        f = common.activate(common.SIGMOID, common.gate(f, clip, P_f, C_prev), approx)
    # ct = g(Xt*(Wc^T) + Ht-1*(Rc^T) + Wbc + Rbc)
    c = common.activate(common.TANH, common.gate(c, clip), approx)
    # Ct = ft (.) Ct-1 + it (.) ct
    C_t = f * C_prev + i * c
    # ot = f(Xt*(Wo^T) + Ht-1*(Ro^T) + Po (.) Ct + Wbo + Rbo)
    o = common.activate(common.SIGMOID, common.gate(o, clip, P_o, C_t), approx)
    # Ht = ot (.) h(Ct)
    return C_t, o * common.activate(common.TANH, C_t, approx)


def lstm_unit_numpy(i, o, f, c, C_prev, P_i, P_o, P_f, clip, input_forget):
    """Plain twin of ``lstm_unit`` on arrays (any shape that broadcasts): (Ct, Ht)."""
    i = common.sigmoid(np.clip(i + P_i * C_prev, -clip, clip))
    f = 1 - i if input_forget else common.sigmoid(np.clip(f + P_f * C_prev, -clip, clip))
    c = np.tanh(np.clip(c, -clip, clip))
    C_t = f * C_prev + i * c
    o = common.sigmoid(np.clip(o + P_o * C_t, -clip, clip))
    return C_t, o * np.tanh(C_t)


def lstm_numpy(X, W, R, B=None, sequence_lens=None, initial_h=None, initial_c=None, P=None, *,
               hidden_size, direction="forward", layout=0, clip=None, input_forget=0,
               activations=None):
    """Plain numpy twin of ``lstm``: the spec's equations, vectorised over the batch."""
    a, initial_c, P, clip, input_forget = _arguments(
        X, W, R, B, sequence_lens, initial_h, initial_c, P,
        hidden_size, direction, layout, clip, input_forget, activations)
    seq_length, batch_size, _ = a.X.shape
    num_directions = a.W.shape[0]
    Y = np.zeros((seq_length, num_directions, batch_size, hidden_size), np.float32)
    Y_h = np.empty_like(a.initial_h)
    Y_c = np.empty_like(a.initial_h)
    for d in range(num_directions):
        reverse = a.direction == common.REVERSE or d == 1
        Y_h[d], Y_c[d] = _direction_numpy(a, d, initial_c[d], P[d], clip, input_forget,
                                          reverse, Y[:, d])
    return common.to_layout(a.layout, Y, Y_h, Y_c)


def _direction_numpy(a, d, C, P, clip, input_forget, reverse, Y):
    """One direction; writes Y (T, N, H) and returns the final (H, C), each (N, H)."""
    Wb, Rb = np.split(a.B[d], 2)
    XW = a.X @ a.W[d].T + Wb + Rb  # (T, N, 4H)
    P_i, P_o, P_f = np.split(P, 3)
    H = a.initial_h[d]
    batch = np.arange(a.X.shape[1])
    for step in range(a.X.shape[0]):
        t, active = common.step_index(step, a.sequence_lens, reverse)
        i, o, f, c = np.split(XW[t, batch] + H @ a.R[d].T, 4, axis=1)  # each (N, H)
        C_t, H_t = lstm_unit_numpy(i, o, f, c, C, P_i, P_o, P_f, clip, input_forget)
        Y[t[active], batch[active]] = H_t[active]
        H = np.where(active[:, None], H_t, H)
        C = np.where(active[:, None], C_t, C)
    return H, C
