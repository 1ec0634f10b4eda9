"""The fast engine of whole-sequence classifiers: rnnedge's sentiment and series exports, fused.

``FastSeqEngine(onnx_model, quantize=None | "int8")`` runs what ``export/models.py``
(sentiment: token ids (B, T), ``lengths`` -> ``logit``, ``prob`` (B,)) and
``export/series.py`` (raw frames (B, T, C), ``lengths`` -> ``logits``, ``probs`` (B, K),
with the forward models' states ``h`` [, ``c``] (L, B, H) [, ``pooled`` (B, H), ``seen``
(B, 1)] in and out) write: per-channel normalisation or an embedding, LSTM/GRU/RNN layers
stopped at each case's true length (``sequence_lens``), maybe bidirectional, a last, mean
or max head, a linear layer, sigmoid or softmax: ``run(feeds)`` is one numba call
(ops/fused_stack.py), fp32 or int8.

``read_seq`` does not trace every operator (the exporter sorts the batch by length and
back around the recurrent nodes): the metadata says which exporter wrote the file and with
what config, and the graph must agree with it where the answer depends on it (recurrent
nodes, embedding or normalisation, the head's reduction, the linear layer, the output
activation), else ``UnsupportedError`` names what differs (``make_engine`` falls back).
Users' pooled or bidirectional graphs come through ``chain_graph.read_chain`` instead
(``fast_chain.FastPooledEngine``). Not thread-safe.
"""

from typing import NamedTuple

import numpy as np
from onnx import helper, numpy_helper

from .engine import Engine
from .errors import InputError, UnsupportedError
from .feeds import (INT64, all_finite, checked_sequence, checked_states, copy_finite4, is_array,
                    split_sequence, state_copy, takes_declared)
from .ops import common, fused_stack
from .ops.fused_stack import NO_STATE
from .ops.fused_node import CELLS, DEFAULT_ACTIVATIONS

OPS = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}
REDUCTIONS = {"last": set(), "mean": {"ReduceSum"}, "max": {"ReduceMax"}}
MOVES = {"Squeeze", "Unsqueeze", "Transpose", "Reshape", "Gather", "Cast", "Identity", "Sub",
         "Div", "Slice", "Concat"}  # ops a layer's input is followed back through


class Seq(NamedTuple):
    """What ``read_seq`` found."""

    sequence: str     # "tokens" (B, T) int64 or "frames" (B, T, F) float32
    clamp: bool       # lengths above T mean T (series streaming), else they are refused
    embedding: object  # (V, E), or None for frames
    mean: object      # (F,) frames' normalisation, or None
    std: object
    op: str
    activation: int
    lbr: int
    directions: int
    layers: list      # [(W (D, G*H, I), R (D, G*H, H), B (D, 2*G*H))]
    head: str
    states: dict      # "h", "c", "pooled", "seen" -> graph input
    outputs: dict     # graph output -> "logit", "prob", "h", "c", "pooled" or "seen"
    squeeze: bool     # logit (B,) rather than logits (B, C)
    sigmoid: bool     # prob = sigmoid(logit), else softmax over the classes
    fc: np.ndarray    # (C, D*H)
    fc_bias: np.ndarray
    lengths: str = "lengths"  # the lengths input, or "" (every case runs its whole time)
    time_major: bool = False  # the sequence is (T, B, .)


def _fail(message):
    raise UnsupportedError(f"fast sequence engine: {message}")


def _config(meta):
    """(config, sequence input name, {state input: state output}) from the metadata, or fail."""
    try:
        if meta is None or meta.kind not in ("sentiment", "series"):
            _fail("the file is not an rnnedge sentiment or series classifier (rnnedge.kind)")
        found = meta.config, "tokens" if meta.kind == "sentiment" else "frames", meta.states or {}
        config = found[0]
        if config["cell"] not in OPS or config["head"] not in REDUCTIONS:
            _fail(f"its config has cell {config['cell']!r} and head {config['head']!r}")
        int(config["hidden_size"]), int(config["num_layers"]), bool(config["bidirectional"])
        return found
    except (ValueError, KeyError, TypeError) as e:
        _fail(f"its rnnedge metadata does not read ({type(e).__name__}: {e})")


class _Graph:
    """Constants, producers and ancestry of an ONNX graph's values."""

    def __init__(self, model):
        g = model.graph
        self.const = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        self.made = {}
        for node in g.node:
            for out in node.output:
                self.made[out] = node
            if node.op_type == "Constant" and node.attribute[0].name == "value":
                self.const[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        self.nodes, self.inputs = list(g.node), [i.name for i in g.input]

    def constant(self, name, what):
        if name not in self.const:
            _fail(f"{what} ({name!r}) is not a constant")
        return self.const[name]

    def sources(self, name):
        """Graph inputs and recurrent outputs ``name`` is computed from through MOVES, along
        their data inputs (a Gather's indices are the exporter's sorting of the batch by
        length, undone after the recurrent nodes); "zeros" for a ConstantOfShape of 0."""
        found, todo = set(), [name]
        while todo:
            v = todo.pop()
            node = self.made.get(v)
            if v in self.const:
                continue
            if node is None or node.op_type in CELLS:
                found.add(v)
            elif node.op_type == "ConstantOfShape":
                value = _attrs(node).get("value")
                zero = value is None or not numpy_helper.to_array(value).any()
                found.add("zeros" if zero else ("?", node.op_type, node.name))
            elif node.op_type in MOVES:
                data = 1 if node.op_type == "Gather" and node.input[0] in self.const else 0
                wide = node.op_type in ("Concat", "Sub", "Div")
                todo.extend(n for n in (node.input if wide else node.input[data:data + 1]) if n)
            else:
                found.add(("?", node.op_type, node.name))
        return found

    def producer(self, name, op, what):
        node = self.made.get(name)
        if node is None or node.op_type != op:
            _fail(f"{what} is {'a graph input' if node is None else node.op_type}, not {op}")
        return node


def _attrs(node):
    """A node's attributes, strings decoded."""
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else (
            [x.decode() for x in v] if isinstance(v, list) and v and isinstance(v[0], bytes) else v)
    return out


def _recurrent(g, config, sequence):
    """(the recurrent nodes, their (activation name, lbr, (W, R, B))), each node checked:
    operator, attributes, sequence_lens, and its input the layer below (or the sequence)."""
    op, H, L = OPS[config["cell"]], config["hidden_size"], config["num_layers"]
    direction = "bidirectional" if config["bidirectional"] else "forward"
    nodes = [n for n in g.nodes if n.op_type in CELLS]
    if len(nodes) != L or any(n.op_type != op for n in nodes):
        _fail(f"the graph has {[n.op_type for n in nodes]}, its config {L} x {op}")
    layers, below = [], {sequence}
    for i, node in enumerate(nodes):
        a, ins = _attrs(node), list(node.input) + [""] * (8 - len(node.input))
        where = f"{op} node {node.name!r} (layer {i})"
        if (a.get("hidden_size") != H or a.get("direction", "forward") != direction
                or a.get("layout", 0) or "clip" in a or a.get("input_forget", 0)):
            _fail(f"{where} has {a}; expected hidden_size {H}, {direction}, layout 0, no clip")
        acts = {v.lower() for v in a.get("activations", [])}
        default = DEFAULT_ACTIVATIONS.get(op)
        if acts and not (acts == set(default) if default else
                         len(acts) == 1 and acts <= set(common.ACTIVATIONS)):
            _fail(f"{where} has activations {a['activations']}")
        if not ins[4] or ins[7]:
            _fail(f"{where} lacks sequence_lens or has peepholes P")
        if g.sources(ins[0]) != below:
            _fail(f"{where} reads {sorted(map(str, g.sources(ins[0])))}, not {sorted(below)}")
        act = a.get("activations", ["tanh"])[0].lower() if op == "RNN" else "tanh"
        layers.append((act, a.get("linear_before_reset", 0),
                       tuple(g.constant(n, f"{where} {k}") for k, n in zip("WRB", ins[1:4]))))
        below = {node.output[0]}
    if len({layer[:2] for layer in layers}) > 1:
        _fail("the layers mix RNN activations or GRU linear_before_reset")
    return nodes, layers


def _head(g, output, squeeze):
    """fc (C, D*H), fc_bias (C,) of the linear layer that makes ``output``."""
    if squeeze:  # sentiment: Squeeze(Add(MatMul(x, W^T), b))
        add = g.producer(g.producer(output, "Squeeze", output).input[0], "Add", output)
        mm = g.producer(add.input[0], "MatMul", output)
        return g.constant(mm.input[1], "the head's weight").T, g.constant(add.input[1], "bias")
    gemm = g.producer(output, "Gemm", output)
    a = _attrs(gemm)
    if a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0 or a.get("transA", 0):
        _fail(f"the head's Gemm has {a}")
    W = g.constant(gemm.input[1], "the head's weight")
    return (W if a.get("transB", 0) else W.T), g.constant(gemm.input[2], "the head's bias")


def read_seq(model, meta=None):
    """The ``Seq`` of an rnnedge classifier, or ``UnsupportedError`` naming what did not match;
    ``meta``: the file's ``Metadata`` (read from ``model`` when not given)."""
    if meta is None:
        from .metadata import read_metadata

        meta = read_metadata(model)
    config, sequence, state_map = _config(meta)
    g = _Graph(model)
    if sequence not in g.inputs or "lengths" not in g.inputs:
        _fail(f"the graph's inputs {g.inputs} lack {sequence} or lengths")
    nodes, layers = _recurrent(g, config, sequence)
    embedding = mean = std = None
    if sequence == "tokens":
        users = [n for n in g.nodes if n.op_type == "Gather" and n.input[1:] == ["tokens"]]
        if len(users) != 1 or users[0].input[0] not in g.const:
            _fail("tokens do not index one constant embedding table")
        embedding = g.const[users[0].input[0]]
    else:
        sub = [n for n in g.nodes if n.op_type == "Sub" and n.input[0] == "frames"]
        div = [n for n in g.nodes if sub and n.op_type == "Div" and n.input[0] == sub[0].output[0]]
        if len(sub) != 1 or len(div) != 1:
            _fail("frames are not normalised by one Sub and one Div")
        mean, std = g.constant(sub[0].input[1], "the mean"), g.constant(div[0].input[1], "std")
    head, ops = config["head"], {n.op_type for n in g.nodes}
    if (ops & {"ReduceSum", "ReduceMax"}) != REDUCTIONS[head]:
        _fail(f"the head is {head!r} but the graph reduces with "
              f"{sorted(ops & {'ReduceSum', 'ReduceMax'})}")
    names = [o.name for o in model.graph.output]
    squeeze = sequence == "tokens"
    fc, fc_bias = _head(g, names[0], squeeze)
    act = "Sigmoid" if squeeze else "Softmax"
    if g.producer(names[1], act, names[1]).input[0] != names[0]:
        _fail(f"{names[1]} is not {act}({names[0]})")
    if act == "Softmax" and _attrs(g.made[names[1]]).get("axis", -1) not in (-1, 1):
        _fail("the softmax is not over the classes")
    outputs = {names[0]: "logit", names[1]: "prob"}
    for state, out in state_map.items():
        if state not in g.inputs or out not in names:
            _fail(f"state {state} -> {out} is not a graph input and output")
        outputs[out] = state
    if len(outputs) != len(names):
        _fail(f"outputs {[n for n in names if n not in outputs]} are not read")
    for k, state in ((5, "h"), (6, "c")):
        for node in nodes:
            src = g.sources(node.input[k]) if len(node.input) > k and node.input[k] else set()
            if src != ({state} if state in state_map else src & {"zeros"}):
                _fail(f"{node.name!r} starts from {sorted(map(str, src))}, not the state {state}")
    acts = [layer[0] for layer in layers]
    clamp = any(n.op_type == "Clip" and n.input[0] == "lengths" for n in g.nodes)
    return Seq(sequence, clamp, embedding,
               mean, std, nodes[0].op_type, common.ACTIVATIONS.get(acts[0], 0), layers[0][1],
               2 if config["bidirectional"] else 1, [layer[2] for layer in layers], head,
               {s: s for s in state_map}, outputs, squeeze, squeeze, fc, fc_bias)


class FastSeqEngine(Engine):
    """Fused kernels over a whole-sequence classifier, ``run`` as ``OrtEngine.run``
    (``twin=True``: the plain numpy twin, ``fused_stack.run_numpy``)."""

    all_finite = staticmethod(all_finite)  # for ``GraphModel.check``: compiled, one call

    def __init__(self, model, quantize=None, twin=False, seq=None, threads=1):
        if quantize not in (None, "int8"):
            raise InputError(f"quantize must be None or 'int8', not {quantize!r}")
        self.seq = s = seq or read_seq(model)  # ``seq``: what another reader found
        none = np.zeros(0, np.float32)
        packed = fused_stack.pack(CELLS[s.op], s.activation, s.lbr, s.layers, s.embedding,
                                  none if s.mean is None else s.mean,
                                  none if s.std is None else s.std, s.fc, s.fc_bias)
        self.name = "fast-int8" if quantize else "fast"
        self.arguments = fused_stack.arguments(
            packed, fused_stack.HEADS[s.head], quantize == "int8", s.clamp,
            "sigmoid" if len(s.fc_bias) == 1 else "softmax")
        self.calls = fused_stack.Calls(packed, threads, twin)  # rows over threads when > 1
        self.D, self.H = packed[6].shape[:2]
        self.L, self.F = len(s.layers), len(packed[3])
        self.outputs = [o.name for o in model.graph.output]
        self.no_tokens = np.zeros((0, 0), np.int64)
        # the kernel refuses ids outside the table and lengths outside [1, T] (``_first_bad``)
        self.checks_tokens, self.checks_lengths = True, not s.clamp

    def run(self, feeds):
        """The graph's outputs from ``feeds``: logit(s), prob(s) and the states; new arrays."""
        s = self.seq
        for name in (s.sequence, s.lengths):
            if name and name not in feeds:
                raise InputError(f"feeds lack {name}")
        X, tokens = split_sequence(np.asarray(feeds[s.sequence]), s.embedding is not None, self.F,
                                   s.sequence, self.no_tokens, s.time_major)
        B = X.shape[0]
        lengths = np.asarray(feeds[s.lengths]) if s.lengths else np.full(B, X.shape[1])
        if lengths.shape != (B,) or lengths.dtype.kind not in "iu":
            raise InputError(f"lengths is {lengths.dtype} {lengths.shape}; expected ({B},) "
                             "integers")
        st = {k: state_copy(feeds, s.states.get(k), shape) for k, shape in self._shapes(B).items()}
        return self._outputs(X, tokens, lengths.astype(np.int64, copy=False), st)

    def checked_run(self, signature):
        """``run_checked`` when the graph declares the inputs it checks, else None: for
        ``GraphModel``, whose ``check`` it then skips on the common case."""
        s = self.seq
        takes = {s.sequence: ("int64", 2, set()) if s.embedding is not None else
                 ("float32", 3, {(2, self.F)}), **({s.lengths: ("int64", 1, set())}
                                                     if s.lengths else {})}
        for key, shape in self._shapes(0).items():
            if key in s.states:  # the sizes it checks: all but the batch axis
                takes[s.states[key]] = ("float32", len(shape),
                                        {(axis, n) for axis, n in enumerate(shape) if n})
        return self.run_checked if takes_declared(signature, takes) else None

    def run_checked(self, feeds):
        """``run`` of the common case (the sequence and lengths in the graph's dtypes, finite
        float32 states of the model's shapes, all C-contiguous) with every check of
        ``GraphModel.check``, in one pass (``feeds.py``); None for anything else: the caller
        then takes the long path (``check``, ``run``), which says what is wrong."""
        s = self.seq
        X, tokens = checked_sequence(feeds.get(s.sequence), s.embedding is not None, self.F,
                                     self.no_tokens, s.time_major)
        if X is None:
            return None
        lengths = feeds.get(s.lengths) if s.lengths else np.full(X.shape[0], X.shape[1])
        if not is_array(lengths, INT64, X.shape[:1]):
            return None
        given, st = checked_states(feeds, s.states, self._shapes(X.shape[0]))
        if given is None or not copy_finite4(X, *given, *st.values()):
            return None
        return self._outputs(X, tokens, lengths, st)

    def _shapes(self, B):
        """The states' shapes at batch B: h, c (L*D, B, H), pooled (B, D*H), seen (B, 1)."""
        return {"h": (self.L * self.D, B, self.H), "c": (self.L * self.D, B, self.H),
                "pooled": (B, self.D * self.H), "seen": (B, 1)}

    def _outputs(self, X, tokens, lengths, st):
        """The kernel on checked inputs (lengths int64) and state copies it updates in place."""
        s = self.seq
        B, T = X.shape[:2]
        y = np.empty((B, 1, len(s.fc_bias)), np.float32)
        probs = np.empty_like(y)
        bad = self.calls.run(B, T, X, tokens, lengths, NO_STATE, NO_STATE, st["h"], st["c"],
                             st["pooled"], st["seen"], y, probs, *self.arguments)
        if bad >= 0 or bad == fused_stack.NOT_FINITE:
            raise self._error(bad, lengths, tokens, T)
        values = {"logit": y[:, 0, 0] if s.squeeze else y[:, 0],
                  "prob": probs[:, 0, 0] if s.squeeze else probs[:, 0], **st}
        return {name: values[s.outputs[name]] for name in self.outputs}

    def _error(self, bad, lengths, tokens, T):
        """The InputError of the kernel's code ``bad`` (``fused_stack.run``)."""
        if bad == fused_stack.NOT_FINITE:  # what ``GraphModel.check`` refuses first
            return InputError(f"{self.seq.sequence} holds NaN or infinity")
        if bad < len(lengths):
            rule = "(above T means T here)" if self.seq.clamp else "(the padded time)"
            return InputError(f"lengths[{bad}] is {lengths[bad]}; lengths must lie in [1, {T}] {rule}")
        where = tuple(int(i) for i in np.unravel_index(bad - len(lengths), tokens.shape))
        return InputError(f"token id {tokens[where]} at {where} is outside the embedding "
                          f"[0, {len(self.seq.embedding)})")
