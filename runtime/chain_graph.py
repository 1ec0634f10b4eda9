"""Reading a user's recurrent graph into a ``Chain``: what fast_chain.py's engines run.

``read_chain(onnx_model)`` finds a chain of LSTM, GRU or RNN layers (one cell type) over
frames (B, T, F) or embedded token ids (B, T), in ``batch_first`` or PyTorch's default
time-major layout (T, B, .), and a linear head: forward layers with the head on every
step's top output or on the last one and optional state inputs and outputs (L, B, H)
(``FastChainEngine``), or forward or bidirectional layers with the head on the top outputs'
mean or max over time (``FastPooledEngine``): what ``torch.onnx.export(..., dynamo=False)``
emits for ``nn.Embedding``, ``nn.GRU/LSTM/RNN`` and ``nn.Linear``. It gives each value a
symbol, following it through the ops that only move data (Transpose, Squeeze, Reshape,
Unsqueeze, Slice, Gather, Concat, Identity, Shape -> ConstantOfShape zero states) and the
pooling (ReduceMean, ReduceMax); a recurrent node's input or a graph output it cannot name
exactly raises ``UnsupportedError`` saying what did not match (the caller then falls back to
the interpreter).
"""

from typing import NamedTuple

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from .errors import UnsupportedError
from .ops import common
from .ops.fused_node import CELLS, DEFAULT_ACTIVATIONS

ALLOWED = {"direction": ("forward", "bidirectional"), "layout": (0,), "linear_before_reset": (0, 1),
           "input_forget": (0,)}  # beside hidden_size and activations; no clip
FLIP = {"bt": "tb", "tb": "bt"}  # the layouts of a sequence: batch-major, time-major


class Chain(NamedTuple):
    """What ``read_chain`` found: names, weights in ONNX layout, where the head sits."""

    sequence: str    # the graph input of frames (B, T, F) or token ids (B, T)
    embedding: object  # (V, E) table, or None for frames
    op: str          # "LSTM", "GRU" or "RNN"
    activation: int  # RNN's activation code
    lbr: int         # GRU's linear_before_reset
    layers: list     # [(W (D, G*H, I), R (D, G*H, H), B (D, 2*G*H))], as in the file
    states: dict     # "h"/"c" -> the graph input holding it, or None for zeros
    outputs: dict    # graph output -> "y", "h" or "c"
    every: bool      # the head runs on every step (y (B, T, C)), else on the last
    fc: np.ndarray   # (C, H)
    fc_bias: np.ndarray  # (C,)
    time_major: bool = False    # the sequence input is (T, B, .) (PyTorch's default layout)
    y_time_major: bool = False  # the every-step head's output is (T, B, C)
    directions: int = 1         # 2: bidirectional layers, each reading [fwd; bwd] below
    pool: str = ""              # "mean" or "max": the head reads the top outputs pooled over time


def _fail(message):
    raise UnsupportedError(f"fast chain engine: {message}")


def _attrs(node):
    """A node's attributes, strings decoded, tensors as numpy arrays."""
    out = {}
    for a in node.attribute:
        value = helper.get_attribute_value(a)
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, list) and value and isinstance(value[0], bytes):
            value = [v.decode() for v in value]
        out[a.name] = numpy_helper.to_array(value) if a.name == "value" else value
    return out


def _is(v, kind):
    return v is not None and v[0] == kind


def _axes(c, a):
    """Squeeze's and Unsqueeze's axes: an input from opset 13, an attribute before."""
    return list(c[1] if len(c) > 1 and c[1] is not None else a.get("axes", []))


def _take(extent, starts, ends, axes, steps):
    """Rows (lo, hi) a Slice takes along axis 0 of ``extent`` rows (None: checked at run)."""
    if list([0] if axes is None else axes) != [0] or list([1] if steps is None else steps) != [1]:
        return None
    lo, hi = int(starts[0]), int(ends[0])
    if extent is not None:
        lo, hi, _ = slice(lo, hi).indices(extent)
    return (lo, hi) if 0 <= lo < hi else None


def _vector(bias, size):
    """A bias broadcast along the last axis as (size,), or None."""
    return bias.ravel() if bias is not None and bias.size == bias.shape[-1] == size else None


class _Reader:
    """Symbols of the graph's values, in node order: ("in", name) a graph input; ("seq",
    source, "bt" | "tb") a sequence (B, T, .) or (T, B, .) of ("in", frames), ("emb", table,
    ids) or layer i; ("Y", i) layer i's Y; ("fin", "h" | "c", lo, hi) layers lo..hi-1's final
    states; ("vec", "h" | "c", i) layer i's (B, H); ("state", input, lo, hi) its rows;
    ("zeros", n, H); ("shape", v), ("dim", v, k), ("dims", (...)) shapes; ("lin", v, fc,
    bias or None) a linear map of v; ("?", node) what it does not follow."""

    def __init__(self, model):
        g = model.graph
        self.const = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        self.inputs = {i.name: i for i in g.input if i.name not in self.const}
        self.sym = {name: ("in", name) for name in self.inputs}
        self.rows = {name: next((d.dim_value if d.HasField("dim_value") else None  # axis 0
                                 for d in i.type.tensor_type.shape.dim), None)
                     for name, i in self.inputs.items()}
        self.layers, self.zero_owners, self.from_state = [], [], {"h": [], "c": []}
        self.time_major = False  # layer 0 reads the input with no Transpose

    def constant(self, name, what):
        if name not in self.const:
            _fail(f"{what} ({name!r}) is not a constant")
        return self.const[name]

    def visit(self, node):
        op, a, ins = node.op_type, _attrs(node), list(node.input)
        if op == "Constant" or op == "Identity" and ins[0] in self.const:
            self.const[node.output[0]] = self.const[ins[0]] if ins else a.get("value", np.array(
                a.get("value_int", a.get("value_ints", a.get("value_float")))))
        elif op in CELLS:
            self.recurrent(node, a, ins + [""] * (8 - len(ins)))
        else:
            s, c = [self.sym.get(n) for n in ins], [self.const.get(n) for n in ins]
            out = s[0] if op == "Identity" else getattr(self, op, lambda *_: None)(s, c, a, ins)
            self.sym[node.output[0]] = out or ("?", f"{op} {node.name!r}")

    def Transpose(self, s, c, a, ins):
        if list(a.get("perm", [])) == [0, 2, 1, 3] and _is(s[0], "Y"):
            return ("Yt", s[0][1])  # (T, B, D, H): Reshape to (T, B, D*H) next
        if list(a.get("perm", [])) == [1, 0, 2] and (_is(s[0], "in") or _is(s[0], "seq")):
            return ("seq", s[0], "tb") if _is(s[0], "in") else ("seq", s[0][1], FLIP[s[0][2]])

    def Squeeze(self, s, c, a, ins):
        if _is(s[0], "Y") and _axes(c, a) == [1]:
            return ("seq", s[0][1], "tb")
        if _is(s[0], "fin") and s[0][3] - s[0][2] == 1 and _axes(c, a) == [0]:
            return ("vec", s[0][1], s[0][2])

    def Reshape(self, s, c, a, ins):
        shape = c[1]
        if _is(s[0], "Yt") and shape is not None and list(shape) == [0, 0, -1]:
            return ("seq", s[0][1], "tb")  # [fwd; bwd] of each step, as the layer above reads

    def ReduceMean(self, s, c, a, ins):
        return self._pool("mean", s, c, a)

    def ReduceMax(self, s, c, a, ins):
        return self._pool("max", s, c, a)

    def _pool(self, kind, s, c, a):
        """Mean or max over the time axis of a layer's outputs, that axis dropped."""
        if (_is(s[0], "seq") and isinstance(s[0][1], int) and not a.get("keepdims", 1) == 1
                and _axes(c, a) == [{"bt": 1, "tb": 0}[s[0][2]]]):
            return ("pool", kind, s[0][1])

    def Unsqueeze(self, s, c, a, ins):
        return ("dims", (s[0][1:],)) if _is(s[0], "dim") and _axes(c, a) == [0] else None

    def Shape(self, s, c, a, ins):
        return ("shape", s[0]) if (_is(s[0], "in") or _is(s[0], "seq")) and not a else None

    def Gather(self, s, c, a, ins):
        axis, index, v = a.get("axis", 0), c[1], s[0]
        if c[0] is not None and c[0].ndim == 2 and _is(s[1], "in") and axis == 0:
            return ("seq", ("emb", ins[0], s[1][1]), "bt")  # an embedding lookup
        if index is None or index.size != 1:
            return None
        k = int(index.ravel()[0])
        if _is(v, "shape") and index.ndim == 0:
            return ("dim", v[1], k)
        if _is(v, "fin") and axis == 0 and -(v[3] - v[2]) <= k < v[3] - v[2]:
            j = range(v[2], v[3])[k]
            return ("vec", v[1], j) if index.ndim == 0 else ("fin", v[1], j, j + 1)
        if (_is(v, "seq") and isinstance(v[1], int) and index.ndim == 0 and k == -1
                and axis == {"bt": 1, "tb": 0}[v[2]]):
            return ("vec", "h", v[1])  # the last step's output is the final state

    def Concat(self, s, c, a, ins):
        parts = [("dims", tuple(int(v) for v in k)) if k is not None and k.ndim == 1 else v
                 for v, k in zip(s, c)]
        if all(_is(p, "dims") for p in parts):
            return ("dims", sum((p[1] for p in parts), ()))
        if (a["axis"] == 0 and all(_is(p, "fin") and p[1] == parts[0][1] for p in parts)
                and all(p[3] == q[2] for p, q in zip(parts, parts[1:]))):
            return ("fin", parts[0][1], parts[0][2], parts[-1][3])

    def ConstantOfShape(self, s, c, a, ins):
        value, d = a.get("value", np.zeros(1, np.float32)), s[0][1] if _is(s[0], "dims") else ()
        if (len(d) == 3 and value.dtype == np.float32 and not value.any()
                and isinstance(d[0], int) and isinstance(d[1], tuple) and isinstance(d[2], int)):
            self.zero_owners.append(d[1])  # (value, axis) the batch size comes from
            return ("zeros", d[0], d[2])

    def Slice(self, s, c, a, ins):
        state = _is(s[0], "in")
        if not (state or _is(s[0], "zeros")) or c[1] is None or c[2] is None:
            return None
        take = _take(self.rows[s[0][1]] if state else s[0][1], *(c + [None] * 2)[1:5])
        if take:
            return ("state", s[0][1], *take) if state else ("zeros", take[1] - take[0], s[0][2])

    def MatMul(self, s, c, a, ins):
        ok = (_is(s[0], "seq") or _is(s[0], "vec") or _is(s[0], "pool")) and c[1] is not None \
            and c[1].ndim == 2
        return ("lin", s[0], c[1].T, None) if ok else None

    def Add(self, s, c, a, ins):
        for lin, bias in ((s[0], c[1]), (s[1], c[0])):
            if _is(lin, "lin") and lin[3] is None and _vector(bias, lin[2].shape[0]) is not None:
                return ("lin", lin[1], lin[2], _vector(bias, lin[2].shape[0]))

    def Gemm(self, s, c, a, ins):
        if ((_is(s[0], "vec") or _is(s[0], "pool")) and c[1] is not None and a.get("alpha", 1.0) == 1.0
                and a.get("beta", 1.0) == 1.0 and not a.get("transA", 0)):
            fc = c[1] if a.get("transB", 0) else c[1].T
            bias = _vector(c[2] if len(c) > 2 else np.zeros(fc.shape[0], np.float32), len(fc))
            return None if bias is None else ("lin", s[0], fc, bias)

    def recurrent(self, node, a, ins):
        i, op = len(self.layers), node.op_type
        where = f"{op} node {node.name!r} (layer {i})"
        if i and op != self.layers[0][0]:
            _fail(f"{where} follows {self.layers[0][0]} layers; it runs one cell type")
        for name, value in a.items():
            if name not in ("hidden_size", "activations") and value not in ALLOWED.get(name, ()):
                _fail(f"{where} has {name}={value!r}; it runs forward, layout 0, no clip")
        acts = [v.lower() for v in a.get("activations", [])]  # the ONNX names, any case
        D = 2 if a.get("direction") == "bidirectional" else 1
        if i and D != self.layers[0][5]:
            _fail(f"{where} has {D} direction(s) where layer 0 has {self.layers[0][5]}")
        if D == 2 and acts[:len(acts) // 2] == acts[len(acts) // 2:]:
            acts = acts[:len(acts) // 2]  # the same for both directions, as PyTorch's
        default = DEFAULT_ACTIVATIONS.get(op)
        if acts and not (acts == default if default else
                         len(acts) == 1 and acts[0] in common.ACTIVATIONS):
            _fail(f"{where} has activations {acts}; it runs LSTM's and GRU's defaults, RNN's "
                  "Tanh, Relu or Sigmoid")
        if ins[4] or ins[7]:
            _fail(f"{where} takes sequence_lens or peepholes P")
        X = self.sym.get(ins[0])
        if not i and (_is(X, "in") or _is(X, "seq") and X[1][0] == "emb" and X[2] == "bt"):
            # the input itself, or its embedding, with no Transpose: already (T, B, .)
            X, self.time_major = ("seq", X if _is(X, "in") else X[1], "tb"), True
        if not (_is(X, "seq") and X[2] == "tb" and (X[1] == i - 1 if i else
                                                    not isinstance(X[1], int))):
            _fail(f"{where} reads {_describe(X)}, not time-major "
                  + (f"outputs of layer {i - 1}" if i else "frames or embeddings"))
        H = a["hidden_size"]
        for k, state in ((5, "h"), (6, "c"))[:2 if op == "LSTM" else 1]:
            self.initial(self.sym.get(ins[k]) if ins[k] else ("zeros", D, H), state, i, H, where,
                         D)
        full = [self.constant(name, f"{where} {k}") if name else
                np.zeros((D, 2 * common.GATES[CELLS[op]] * H), np.float32)  # B omitted: zeros
                for k, name in zip("WRB", ins[1:4])]
        self.layers.append((op, acts[0] if acts else "tanh", a.get("linear_before_reset", 0),
                            X[1], tuple(full), D))
        for name, value in zip(node.output, (("Y", i), ("fin", "h", i, i + 1),
                                             ("fin", "c", i, i + 1))):
            self.sym[name] = value

    def initial(self, value, state, i, H, where, D=1):
        """Layer i's initial state: zeros (D, B, H), or row i of one state input (D = 1)."""
        if _is(value, "in") and self.rows[value[1]] == 1:
            value = ("state", value[1], 0, 1)
        if D == 1 and _is(value, "state") and value[2:] == (i, i + 1):
            self.from_state[state].append(value[1])
        elif value != ("zeros", D, H):
            _fail(f"{where} starts from {_describe(value)}, not zeros"
                  + (f" or row {i} of a state input" if D == 1 else ""))


def read_chain(model):
    """The ``Chain`` of an ONNX graph, or ``UnsupportedError`` naming what did not match."""
    r = _Reader(model)
    for node in model.graph.node:
        r.visit(node)
    L = len(r.layers)
    if not L:
        _fail("found no LSTM, GRU or RNN node")
    if len({layer[1:3] for layer in r.layers}) > 1:
        _fail("the layers mix RNN activations or GRU linear_before_reset")
    op, activation, lbr, source, _, D = r.layers[0]  # source ("in", frames) or ("emb", ...)
    sequence = source[-1] if source[0] == "emb" else source[1]
    batch = 1 if r.time_major else 0  # the input's batch axis
    for owner in r.zero_owners:  # the zero states' batch must be the input's
        if owner not in ((("in", sequence), batch), (("seq", source, "bt"), batch),
                         (("seq", source, "tb"), 1)):
            _fail(f"a zero state takes its batch size from {owner}, not from the input")
    states = {}
    for state, names in r.from_state.items():
        if names and (len(names) != L or len(set(names)) > 1
                      or r.rows[names[0]] not in (L, None)):
            _fail(f"the initial {state} of the {L} layers come from {names}, not from the rows "
                  "of one (L, B, H) input or all zeros")
        states[state] = names[0] if names else None
    outputs, heads = {}, []
    for o in model.graph.output:
        v = r.sym.get(o.name)
        if _is(v, "fin") and v[2:] == (0, L) and D == 1:
            outputs[o.name] = v[1]
        elif _is(v, "lin") and (v[1] in (("seq", L - 1, "bt"), ("seq", L - 1, "tb"),
                                         ("vec", "h", L - 1)) and D == 1
                                or v[1] in (("pool", "mean", L - 1), ("pool", "max", L - 1))):
            outputs[o.name] = "y"
            heads.append(v)
        else:
            _fail(f"output {o.name!r} is {_describe(v)}, not a linear head on the top layer "
                  "(its mean or max over time for bidirectional layers) or the stacked final "
                  "states of forward ones")
    if len(heads) != 1:
        _fail(f"found {len(heads)} linear heads; it runs one")
    for name, value in r.inputs.items():  # what the kernels read: float32 or integer ids
        ids = name == sequence and source[0] == "emb"
        if name not in (sequence, *states.values()) or value.type.tensor_type.elem_type not in (
                (TensorProto.INT32, TensorProto.INT64) if ids else (TensorProto.FLOAT,)):
            _fail(f"input {name!r} is not the float32 frames, integer ids or float32 states")
    _, head, fc, fc_bias = heads[0]
    return Chain(sequence, r.const[source[1]] if source[0] == "emb" else None, op,
                 common.ACTIVATIONS[activation], int(lbr), [layer[4] for layer in r.layers],
                 states, outputs, head[0] == "seq", fc,
                 np.zeros(len(fc), np.float32) if fc_bias is None else fc_bias,
                 r.time_major, head == ("seq", L - 1, "tb"), D,
                 head[1] if head[0] == "pool" else "")


def _describe(v):
    return ("a value it does not know" if v is None
            else f"the result of {v[1]}" if v[0] == "?" else f"{v[:2]}")
