"""ONNX ``RNN`` (opset 14): a numba kernel, its plain numpy twin, and ``rnn_unit``, the
cell equation every RNN kernel of rnnedge runs (this reference and the fused ones).

Implements https://onnx.ai/onnx/operators/onnx__RNN.html: Ht = f(Xt Wi^T + Ht-1 Ri^T +
Wbi + Rbi) with f one of Tanh (the default), Relu or Sigmoid per direction, ``clip``,
``sequence_lens`` and both layouts. Other activations, and activations with alpha or beta,
raise ``UnsupportedError``. Reading an ONNX node is ``reference.py``'s job.

Products accumulate in float32, as in lstm.py and for the same reasons.
"""

import numpy as np
from numba import njit

from . import common


def _arguments(X, W, R, B, sequence_lens, initial_h, hidden_size, direction, layout, clip,
               activations):
    a = common.normalise("RNN", 1, X, W, R, B, sequence_lens, initial_h,
                         hidden_size, direction, layout)
    codes = common.activation_codes("RNN", activations, a.W.shape[0])
    return a, common.clip_value("RNN", clip), codes


def rnn(X, W, R, B=None, sequence_lens=None, initial_h=None, *, hidden_size,
        direction="forward", layout=0, clip=None, activations=None):
    """ONNX RNN -> (Y, Y_h), float32; plain twin: ``rnn_numpy``.

    Shapes, layouts and ``sequence_lens`` handling as in ``lstm``.
    """
    a, clip, codes = _arguments(X, W, R, B, sequence_lens, initial_h, hidden_size, direction,
                                layout, clip, activations)
    bias = np.ascontiguousarray(a.B[:, :hidden_size] + a.B[:, hidden_size:])  # Wbi + Rbi
    Y, Y_h = _rnn_kernel(a.X, common.transposed(a.W), common.transposed(a.R), bias,
                         a.sequence_lens, a.initial_h, clip, codes, a.direction)
    return common.to_layout(a.layout, Y, Y_h)


@njit(cache=True, fastmath=False)
def _rnn_kernel(X, WT, RT, bias, sequence_lens, initial_h, clip, activations, direction):
    """ONNX RNN on layout-0 float32 arrays; plain twin: ``rnn_numpy``.

    WT (D, input, H) and RT (D, hidden, H) are W and R transposed; bias (D, H) is
    Wbi + Rbi; activations (D,) holds one activation code per direction.
    """
    seq_length, batch_size, _ = X.shape
    num_directions, _, hidden_size = initial_h.shape
    Y = np.zeros((seq_length, num_directions, batch_size, hidden_size), np.float32)
    Y_h = initial_h.copy()  # the running state H, updated in place
    gates = np.empty((num_directions, seq_length, batch_size, hidden_size), np.float32)
    for d in range(num_directions):
        common.project(X, WT[d], bias[d], gates[d])  # Xt*(Wi^T) + Wbi + Rbi: (T, N, H)
    for visit in common.schedule(sequence_lens, seq_length, num_directions, direction):
        d, t, b = visit[0], visit[1], visit[2]
        g = gates[d, t, b]
        common.accumulate(Y_h[d, b], RT[d], g, 0, hidden_size)  # + Ht-1*(Ri^T)
        for j in range(hidden_size):
            Y_h[d, b, j] = rnn_unit(g[j], activations[d], clip)
        Y[t, d, b, :] = Y_h[d, b]
    return Y, Y_h


@njit(cache=True, fastmath=False, inline="always")  # inlined by numba: else a call per unit
def rnn_unit(pre, activation, clip, approx=False):
    """One unit, one step: Ht from its pre-activation Xt*(Wi^T) + Ht-1*(Ri^T) + Wbi + Rbi.

    The reference kernel above and every fused kernel (fused_layer.py) call this one
    function; the fused ones pass clip None (see ``common.gate``) and ``approx`` True
    (``common.exp_approx``). Plain twin: ``rnn_unit_numpy``.
    """
    # Ht = f(Xt*(Wi^T) + Ht-1*(Ri^T) + Wbi + Rbi)
    return common.activate(activation, common.gate(pre, clip), approx)


def rnn_unit_numpy(pre, activation, clip):
    """Plain twin of ``rnn_unit`` on arrays."""
    return common.NUMPY_ACTIVATIONS[activation](np.clip(pre, -clip, clip))


def rnn_numpy(X, W, R, B=None, sequence_lens=None, initial_h=None, *, hidden_size,
              direction="forward", layout=0, clip=None, activations=None):
    """Plain numpy twin of ``rnn``: the spec's equation, vectorised over the batch."""
    a, clip, codes = _arguments(X, W, R, B, sequence_lens, initial_h, hidden_size, direction,
                                layout, clip, activations)
    seq_length, batch_size, _ = a.X.shape
    num_directions = a.W.shape[0]
    Y = np.zeros((seq_length, num_directions, batch_size, hidden_size), np.float32)
    Y_h = np.empty_like(a.initial_h)
    batch = np.arange(batch_size)
    for d in range(num_directions):
        reverse = a.direction == common.REVERSE or d == 1
        Wb, Rb = np.split(a.B[d], 2)
        H = a.initial_h[d]
        for step in range(seq_length):
            t, active = common.step_index(step, a.sequence_lens, reverse)
            pre = a.X[t, batch] @ a.W[d].T + H @ a.R[d].T + Wb + Rb  # (N, H)
            H_t = rnn_unit_numpy(pre, codes[d], clip)
            Y[t[active], d, batch[active]] = H_t[active]
            H = np.where(active[:, None], H_t, H)
        Y_h[d] = H
    return common.to_layout(a.layout, Y, Y_h)
