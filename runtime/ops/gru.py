"""ONNX ``GRU`` (opset 14): a numba kernel and its plain numpy twin.

Implements https://onnx.ai/onnx/operators/onnx__GRU.html with gate order z, r, h in W, R
and B, ``linear_before_reset`` 0 and 1 (PyTorch's GRU is 1), ``clip``, ``sequence_lens`` and
both layouts. Only the default activations (Sigmoid, Tanh) are implemented; any other
list raises ``UnsupportedError``. Reading an ONNX node is ``reference.py``'s job.

Products accumulate in float32, as in lstm.py and for the same reasons.
"""

import numpy as np
from numba import njit

from . import common

DEFAULT_ACTIVATIONS = ("Sigmoid", "Tanh")


def _arguments(X, W, R, B, sequence_lens, initial_h, hidden_size, direction, layout, clip,
               linear_before_reset, activations):
    a = common.normalise("GRU", 3, X, W, R, B, sequence_lens, initial_h,
                         hidden_size, direction, layout)
    common.check_default_activations("GRU", activations, DEFAULT_ACTIVATIONS, a.W.shape[0])
    return (a, common.clip_value("GRU", clip),
            common.flag("GRU", "linear_before_reset", linear_before_reset))


def gru(X, W, R, B=None, sequence_lens=None, initial_h=None, *, hidden_size,
        direction="forward", layout=0, clip=None, linear_before_reset=0, activations=None):
    """ONNX GRU -> (Y, Y_h), float32; plain twin: ``gru_numpy``.

    Shapes, layouts and ``sequence_lens`` handling as in ``lstm``.
    """
    a, clip, linear_before_reset = _arguments(
        X, W, R, B, sequence_lens, initial_h, hidden_size, direction, layout, clip,
        linear_before_reset, activations)
    G = 3 * hidden_size
    Wb, Rb = a.B[:, :G], a.B[:, G:]
    bias = Wb + Rb  # (D, 3H); Rbh stays out of it when it is applied after the reset
    if linear_before_reset:
        bias[:, 2 * hidden_size:] = Wb[:, 2 * hidden_size:]
    Rb_h = np.ascontiguousarray(Rb[:, 2 * hidden_size:])  # (D, H)
    Y, Y_h = _gru_kernel(a.X, common.transposed(a.W), common.transposed(a.R), bias, Rb_h,
                         a.sequence_lens, a.initial_h, clip, linear_before_reset, a.direction)
    return common.to_layout(a.layout, Y, Y_h)


@njit(cache=True, fastmath=False)
def _gru_kernel(X, WT, RT, bias, Rb_h, sequence_lens, initial_h, clip, linear_before_reset,
                direction):
    """ONNX GRU on layout-0 float32 arrays; plain twin: ``gru_numpy``.

    WT (D, input, 3H) and RT (D, hidden, 3H) are W and R transposed; bias (D, 3H) is
    Wb + Rb, without Rbh when ``linear_before_reset`` (then Rb_h (D, H) adds it inside).
    """
    seq_length, batch_size, _ = X.shape
    num_directions, _, hidden_size = initial_h.shape
    Y = np.zeros((seq_length, num_directions, batch_size, hidden_size), np.float32)
    Y_h = initial_h.copy()  # the running state H, updated in place
    gates = np.empty((seq_length, batch_size, 3 * hidden_size), np.float32)  # (T, N, 3H)
    recurrent = np.empty(3 * hidden_size, np.float32)  # H_{t-1} R^T, or (r . H_{t-1}) Rh^T
    reset_h = np.empty(hidden_size, np.float32)  # r . H_{t-1}
    for d in range(num_directions):
        common.project(X, WT[d], bias[d], gates)
        reverse = direction == common.REVERSE or d == 1
        for step in range(seq_length):
            for b in range(batch_size):
                if step < sequence_lens[b]:
                    t = sequence_lens[b] - 1 - step if reverse else step
                    _cell(gates[t, b], RT[d], Rb_h[d], Y_h[d, b], recurrent, reset_h, clip,
                          linear_before_reset)
                    Y[t, d, b, :] = Y_h[d, b]
    return Y, Y_h


@njit(cache=True, fastmath=False)
def _cell(g, RT, Rb_h, H, recurrent, reset_h, clip, linear_before_reset):
    """One batch entry, one step: input projections g (3H, order z, r, h) -> H in place."""
    n = H.shape[0]
    g_z, g_r, g_h = g[:n], g[n:2 * n], g[2 * n:]
    recurrent[:] = 0.0
    # with linear_before_reset the h block needs H_{t-1} Rh^T; without, (r . H_{t-1}) Rh^T
    common.accumulate(H, RT, recurrent, 0, (3 if linear_before_reset else 2) * n)
    rec_z, rec_r, rec_h = recurrent[:n], recurrent[n:2 * n], recurrent[2 * n:]
    for j in range(n):
        r = common.activate(common.SIGMOID, common.clamp(g_r[j] + rec_r[j], clip))
        if linear_before_reset:
            rec_h[j] = r * (rec_h[j] + Rb_h[j])
        else:
            reset_h[j] = r * H[j]
    if not linear_before_reset:
        common.accumulate(reset_h, RT, recurrent, 2 * n, 3 * n)
    for j in range(n):
        z = common.activate(common.SIGMOID, common.clamp(g_z[j] + rec_z[j], clip))
        h = common.activate(common.TANH, common.clamp(g_h[j] + rec_h[j], clip))
        H[j] = (np.float32(1.0) - z) * h + z * H[j]


def gru_numpy(X, W, R, B=None, sequence_lens=None, initial_h=None, *, hidden_size,
              direction="forward", layout=0, clip=None, linear_before_reset=0,
              activations=None):
    """Plain numpy twin of ``gru``: the spec's equations, vectorised over the batch."""
    a, clip, linear_before_reset = _arguments(
        X, W, R, B, sequence_lens, initial_h, hidden_size, direction, layout, clip,
        linear_before_reset, activations)
    seq_length, batch_size, _ = a.X.shape
    num_directions = a.W.shape[0]
    Y = np.zeros((seq_length, num_directions, batch_size, hidden_size), np.float32)
    Y_h = np.empty_like(a.initial_h)
    for d in range(num_directions):
        reverse = a.direction == common.REVERSE or d == 1
        Y_h[d] = _direction_numpy(a, d, clip, linear_before_reset, reverse, Y[:, d])
    return common.to_layout(a.layout, Y, Y_h)


def _direction_numpy(a, d, clip, linear_before_reset, reverse, Y):
    """One direction; writes Y (T, N, H) and returns the final H (N, H)."""
    W_z, W_r, W_h = np.split(a.W[d], 3)
    R_z, R_r, R_h = np.split(a.R[d], 3)
    Wb_z, Wb_r, Wb_h, Rb_z, Rb_r, Rb_h = np.split(a.B[d], 6)
    H = a.initial_h[d]
    batch = np.arange(a.X.shape[1])
    for step in range(a.X.shape[0]):
        t, active = common.step_index(step, a.sequence_lens, reverse)
        X_t = a.X[t, batch]  # (N, input)
        z = common.sigmoid(np.clip(X_t @ W_z.T + H @ R_z.T + Wb_z + Rb_z, -clip, clip))
        r = common.sigmoid(np.clip(X_t @ W_r.T + H @ R_r.T + Wb_r + Rb_r, -clip, clip))
        if linear_before_reset:
            h = X_t @ W_h.T + r * (H @ R_h.T + Rb_h) + Wb_h
        else:
            h = X_t @ W_h.T + (r * H) @ R_h.T + Rb_h + Wb_h
        h = np.tanh(np.clip(h, -clip, clip))
        H_t = (1 - z) * h + z * H
        Y[t[active], batch[active]] = H_t[active]
        H = np.where(active[:, None], H_t, H)
    return H
