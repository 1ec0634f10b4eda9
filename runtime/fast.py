"""The fast streaming engine of the character model: fused numba kernels, fp32 or int8.

``FastCharEngine(onnx_model, quantize=None | "int8")`` reads the weights of an rnnedge
charlm graph (the one ``export/models.py`` builds) by its structure, packs them once into
the layout of ``ops/fused.py`` (embedding folded into layer 0, [W | R] per gate row, int8
with per-row scales if asked) and runs ``run(feeds) -> {"logits", "hn"[, "cn"]}`` like the
other engines, at any batch and time. It is built for the low-power case: batch 1, one
token per call, one thread; other batches run row after row through the same kernel.
A graph of another shape (sentiment, bidirectional or clipped nodes, peepholes, ...)
raises ``UnsupportedError`` naming what did not match. Not thread-safe: one engine holds
one set of work buffers.

Compiled kernels are cached by numba: in ``ops/__pycache__`` when that is writable, else
in the user's cache folder (``~/.cache/numba``, numba's ``UserWideCacheLocator``), or in
``$NUMBA_CACHE_DIR`` when set before numba is imported.
"""

from collections import defaultdict
from typing import NamedTuple

import numpy as np
from onnx import helper, numpy_helper

from .errors import InputError, UnsupportedError
from .feeds import FLOAT32, INT64, all_finite, copy_finite, is_array, takes_declared
from .ops import common, fused

CELLS = {"LSTM": common.LSTM, "GRU": common.GRU, "RNN": common.RNN}
NO_STATE = np.zeros((0, 0, 0), np.float32)  # c of a GRU or RNN: never read by the kernels


class Layer(NamedTuple):
    cell: int        # common.LSTM, GRU or RNN
    activation: int  # RNN's activation code
    W: np.ndarray    # (G*H, I), ONNX gate order
    R: np.ndarray    # (G*H, H)
    B: np.ndarray    # (2*G*H,): Wb then Rb


class _Graph:
    """Initializers, and who consumes and produces each value, for the structural match."""

    def __init__(self, model):
        self.constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        self.consumers, self.producer = defaultdict(list), {}
        for node in model.graph.node:
            for name in node.input:
                self.consumers[name].append(node)
            for name in node.output:
                self.producer[name] = node

    def next(self, value, op_type, what):
        """The one node reading ``value``, which must be an ``op_type``."""
        users = self.consumers.get(value, [])
        if len(users) != 1 or users[0].op_type != op_type:
            found = ", ".join(n.op_type for n in users) or "nothing"
            raise UnsupportedError(f"fast engine: expected {what} ({op_type}) to read {value!r}, "
                                   f"found {found}")
        return users[0]

    def const(self, name, what):
        if name not in self.constants:
            raise UnsupportedError(f"fast engine: {what} ({name!r}) is not a constant initializer")
        return self.constants[name]


def _attrs(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _check(ok, message):
    if not ok:
        raise UnsupportedError(f"fast engine: {message}")


def read_charlm(model):
    """(embedding (V, E), [Layer], fc weight (H, V), fc bias (V,)) of a charlm graph."""
    outputs = {o.name for o in model.graph.output}
    _check({"logits", "hn"} <= outputs <= {"logits", "hn", "cn"},
           f"it runs charlm graphs (outputs logits, hn[, cn]), not one with outputs "
           f"{', '.join(sorted(outputs))}")
    g = _Graph(model)
    gather = g.next("tokens", "Gather", "the embedding lookup")
    _check(list(gather.input)[1:] == ["tokens"] and _attrs(gather).get("axis", 0) == 0,
           f"the Gather {gather.name!r} is not an embedding lookup of tokens")
    embedding = g.const(gather.input[0], "the embedding table")
    x = _transposed(g, gather.output[0], "the time-major embeddings")
    nodes, layers = [], []
    while len(g.consumers.get(x, [])) == 1 and g.consumers[x][0].op_type in CELLS:
        node = g.consumers[x][0]
        nodes.append(node)
        layers.append(_recurrent(g, node, len(layers)))
        squeeze = g.next(node.output[0], "Squeeze", "the drop of the direction axis")
        _check(list(squeeze.input[1:]) and list(g.constants.get(squeeze.input[1], [])) == [1],
               f"the Squeeze {squeeze.name!r} after layer {len(layers) - 1} does not drop axis 1")
        x = squeeze.output[0]
    _check(layers, "found no LSTM, GRU or RNN node after the embedding")
    _check(len({layer.cell for layer in layers}) == 1, "the layers mix cell types")
    matmul = g.next(_transposed(g, x, "the batch-major outputs"), "MatMul", "the output layer")
    add = g.next(matmul.output[0], "Add", "the output bias")
    _check(_feeds(g, add.output[0], "logits"), "the output layer does not give the logits")
    for state, index in (("hn", 1), ("cn", 2)):
        if state in outputs:
            concat = g.producer.get(state)
            _check(concat is not None and concat.op_type == "Concat"
                   and list(concat.input) == [n.output[index] for n in nodes],
                   f"{state} is not the Concat of every layer's final state")
    return (embedding, layers, g.const(matmul.input[1], "the output weight"),
            g.const(add.input[1], "the output bias"))


def _transposed(g, value, what):
    node = g.next(value, "Transpose", what)
    _check(list(_attrs(node).get("perm", [])) == [1, 0, 2],
           f"the Transpose {node.name!r} has perm {_attrs(node).get('perm')}, not [1, 0, 2]")
    return node.output[0]


def _feeds(g, value, name):
    """``value`` is graph output ``name``, directly or through Identity nodes."""
    while value != name:
        users = g.consumers.get(value, [])
        if len(users) != 1 or users[0].op_type != "Identity":
            return False
        value = users[0].output[0]
    return True


_DEFAULTS = {"LSTM": {"direction": "forward", "layout": 0, "input_forget": 0},
             "GRU": {"direction": "forward", "layout": 0, "linear_before_reset": 1},
             "RNN": {"direction": "forward", "layout": 0}}
_DEFAULT_ACTIVATIONS = {"LSTM": ("Sigmoid", "Tanh", "Tanh"), "GRU": ("Sigmoid", "Tanh")}


def _recurrent(g, node, layer):
    """One layer's weights, after checking the node is what the fused kernels compute."""
    op, attrs = node.op_type, _attrs(node)
    where = f"{op} node {node.name!r} (layer {layer})"
    for name, value in attrs.items():
        if name == "activations":
            acts = [a.decode() if isinstance(a, bytes) else a for a in value]
            if op == "RNN":
                _check(len(acts) == 1 and acts[0].lower() in common.ACTIVATIONS,
                       f"{where} has activations {acts}; it runs Tanh, Relu or Sigmoid, forward")
            else:
                common.check_default_activations(op, acts, _DEFAULT_ACTIVATIONS[op], 1)
        elif name != "hidden_size":
            value = value.decode() if isinstance(value, bytes) else value
            _check(_DEFAULTS[op].get(name, object()) == value,
                   f"{where} has {name}={value!r}; it runs forward, layout 0, no clip, "
                   "no peepholes, default activations, GRU linear_before_reset=1")
    inputs = list(node.input) + [""] * (8 - len(node.input))
    _check(not inputs[4], f"{where} takes sequence_lens; charlm graphs run every step")
    _check(not inputs[7], f"{where} has peepholes P")
    for index, state in ((5, "h0"), (6, "c0")):
        if op == "LSTM" or index == 5:
            _check(_is_layer_slice(g, inputs[index], state, layer),
                   f"{where} does not start from {state}[{layer}]")
    W = g.const(inputs[1], f"{where} W")
    R = g.const(inputs[2], f"{where} R")
    _check(W.ndim == 3 and W.shape[0] == 1 and R.shape[0] == 1,
           f"{where} has {W.shape[0]} directions; it runs one (forward)")
    B = g.const(inputs[3], f"{where} B")[0] if inputs[3] else np.zeros(2 * R.shape[1], np.float32)
    act = attrs.get("activations", [b"Tanh"])[0]
    act = common.ACTIVATIONS[(act.decode() if isinstance(act, bytes) else act).lower()]
    return Layer(CELLS[op], act, W[0], R[0], B)


def _is_layer_slice(g, value, state, layer):
    node = g.producer.get(value)
    if node is None or node.op_type != "Slice" or node.input[0] != state:
        return False
    starts, ends = (g.constants.get(name) for name in node.input[1:3])
    axes = g.constants.get(node.input[3]) if len(node.input) > 3 else np.zeros(1)
    return (starts is not None and ends is not None and list(starts) == [layer]
            and list(ends) == [layer + 1] and list(axes) == [0])


def pack(embedding, layers, fc_weight, fc_bias):
    """The fused layout (``fused.Packed``) of a char model's weights; see ops/fused.py."""
    cell, activation = layers[0].cell, layers[0].activation
    G = common.GATES[cell]
    H = layers[0].R.shape[1]
    for i, layer in enumerate(layers):
        inputs = embedding.shape[1] if i == 0 else H
        _check(layer.R.shape == (G * H, H) and layer.W.shape == (G * H, inputs)
               and layer.B.shape == (2 * G * H,),
               f"layer {i} has W {layer.W.shape}, R {layer.R.shape}, B {layer.B.shape}; "
               f"expected ({G * H}, {inputs}), ({G * H}, {H}), ({2 * G * H},)")
    _check(fc_weight.shape == (H, embedding.shape[0]) and fc_bias.shape == (embedding.shape[0],),
           f"the output layer has weight {fc_weight.shape} and bias {fc_bias.shape}; "
           f"expected ({H}, {embedding.shape[0]}) and ({embedding.shape[0]},)")
    by_unit = lambda a: a.reshape(G, H, *a.shape[1:]).swapaxes(0, 1)  # (G*H, ...) -> (H, G, ...)
    first = layers[0]
    # layer 0's input projection of every token, biases included, in float64: rounded once
    table = embedding.astype(np.float64) @ first.W.T.astype(np.float64)
    table = table + common.input_bias(cell, first.B, H)
    table = table.reshape(-1, G, H).swapaxes(1, 2)  # (V, G*H) -> (V, H, G)
    Wup = [by_unit(np.concatenate([layer.W, layer.R], axis=1)) for layer in layers[1:]]
    bias = [np.zeros((H, G))] + [by_unit(common.input_bias(cell, layer.B, H)) for layer in layers[1:]]
    rbh = [layer.B[-H:] if cell == common.GRU else np.zeros(H) for layer in layers]
    f32 = common.f32  # contiguous and writable: numba compiles apart for read-only arrays
    return fused.Packed(cell, activation, f32(table), f32(by_unit(first.R)),
                        f32(np.stack(Wup) if Wup else np.zeros((0, H, G, 2 * H))),
                        f32(np.stack(bias)), f32(np.stack(rbh)), f32(fc_weight.T), f32(fc_bias))


class FastCharEngine:
    """Fused numba kernels over a charlm graph; ``run(feeds)`` as ``OrtEngine.run``."""

    checks_tokens = True  # ids outside the vocabulary: a typed error from ``run``'s kernel

    def __init__(self, model, quantize=None, charlm=None):
        if quantize not in (None, "int8"):
            raise InputError(f"quantize must be None or 'int8', not {quantize!r}")
        packed = pack(*(charlm or read_charlm(model)))  # ``charlm``: already read
        self.name = "fast-int8" if quantize else "fast"
        self.packed = fused.quantize(packed) if quantize else fused.panelled(packed)
        self.kernel = fused.run8 if quantize else fused.run
        self.work = fused.work(packed)
        self.arguments = (*self.packed, *self.work)  # after tokens, h, c, logits
        self.lstm = packed.cell == common.LSTM
        self.outputs = ["logits", "hn", "cn"] if self.lstm else ["logits", "hn"]
        self.layers, self.hidden = self.work.h.shape

    def run(self, feeds):
        """tokens (B, T) int64, h0 [, c0] (L, B, H) -> logits (B, T, V), hn [, cn]: new arrays."""
        if "tokens" not in feeds:
            raise InputError("feeds lack tokens")
        tokens = np.asarray(feeds["tokens"])
        if tokens.ndim != 2 or tokens.dtype.kind not in "iu":  # np.issubdtype: 1.5 µs a call
            raise InputError(f"tokens must be integer ids of shape (batch, time), not "
                             f"{tokens.dtype} {tokens.shape}")
        tokens = np.ascontiguousarray(tokens, dtype=np.int64)
        shape = (self.layers, tokens.shape[0], self.hidden)
        hn = _state(feeds, "h0", shape)
        return self._run(tokens, hn, _state(feeds, "c0", shape) if self.lstm else NO_STATE)

    def checked_run(self, signature):
        """``run_checked`` when the graph declares the inputs it checks, else None: for
        ``GraphModel``, whose ``check`` it then skips on the common case."""
        state = ("float32", 3, {(0, self.layers), (2, self.hidden)})  # fixed dims it checks
        takes = {"tokens": ("int64", 2, set()), "h0": state, **({"c0": state} if self.lstm else {})}
        return self.run_checked if takes_declared(signature, takes) else None

    def run_checked(self, feeds):
        """``run`` of the common case, with every check of ``GraphModel.check``: int64 tokens and
        finite float32 states, C-contiguous, of the model's shapes, nothing else in ``feeds``
        (its length is the caller's to check). None for anything else: the caller then takes
        the long path (``check``, ``run``), which says what is wrong."""
        tokens, h = feeds.get("tokens"), feeds.get("h0")
        c = feeds.get("c0") if self.lstm else NO_STATE
        if not (type(tokens) is np.ndarray and tokens.dtype == INT64 and tokens.ndim == 2
                and tokens.size and tokens.flags.c_contiguous):
            return None
        shape = (self.layers, tokens.shape[0], self.hidden)
        if not (is_array(h, FLOAT32, shape) and (c is NO_STATE or is_array(c, FLOAT32, shape))):
            return None
        hn, cn = np.empty(shape, FLOAT32), np.empty(shape, FLOAT32) if self.lstm else NO_STATE
        return self._run(tokens, hn, cn) if copy_finite(h, c, hn, cn) else None

    def _run(self, tokens, hn, cn):
        """The kernel on checked tokens and states it may update in place."""
        logits = np.empty(tokens.shape + self.packed.fc_bias.shape, FLOAT32)
        bad = self.kernel(tokens, hn, cn, logits, *self.arguments)
        if bad >= 0:
            raise InputError(f"token id {tokens.flat[bad]} at "
                             f"{tuple(int(i) for i in np.unravel_index(bad, tokens.shape))} "
                             f"is outside the vocabulary [0, {logits.shape[2]})")
        return {"logits": logits, "hn": hn, "cn": cn} if self.lstm else {"logits": logits, "hn": hn}

    all_finite = staticmethod(all_finite)  # for ``GraphModel.check``


def _state(feeds, name, shape):
    """A copy of state ``name`` as C-contiguous float32, which the kernel updates in place."""
    if name not in feeds:
        raise InputError(f"feeds lack {name}; this model needs tokens, h0"
                         + (", c0" if name == "c0" else ""))
    state = feeds[name]  # ndarray.copy: a third of np.array's cost with dtype and order
    state = (state.copy() if type(state) is np.ndarray and state.dtype == np.float32
             else np.array(state, dtype=np.float32, order="C"))
    if state.shape != shape:
        raise InputError(f"{name} has shape {state.shape}, expected {shape} "
                         "(layers, batch, hidden)")
    return state
