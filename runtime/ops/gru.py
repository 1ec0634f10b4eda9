"""ONNX ``GRU`` (opset 14): a numba kernel, its plain numpy twin, and ``gru_reset`` and
``gru_unit``, the cell equations every GRU kernel of rnnedge runs (reference and fused).

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
    bias = Wb + Rb  # (D, 3H); Rbh stays out of it: rt may multiply it (linear_before_reset)
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
    Wb + Rb without Rbh, which Rb_h (D, H) holds.
    """
    seq_length, batch_size, _ = X.shape
    num_directions, _, hidden_size = initial_h.shape
    Y = np.zeros((seq_length, num_directions, batch_size, hidden_size), np.float32)
    Y_h = initial_h.copy()  # the running state H, updated in place
    gates = np.empty((num_directions, seq_length, batch_size, 3 * hidden_size), np.float32)
    recurrent = np.empty(3 * hidden_size, np.float32)  # Ht-1*(R^T), or (rt (.) Ht-1)*(Rh^T)
    reset = np.empty(hidden_size, np.float32)  # rt
    reset_h = np.empty(hidden_size, np.float32)  # rt (.) Ht-1
    for d in range(num_directions):
        common.project(X, WT[d], bias[d], gates[d])  # Xt*(W^T) + Wb + Rb: (T, N, 3H)
    for visit in common.schedule(sequence_lens, seq_length, num_directions, direction):
        d, t, b = visit[0], visit[1], visit[2]
        _cell(gates[d, t, b], RT[d], Rb_h[d], Y_h[d, b], recurrent, reset, reset_h, clip,
              linear_before_reset)
        Y[t, d, b, :] = Y_h[d, b]
    return Y, Y_h


@njit(cache=True, fastmath=False)
def _cell(g, RT, Rb_h, H, recurrent, reset, reset_h, clip, linear_before_reset):
    """One batch entry, one step: input projections g (3H, order z, r, h) -> H in place."""
    n = H.shape[0]
    g_z, g_r, g_h = g[:n], g[n:2 * n], g[2 * n:]
    recurrent[:] = 0.0
    # with linear_before_reset the h block needs Ht-1*(Rh^T); without, (rt (.) Ht-1)*(Rh^T)
    common.accumulate(H, RT, recurrent, 0, (3 if linear_before_reset else 2) * n)
    rec_z, rec_r, rec_h = recurrent[:n], recurrent[n:2 * n], recurrent[2 * n:]
    for j in range(n):
        reset[j] = gru_reset(g_r[j] + rec_r[j], clip)
        reset_h[j] = reset[j] * H[j]
    if not linear_before_reset:
        common.accumulate(reset_h, RT, recurrent, 2 * n, 3 * n)
    for j in range(n):
        H[j] = gru_unit(g_z[j] + rec_z[j], reset[j], g_h[j], rec_h[j] + Rb_h[j], H[j], clip,
                        linear_before_reset)


@njit(cache=True, fastmath=False, inline="always")  # inlined by numba: else a call per unit
def gru_reset(r, clip, approx=False):
    """The reset gate rt from its pre-activation Xt*(Wr^T) + Ht-1*(Rr^T) + Wbr + Rbr.

    Apart from ``gru_unit`` because without ``linear_before_reset`` the h gate needs every
    unit's rt before any ht. Plain twin: ``gru_reset_numpy``.
    """
    # rt = f(Xt*(Wr^T) + Ht-1*(Rr^T) + Wbr + Rbr)
    return common.activate(common.SIGMOID, common.gate(r, clip), approx)


@njit(cache=True, fastmath=False, inline="always")
def gru_unit(z, r, h_x, h_r, H_prev, clip, linear_before_reset, approx=False):
    """One unit, one step -> Ht, float32 scalars. z: Xt*(Wz^T) + Ht-1*(Rz^T) + Wbz + Rbz;
    r: rt from ``gru_reset``; h_x: Xt*(Wh^T) + Wbh; h_r: Ht-1*(Rh^T) + Rbh with
    ``linear_before_reset``, else (rt (.) Ht-1)*(Rh^T) + Rbh.

    The reference kernel above and every fused kernel (fused_layer.py) call this one
    function; the fused ones pass clip None (see ``common.gate``) and ``approx`` True
    (``common.exp_approx``). Plain twin: ``gru_unit_numpy``.
    """
    # zt = f(Xt*(Wz^T) + Ht-1*(Rz^T) + Wbz + Rbz)
    z = common.activate(common.SIGMOID, common.gate(z, clip), approx)
    # ht = g(Xt*(Wh^T) + rt (.) (Ht-1*(Rh^T) + Rbh) + Wbh)  # linear_before_reset != 0
    # ht = g(Xt*(Wh^T) + (rt (.) Ht-1)*(Rh^T) + Rbh + Wbh)  # linear_before_reset = 0
    h = h_x + (r * h_r if linear_before_reset else h_r)
    h = common.activate(common.TANH, common.gate(h, clip), approx)
    # Ht = (1 - zt) (.) ht + zt (.) Ht-1
    return (np.float32(1.0) - z) * h + z * H_prev


def gru_reset_numpy(r, clip):
    """Plain twin of ``gru_reset`` on arrays."""
    return common.sigmoid(np.clip(r, -clip, clip))


def gru_unit_numpy(z, r, h_x, h_r, H_prev, clip, linear_before_reset):
    """Plain twin of ``gru_unit`` on arrays (any shapes that broadcast)."""
    z = common.sigmoid(np.clip(z, -clip, clip))
    h = np.tanh(np.clip(h_x + (r * h_r if linear_before_reset else h_r), -clip, clip))
    return (1 - z) * h + z * H_prev


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
        r = gru_reset_numpy(X_t @ W_r.T + H @ R_r.T + Wb_r + Rb_r, clip)
        h_r = (H if linear_before_reset else r * H) @ R_h.T + Rb_h
        H_t = gru_unit_numpy(X_t @ W_z.T + H @ R_z.T + Wb_z + Rb_z, r, X_t @ W_h.T + Wb_h,
                             h_r, H, clip, linear_before_reset)
        Y[t[active], batch[active]] = H_t[active]
        H = np.where(active[:, None], H_t, H)
    return H
