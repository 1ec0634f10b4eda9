"""What LSTM, GRU and RNN share: argument checks, layouts, the one activation table, the
order of the recurrence, products.

Arguments are normalised once per call to layout 0 (time first), contiguous float32,
with the shapes checked against the ONNX spec; the results go back to the caller's
layout at the end. ``schedule`` is the loop skeleton of every numba kernel (reference and
fused): which (direction, time, batch) entry runs when, with ``sequence_lens`` applied.
The numba helpers below are the loops every kernel uses for its matrix products and gate
activations. Not an operator, and no cell equations: see lstm.py, gru.py, rnn.py.

numba's cache does not notice when a helper here changes under a kernel compiled from
another file: after editing this file, delete ``runtime/ops/__pycache__``.
"""

import weakref
from typing import NamedTuple

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

from ..errors import InputError, UnsupportedError

FORWARD, REVERSE, BIDIRECTIONAL = 0, 1, 2
DIRECTIONS = {"forward": FORWARD, "reverse": REVERSE, "bidirectional": BIDIRECTIONAL}
SIGMOID, TANH, RELU = 0, 1, 2  # activation codes, for ops and the fused kernels alike
ACTIVATIONS = {"sigmoid": SIGMOID, "tanh": TANH, "relu": RELU}
LSTM, GRU, RNN = 0, 1, 2  # cell codes of the fused kernels
GATES = {LSTM: 4, GRU: 3, RNN: 1}
NO_CLIP = np.float32(np.inf)


class Args(NamedTuple):
    """The inputs every recurrent operator takes, in layout 0 and float32."""

    X: np.ndarray              # (seq_length, batch_size, input_size)
    W: np.ndarray              # (num_directions, gates * hidden_size, input_size)
    R: np.ndarray              # (num_directions, gates * hidden_size, hidden_size)
    B: np.ndarray              # (num_directions, 2 * gates * hidden_size): Wb then Rb
    sequence_lens: np.ndarray  # (batch_size,) int32, each in [0, seq_length]
    initial_h: np.ndarray      # (num_directions, batch_size, hidden_size)
    direction: int             # FORWARD, REVERSE or BIDIRECTIONAL
    layout: int                # 0 or 1, as the caller gave the arrays


def f32(a):
    """Contiguous, writable float32 (numba compiles a second kernel for read-only arrays)."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    return a if a.flags.writeable else a.copy()


def normalise(op, gates, X, W, R, B, sequence_lens, initial_h, hidden_size, direction, layout):
    """Check the common inputs against each other and return them as ``Args``."""
    if direction not in DIRECTIONS:
        raise UnsupportedError(f"{op}: direction={direction!r} is not one of "
                               "'forward', 'reverse', 'bidirectional'")
    if layout not in (0, 1):
        raise UnsupportedError(f"{op}: layout={layout!r} is not 0 (time first) or 1 (batch first)")
    if not isinstance(hidden_size, (int, np.integer)) or hidden_size < 1:
        raise UnsupportedError(f"{op}: hidden_size={hidden_size!r}; expected a positive integer")
    X = np.asarray(X)
    if X.ndim != 3:
        raise InputError(f"{op}: X has shape {X.shape}; expected 3 dimensions")
    X = f32(X if layout == 0 else X.transpose(1, 0, 2))
    seq_length, batch_size, input_size = X.shape
    num_directions = 2 if direction == "bidirectional" else 1
    size = gates * hidden_size
    W = param(op, "W", W, (num_directions, size, input_size), X.shape)
    R = param(op, "R", R, (num_directions, size, hidden_size), X.shape)
    B = param(op, "B", B, (num_directions, 2 * size), X.shape)
    shape = (num_directions, batch_size, hidden_size)
    initial_h = state(op, "initial_h", initial_h, shape, layout)
    return Args(X, W, R, B, lengths(op, sequence_lens, seq_length, batch_size), initial_h,
                DIRECTIONS[direction], layout)


def param(op, name, value, shape, x_shape):
    """A weight of the given shape as contiguous float32, zeros when the input is omitted.

    Not copied when it already is float32 (read-only included), so ``transposed`` can
    recognise the same initializer from call to call.
    """
    if value is None:
        return np.zeros(shape, np.float32)
    value = np.asarray(value)
    if value.shape != shape:
        raise InputError(f"{op}: {name} has shape {value.shape}, expected {shape} "
                         f"from X {x_shape} (layout 0), hidden_size and direction")
    return np.ascontiguousarray(value, dtype=np.float32)


def state(op, name, value, shape, layout):
    """An initial state, given in ``layout``, returned as (num_directions, batch, hidden)."""
    if value is None:
        return np.zeros(shape, np.float32)
    value = np.asarray(value)
    expected = shape if layout == 0 else (shape[1], shape[0], shape[2])
    if value.shape != expected:
        raise InputError(f"{op}: {name} has shape {value.shape}, expected {expected} "
                         f"for layout {layout}")
    return f32(value if layout == 0 else value.transpose(1, 0, 2))


def lengths(op, sequence_lens, seq_length, batch_size):
    """``sequence_lens`` as int32 (batch,), checked to lie in [0, seq_length]."""
    if sequence_lens is None:
        return np.full(batch_size, seq_length, np.int32)
    sequence_lens = np.asarray(sequence_lens)
    if sequence_lens.shape != (batch_size,) or sequence_lens.dtype.kind not in "iu":
        raise InputError(f"{op}: sequence_lens has shape {sequence_lens.shape} and dtype "
                         f"{sequence_lens.dtype}; expected integers of shape ({batch_size},)")
    if batch_size and (sequence_lens.min() < 0 or sequence_lens.max() > seq_length):
        raise InputError(f"{op}: sequence_lens {sequence_lens.tolist()} must lie in "
                         f"[0, {seq_length}] (the seq_length of X)")
    return np.array(sequence_lens, dtype=np.int32)  # a copy: writable, contiguous


def clip_value(op, clip):
    """The ``clip`` attribute as float32; no clipping is an infinite bound."""
    if clip is None:
        return NO_CLIP
    if not clip > 0:
        raise UnsupportedError(f"{op}: clip={clip!r}; the cell clip threshold must be positive")
    return np.float32(clip)


def flag(op, name, value):
    """A 0/1 integer attribute such as ``input_forget`` or ``linear_before_reset``."""
    if value not in (0, 1):
        raise UnsupportedError(f"{op}: {name}={value!r}; expected 0 or 1")
    return int(value)


def check_default_activations(op, activations, defaults, num_directions):
    """LSTM and GRU implement only their default activations; anything else raises."""
    if activations is None:
        return
    if [a.lower() for a in activations] != [a.lower() for a in defaults] * num_directions:
        raise UnsupportedError(f"{op}: activations={list(activations)!r}; only the defaults "
                               f"{list(defaults)} per direction are supported")


def activation_codes(op, activations, num_directions):
    """RNN's one activation per direction as codes (num_directions,); default Tanh."""
    if activations is None:
        return np.full(num_directions, TANH, np.int64)
    codes = [ACTIVATIONS.get(a.lower()) for a in activations]
    if len(codes) != num_directions or None in codes:
        raise UnsupportedError(f"{op}: activations={list(activations)!r}; expected one of "
                               f"Tanh, Relu, Sigmoid per direction ({num_directions})")
    return np.array(codes, np.int64)


def to_layout(layout, Y, *states):
    """Layout-0 results (Y (T, D, N, H), states (D, N, H)) in the caller's layout."""
    if layout == 0:
        return (Y, *states)
    return (np.ascontiguousarray(Y.transpose(2, 0, 1, 3)),  # (N, T, D, H)
            *(np.ascontiguousarray(s.transpose(1, 0, 2)) for s in states))  # (N, D, H)


_TRANSPOSED = {}  # id(W) -> (weak reference to W, W transposed), for immutable W only


def transposed(W):
    """(num_directions, rows, cols) -> (num_directions, cols, rows), contiguous.

    The kernels multiply by W^T as rows of axpy (``accumulate``), which vectorise
    without fastmath; a dot product per output would be one serial chain of adds.
    Weights that can never change are transposed once and remembered (onnxruntime
    prepacks its constant weights the same way): at seq=1 the transpose costs more than
    the step. Those are read-only views of ``bytes``, which is what
    ``onnx.numpy_helper.to_array`` returns for initializers.
    """
    if not _immutable(W):
        return np.ascontiguousarray(W.transpose(0, 2, 1))
    key = id(W)
    known = _TRANSPOSED.get(key)
    if known is None or known[0]() is not W:
        forget = lambda _, key=key: _TRANSPOSED.pop(key, None)  # noqa: E731
        known = _TRANSPOSED[key] = (weakref.ref(W, forget),
                                    np.ascontiguousarray(W.transpose(0, 2, 1)))
    return known[1]


def _immutable(a):
    base = a
    while isinstance(base, np.ndarray):
        base = base.base
    return isinstance(base, bytes) and not a.flags.writeable


@njit(cache=True, fastmath=False)
def schedule(sequence_lens, seq_length, num_directions, direction):
    """The recurrence's visits in order, (K, 3) rows of (d, t, b); numpy twin: ``step_index``.

    Direction d runs after d - 1 (its input projection may be computed before its
    first visit); within a direction, step s of every active batch entry before step
    s + 1. Entry b is active for its first ``sequence_lens[b]`` steps, walked forward, or
    backward from its last valid step for REVERSE and the second direction of
    BIDIRECTIONAL. Every kernel is one loop over these rows: a numba function cannot take
    the cell as an argument and still be cached on disk, and dispatching on a cell code
    here would make this module import the operators that import it.
    """
    batch_size = sequence_lens.shape[0]
    total = 0
    for b in range(batch_size):
        total += sequence_lens[b]
    visits = np.empty((num_directions * total, 3), np.int64)
    k = 0
    for d in range(num_directions):
        reverse = direction == REVERSE or d == 1
        for step in range(seq_length):
            for b in range(batch_size):
                if step < sequence_lens[b]:
                    visits[k, 0] = d
                    visits[k, 1] = sequence_lens[b] - 1 - step if reverse else step
                    visits[k, 2] = b
                    k += 1
    return visits


def step_index(step, sequence_lens, reverse):
    """Numpy twins: the time index of every batch entry at ``step``, and who is active."""
    active = step < sequence_lens  # (N,)
    t = sequence_lens - 1 - step if reverse else np.full_like(sequence_lens, step)
    return np.where(active, t, 0), active


def sigmoid(x):
    """Numpy twins' sigmoid; exp(-x) overflows to inf for x < -88, giving exactly 0."""
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-x))


NUMPY_ACTIVATIONS = {SIGMOID: sigmoid, TANH: np.tanh, RELU: lambda x: np.maximum(x, 0)}


@njit(cache=True, fastmath=False, inline="always")  # inlined: ``approx`` then folds away
def activate(code, x, approx=False):
    """Scalar Sigmoid, Tanh or Relu of float32 ``x``, by code; ``approx`` (the fused kernels
    only) takes e^x from ``exp_approx``, which vectorises, instead of libm's expf."""
    if code == SIGMOID:
        return np.float32(1.0) / (np.float32(1.0) + _exp(-x, approx))
    if code == TANH:  # 1 - 2 / (1 + e^2x), within 2e-7 of tanh: glibc's tanhf is 4x slower
        e2x = _exp(np.float32(2) * x, approx)
        return np.float32(1.0) - np.float32(2.0) / (np.float32(1.0) + e2x)
    return x if x > np.float32(0.0) else np.float32(0.0)


@njit(cache=True, fastmath=False, inline="always")
def _exp(x, approx):
    return exp_approx(x) if approx else np.exp(x)


# Cephes' expf: e^x = 2^n e^r, n = round(x / ln 2), |r| <= ln(2) / 2, e^r by a degree-7
# polynomial; ln 2 is split in two (EXP_C1 exact in 9 bits) so that r is exact.
EXP_LIMIT = np.float32(87.0)  # e^87 = 6e37: 1 / (1 + e^87) is still a normal float
LOG2E = np.float32(1.44269504088896341)
EXP_C1, EXP_C2 = np.float32(0.693359375), np.float32(-2.12194440e-4)
EXP_P0, EXP_P1, EXP_P2 = (np.float32(1.9875691500e-4), np.float32(1.3981999507e-3),
                          np.float32(8.3334519073e-3))
EXP_P3, EXP_P4, EXP_P5 = (np.float32(4.1665795894e-2), np.float32(1.6666665459e-1),
                          np.float32(5.0000001201e-1))


@intrinsic
def float_from_bits(typingctx, bits):
    """int32 -> the float32 with the same bits (C's memcpy, numpy's ``view``)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float32))
    return types.float32(types.int32), codegen


@njit(cache=True, fastmath=False, inline="always")
def exp_approx(x):
    """e^x of float32 x clamped to [-87, 87], within 1 ulp (``tests/test_approx.py``);
    NaN stays NaN. Only arithmetic and a bitcast: LLVM vectorises a loop over it (8 lanes
    on AVX2), where it calls libm's expf once per element."""
    if x > EXP_LIMIT:  # two ifs, not min/max: a NaN fails both tests and stays NaN
        x = EXP_LIMIT
    if x < -EXP_LIMIT:
        x = -EXP_LIMIT
    n = np.floor(x * LOG2E + np.float32(0.5))  # |n| <= 126: 2^n below is a normal float
    r = x - n * EXP_C1 - n * EXP_C2
    p = ((((EXP_P0 * r + EXP_P1) * r + EXP_P2) * r + EXP_P3) * r + EXP_P4) * r + EXP_P5
    p = p * (r * r) + r + np.float32(1.0)
    return p * float_from_bits(np.int32((np.int32(n) + np.int32(127)) << np.int32(23)))


@njit(cache=True, fastmath=False)
def clamp(x, clip):
    return min(max(x, -clip), clip)


@njit(cache=True, fastmath=False)
def gate(x, clip, P=None, C=None):
    """A gate's argument: x + P (.) C, clipped to [-clip, clip]. P None (no peephole) and
    clip None (no clip) compile to nothing, which the fused kernels rely on for speed."""
    if P is not None:
        x = x + P * C
    if clip is not None:
        x = clamp(x, clip)
    return x


@njit(cache=True, fastmath=False)
def accumulate(x, AT, out, j0, j1):
    """out[j0:j1] += x @ AT[:, j0:j1], one axpy per element of x: (K,) x (K, J) -> (J,)."""
    out = out[j0:j1]  # slices, so that every index starts at 0 and numba's check for
    for k in range(x.shape[0]):  # negative indices, which stops vectorisation, folds away
        xk = x[k]
        row = AT[k, j0:j1]
        for j in range(out.shape[0]):
            out[j] += xk * row[j]


@njit(cache=True, fastmath=False)
def project(X, WT, bias, out):
    """out[t, b] = X[t, b] @ WT + bias for every step at once: (T, N, I) -> (T, N, G*H)."""
    seq_length, batch_size, _ = X.shape
    for t in range(seq_length):
        for b in range(batch_size):
            out[t, b, :] = bias
            accumulate(X[t, b], WT, out[t, b], 0, out.shape[2])


def input_bias(cell, B, H):
    """Wb + Rb (G*H,) of a layer's ONNX bias B (2*G*H,), except GRU's Rbh, which
    ``linear_before_reset`` applies after the reset gate (the fused kernels add it there)."""
    Wb, Rb = np.split(B.astype(np.float64), 2)
    if cell == GRU:
        Rb = np.concatenate([Rb[:2 * H], np.zeros(H)])
    return Wb + Rb


@njit(cache=True, fastmath=False)
def first_bad(tokens, vocab):
    """Flat index of the first token id outside [0, vocab), or -1 (the fused engines' check)."""
    flat = tokens.ravel()
    for k in range(flat.size):
        if flat[k] < 0 or flat[k] >= vocab:
            return k
    return -1
