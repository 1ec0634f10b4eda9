"""Any ONNX LSTM, GRU or RNN node on the fused kernels of fused_layer.py, fp32 or int8.

``FusedNode(op, attributes, inputs, quantize=None | "int8")`` is called like the
operator (``X, W, R, B, sequence_lens, initial_h[, initial_c, P]``, each in the node's
layout) and returns the operator's outputs. It packs W, R and B once into the fused
layout ([W | R] per unit and gate, int8 with per-row scales if asked) and keeps its work
buffers; ``pack`` does it at bind time when the weights are constants, else the first
call does, and later calls repack only when given other weight arrays (compared by
identity: a weight array changed in place is not seen).

It runs every direction, both layouts, ``sequence_lens`` (Y zero past each length, Y_h
and Y_c the last valid state, as the reference), initial states, GRU
``linear_before_reset`` 0 and 1, RNN Tanh, Relu and Sigmoid. What the fused kernels do
not compute (``clip``, ``input_forget=1``, peepholes P, other activations) raises
``UnsupportedError`` naming it when the node is bound; ``reference.bind_node`` then falls
back to the numba reference. Batch rows run one after another. Not a graph runner, and
not the ONNX attribute reader: ``reference.py`` is both.

``run``/``run8`` are the kernels; ``run_numpy``/``run8_numpy`` their plain twins with the
same signature, which ``FusedNode(..., twin=True)`` runs instead.
"""

import numpy as np
from numba import njit

from ..errors import InputError, UnsupportedError
from . import common
from .common import GRU, LSTM, RNN
from .fused_layer import (copy, gru_layer8_reset_first, gru_layer_reset_first, layer, layer8,
                          layer_numpy, scratch)
from .panels import pack_rows, quantize_rows, rows_of, width

CELLS = {"LSTM": LSTM, "GRU": GRU, "RNN": RNN}
DEFAULT_ACTIVATIONS = {"LSTM": ["sigmoid", "tanh", "tanh"], "GRU": ["sigmoid", "tanh"]}


class FusedNode:
    """One recurrent node on the fused kernels; ``engine`` is "fast" or "fast-int8"."""

    def __init__(self, op, attributes, inputs=(), quantize=None, twin=False):
        if quantize not in (None, "int8"):
            raise InputError(f"quantize must be None or 'int8', not {quantize!r}")
        if op not in CELLS:
            raise UnsupportedError(f"the fused kernels run LSTM, GRU and RNN nodes, not {op}")
        self.op, self.cell = op, CELLS[op]
        self.engine = "fast-int8" if quantize else "fast"
        self.hidden_size = attributes.get("hidden_size")
        self.direction = attributes.get("direction", "forward")
        self.layout = attributes.get("layout", 0)
        self.linear_before_reset = attributes.get("linear_before_reset", 0)
        self.activation = _check(op, attributes, list(inputs))
        if quantize:
            self.kernel = run8_numpy if twin else run8
        else:
            self.kernel = run_numpy if twin else run
        self.weights = None  # the (W, R, B) objects ``packed`` was made from
        self.packed, self.work = (), ()

    def pack(self, W, R, B=None):
        """Pack the weights (layout-independent: (D, G*H, I), (D, G*H, H), (D, 2*G*H))."""
        given = (W, R, B)
        D = 2 if self.direction == "bidirectional" else 1
        G, H = common.GATES[self.cell], self.hidden_size
        W = _weight(self.op, "W", W, (D, G * H, None))
        R = _weight(self.op, "R", R, (D, G * H, H))
        B = np.zeros((D, 2 * G * H), np.float32) if B is None else _weight(
            self.op, "B", B, (D, 2 * G * H))
        M = _by_unit(np.concatenate([W, R], axis=2), G)  # (D, H, G, I + H)
        bias = B[:, :G * H] + B[:, G * H:]  # Wb + Rb, but GRU's Rbh goes to rbh
        if self.cell == GRU:
            bias[:, 2 * H:] = B[:, 2 * H:G * H]
        rbh = B[:, -H:] if self.cell == GRU else np.zeros((D, H), np.float32)
        head = (self.cell, self.activation, self.linear_before_reset)
        self.inputs = I = W.shape[2]
        if self.engine == "fast-int8":  # int8 row panels (panels.py), split at the inputs
            M, scale = quantize_rows(M)
            self.packed = (*head, pack_rows(M, I), scale, common.f32(_by_unit(bias, G)),
                           common.f32(rbh))
        else:
            self.packed = (*head, pack_rows(common.f32(M), I), common.f32(_by_unit(bias, G)),
                           common.f32(rbh))
        n = width(I, I + H)  # int8 q, qr in the panels' column layout
        self.work = (np.empty(I + H, np.float32), np.empty(I + H, np.float32),
                     np.zeros(n, np.int8), np.zeros(n, np.int8), *scratch(H, G))
        self.weights = given

    def __call__(self, X, W, R, B=None, sequence_lens=None, initial_h=None, initial_c=None,
                 P=None):
        """The operator's outputs (Y, Y_h[, Y_c]) in the node's layout, float32."""
        if P is not None:
            raise UnsupportedError(f"{self.op}: the fused kernels take no peepholes P")
        if self.weights is None or any(a is not b for a, b in zip(self.weights, (W, R, B))):
            self.pack(W, R, B)
        X, lens, Y_h, Y_c = self._inputs(X, sequence_lens, initial_h, initial_c)
        seq_length, batch_size, _ = X.shape
        D = Y_h.shape[0]
        Y = np.zeros((seq_length, D, batch_size, self.hidden_size), np.float32)
        self.kernel(X, lens, common.DIRECTIONS[self.direction], Y, Y_h, Y_c, *self.packed,
                    *self.work)
        return common.to_layout(self.layout, Y, *((Y_h, Y_c) if self.cell == LSTM else (Y_h,)))

    def _inputs(self, X, sequence_lens, initial_h, initial_c):
        """X (T, N, I) and states (D, N, H) in layout 0, fresh float32; lengths int32."""
        X = np.asarray(X)
        inputs = self.inputs
        if X.ndim != 3 or X.shape[2] != inputs:
            raise InputError(f"{self.op}: X has shape {X.shape}; expected 3 dimensions with "
                             f"input_size {inputs} (from W) last, layout {self.layout}")
        X = common.f32(X if self.layout == 0 else X.transpose(1, 0, 2))
        seq_length, batch_size, _ = X.shape
        shape = (self.packed[3].shape[0], batch_size, self.hidden_size)
        lens = common.lengths(self.op, sequence_lens, seq_length, batch_size)
        Y_h = common.state(self.op, "initial_h", initial_h, shape, self.layout).copy()
        Y_c = (common.state(self.op, "initial_c", initial_c, shape, self.layout).copy()
               if self.cell == LSTM else np.zeros((shape[0], batch_size, 0), np.float32))
        return X, lens, Y_h, Y_c


def _check(op, attributes, inputs):
    """The RNN activation code, after checking the node is what the fused kernels compute."""
    where = f"{op} (engine fast)"
    allowed = {"hidden_size": None, "activations": None, "direction": tuple(common.DIRECTIONS),
               "layout": (0, 1), "linear_before_reset": (0, 1) if op == "GRU" else (),
               "input_forget": (0,) if op == "LSTM" else ()}  # None: checked below
    for name, value in attributes.items():
        if name not in allowed or allowed[name] is not None and value not in allowed[name]:
            raise UnsupportedError(f"{where}: {name}={value!r} is not run by the fused kernels")
    if not isinstance(attributes.get("hidden_size"), (int, np.integer)):
        raise UnsupportedError(f"{where}: hidden_size={attributes.get('hidden_size')!r}")
    if len(inputs) > 7 and inputs[7]:
        raise UnsupportedError(f"{where}: input P (peepholes) is not run by the fused kernels")
    D = 2 if attributes.get("direction") == "bidirectional" else 1
    acts = [a.lower() for a in attributes.get("activations", [])]
    if op == "RNN":
        codes = {common.ACTIVATIONS.get(a) for a in acts or ["tanh"]}
        if len(acts) not in (0, D) or None in codes or len(codes) != 1:
            raise UnsupportedError(f"{where}: activations={attributes['activations']!r}; it "
                                   "runs one of Tanh, Relu, Sigmoid, the same per direction")
        return codes.pop()
    if acts and acts != DEFAULT_ACTIVATIONS[op] * D:
        raise UnsupportedError(f"{where}: activations={attributes['activations']!r}; it runs "
                               "the defaults only")
    return common.TANH


def _weight(op, name, value, shape):
    value = np.asarray(value, dtype=np.float32)
    if value.ndim != len(shape) or any(e is not None and s != e
                                       for s, e in zip(value.shape, shape)):
        raise InputError(f"{op}: {name} has shape {value.shape}, expected "
                         f"{tuple('input_size' if e is None else e for e in shape)} "
                         "from hidden_size and direction")
    return value


def _by_unit(a, G):
    """(D, G*H, ...) -> (D, H, G, ...): unit j's gates adjacent."""
    D, GH = a.shape[:2]
    return np.ascontiguousarray(a.reshape(D, G, GH // G, *a.shape[2:]).swapaxes(1, 2))


@njit(cache=True, fastmath=False)
def run(X, sequence_lens, direction, Y, Y_h, Y_c, cell, activation, linear_before_reset,
        M, base, rbh, xh, xr, q, qr, s, acc):
    """X (T, N, I) -> Y (T, D, N, H), zero-filled by the caller; Y_h, Y_c (D, N, H) hold the
    initial states and are updated in place. M (D, H, G, I + H) in panels (``pack_rows``,
    split I), base (D, H, G), rbh (D, H) as in fused_layer.py; work buffers xh, xr (I + H,),
    q, qr (int8 only), s, acc (``fused_layer.scratch``). Plain twin: ``run_numpy``."""
    seq_length, _, inputs = X.shape
    D = Y_h.shape[0]
    for visit in common.schedule(sequence_lens, seq_length, D, direction):
        d, t, b = visit[0], visit[1], visit[2]
        copy(X[t, b], xh, 0)
        copy(Y_h[d, b], xh, inputs)  # xh = [Xt; Ht-1]
        if cell == GRU and linear_before_reset == 0:
            gru_layer_reset_first(M[d], xh, base[d], rbh[d], Y_h[d, b], xr, s, acc)
        else:
            layer(cell, activation, M[d], xh, base[d], rbh[d], Y_h[d, b], Y_c[d, b], s, acc)
        copy(Y_h[d, b], Y[t, d, b], 0)


@njit(cache=True, fastmath=False)
def run8(X, sequence_lens, direction, Y, Y_h, Y_c, cell, activation, linear_before_reset,
         M, scale, base, rbh, xh, xr, q, qr, s, acc):
    """``run`` on int8 M in panels (``panels.pack_rows``, split I) with row scales (D, H, G).
    Plain twin: ``run8_numpy``."""
    seq_length, _, inputs = X.shape
    D = Y_h.shape[0]
    for visit in common.schedule(sequence_lens, seq_length, D, direction):
        d, t, b = visit[0], visit[1], visit[2]
        copy(X[t, b], xh, 0)
        copy(Y_h[d, b], xh, inputs)
        if cell == GRU and linear_before_reset == 0:
            gru_layer8_reset_first(M[d], scale[d], xh, q, base[d], rbh[d], Y_h[d, b], xr, qr, s,
                                   acc)
        else:
            layer8(cell, activation, M[d], scale[d], xh, q, base[d], rbh[d], Y_h[d, b],
                   Y_c[d, b], s, acc)
        copy(Y_h[d, b], Y[t, d, b], 0)


def run_numpy(X, sequence_lens, direction, Y, Y_h, Y_c, cell, activation, linear_before_reset,
              M, base, rbh, *work):
    """Plain twin of ``run``: row after row, numpy products (``fused_layer.layer_numpy``) on
    the rows the panels hold."""
    (_, H, G), inputs = base.shape, X.shape[2]
    _run_numpy(X, sequence_lens, direction, Y, Y_h, Y_c, cell, activation,
               linear_before_reset, rows_of(M, H, G, inputs + H, inputs), None, base, rbh)


def run8_numpy(X, sequence_lens, direction, Y, Y_h, Y_c, cell, activation,
               linear_before_reset, M, scale, base, rbh, *work):
    """Plain twin of ``run8``: the rows the panels hold."""
    (_, H, G), inputs = scale.shape, X.shape[2]
    _run_numpy(X, sequence_lens, direction, Y, Y_h, Y_c, cell, activation,
               linear_before_reset, rows_of(M, H, G, inputs + H, inputs), scale, base, rbh)


def _run_numpy(X, sequence_lens, direction, Y, Y_h, Y_c, cell, activation,
               linear_before_reset, M, scale, base, rbh):
    for d, b in np.ndindex(Y_h.shape[:2]):
        reverse = direction == common.REVERSE or d == 1
        length = sequence_lens[b]
        for step in range(length):
            t = length - 1 - step if reverse else step
            h, c = layer_numpy(cell, activation, M[d], X[t, b], Y_h[d, b],
                               Y_c[d, b] if cell == LSTM else None, base[d], rbh[d],
                               linear_before_reset, None if scale is None else scale[d])
            Y_h[d, b] = Y[t, d, b] = h
            if cell == LSTM:
                Y_c[d, b] = c
