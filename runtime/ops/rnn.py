"""ONNX ``RNN`` (opset 14): a numba kernel and its plain numpy twin.

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
    gates = np.empty((seq_length, batch_size, hidden_size), np.float32)  # (T, N, H)
    for d in range(num_directions):
        common.project(X, WT[d], bias[d], gates)
        reverse = direction == common.REVERSE or d == 1
        for step in range(seq_length):
            for b in range(batch_size):
                if step < sequence_lens[b]:
                    t = sequence_lens[b] - 1 - step if reverse else step
                    g = gates[t, b]
                    common.accumulate(Y_h[d, b], RT[d], g, 0, hidden_size)
                    for j in range(hidden_size):
                        Y_h[d, b, j] = common.activate(activations[d], common.clamp(g[j], clip))
                    Y[t, d, b, :] = Y_h[d, b]
    return Y, Y_h


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
        f = common.NUMPY_ACTIVATIONS[codes[d]]
        reverse = a.direction == common.REVERSE or d == 1
        Wb, Rb = np.split(a.B[d], 2)
        H = a.initial_h[d]
        for step in range(seq_length):
            t, active = common.step_index(step, a.sequence_lens, reverse)
            H_t = f(np.clip(a.X[t, batch] @ a.W[d].T + H @ a.R[d].T + Wb + Rb, -clip, clip))
            Y[t[active], d, batch[active]] = H_t[active]
            H = np.where(active[:, None], H_t, H)
        Y_h[d] = H
    return common.to_layout(a.layout, Y, Y_h)
