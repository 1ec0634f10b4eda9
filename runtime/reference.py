"""Run one ONNX recurrent node (LSTM, GRU, RNN) on the kernels of ``ops``.

Reads the node's attributes, lines the inputs up with the operator's signature and
returns the outputs lined up with ``node.output``. Engines: "numba" (the reference
kernels), "numpy" (their plain twins), "fast" and "fast-int8" (the fused kernels of
ops/fused_node.py; a node they cannot run is bound to "numba" instead, and the bound
node's ``engine`` says which ran). Attribute values are checked by the operators
themselves; names they do not implement (``activation_alpha``, ...) raise
``UnsupportedError`` here. Not a graph runner: ``interpreter.py`` walks the graph.
"""

from typing import Callable, NamedTuple

from onnx import helper

from .errors import InputError, UnsupportedError
from .ops.fused_node import FusedNode
from .ops.gru import gru, gru_numpy
from .ops.lstm import lstm, lstm_numpy
from .ops.rnn import rnn, rnn_numpy

_COMMON = ("hidden_size", "direction", "layout", "clip", "activations")


class _Op(NamedTuple):
    numba: Callable
    numpy: Callable
    inputs: tuple       # ONNX input names, in order
    outputs: int
    attributes: tuple   # the attribute names the operator implements


_OPS = {
    "LSTM": _Op(lstm, lstm_numpy, ("X", "W", "R", "B", "sequence_lens", "initial_h",
                                   "initial_c", "P"), 3, _COMMON + ("input_forget",)),
    "GRU": _Op(gru, gru_numpy, ("X", "W", "R", "B", "sequence_lens", "initial_h"), 2,
               _COMMON + ("linear_before_reset",)),
    "RNN": _Op(rnn, rnn_numpy, ("X", "W", "R", "B", "sequence_lens", "initial_h"), 2, _COMMON),
}
ENGINES = ("numba", "numpy", "fast", "fast-int8")


def run_node(node, inputs, *, engine="numba"):
    """Run ``node`` on ``inputs`` (arrays aligned with ``node.input``, None when omitted).

    Returns a list aligned with ``node.output``, None where the node omits an output.
    ``engine="numpy"`` runs the plain twins instead of the numba kernels.
    """
    return bind_node(node, engine=engine)(inputs)


def bind_node(node, *, engine="numba", constants=None):
    """Read ``node`` once and return a ``BoundNode``: ``run(inputs) -> outputs``.

    ``constants`` (name -> array), when given, lets the fast engines pack W, R and B now
    rather than on the first call.
    """
    op = _OPS.get(node.op_type)
    if op is None:
        raise UnsupportedError(f"the reference runs LSTM, GRU and RNN nodes, not {node.op_type}")
    if engine not in ENGINES:
        raise UnsupportedError(f"engine={engine!r}; choose one of {', '.join(ENGINES)}")
    attributes = _attributes(node, op)
    names, outputs = list(node.input), list(node.output)
    if len(names) > len(op.inputs) or len(outputs) > op.outputs:
        raise InputError(f"{node.op_type} node {node.name!r} has {len(names)} inputs and "
                         f"{len(outputs)} outputs; the operator takes at most "
                         f"{len(op.inputs)} and {op.outputs}")
    bound = BoundNode(node, op, names, outputs, engine, attributes)
    if engine.startswith("fast"):
        try:
            fused = FusedNode(node.op_type, attributes, names,
                              quantize="int8" if engine == "fast-int8" else None)
        except UnsupportedError as error:
            bound.engine, bound.fallback = "numba", f"node {node.name!r}: {error}"
        else:
            bound.fn, bound.attributes = fused, {}
            weights = [constants.get(name) if constants and name else None
                       for name in (names + [""] * 4)[1:4]]  # W, R, B
            if weights[0] is not None and weights[1] is not None:
                fused.pack(*weights)
    return bound


class BoundNode:
    """A node bound to one engine; ``engine`` names the one that runs it ("numba" when a
    fast engine fell back, then ``fallback`` says why)."""

    def __init__(self, node, op, names, outputs, engine, attributes):
        self.node, self.op, self.names, self.outputs = node, op, names, outputs
        self.engine, self.fallback = engine, None
        self.fn = op.numpy if engine == "numpy" else op.numba
        self.attributes = attributes  # keyword arguments of ``fn``

    def __call__(self, inputs):
        args = _arguments(self.node.op_type, self.op, self.names, inputs)
        results = self.fn(*args, **self.attributes)
        return [result if name else None for name, result in zip(self.outputs, results)]


def _attributes(node, op):
    """The node's attributes as keyword arguments of the operator; strings decoded."""
    attributes = {}
    for attribute in node.attribute:
        value = helper.get_attribute_value(attribute)
        if attribute.name not in op.attributes:
            raise UnsupportedError(f"{node.op_type} node {node.name!r}: attribute "
                                   f"{attribute.name}={value!r} is not supported by the reference")
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, list):
            value = [v.decode() if isinstance(v, bytes) else v for v in value]
        attributes[attribute.name] = value
    if "hidden_size" not in attributes:
        raise UnsupportedError(f"{node.op_type} node {node.name!r} has no hidden_size "
                               "attribute; the reference needs it")
    return attributes


def _arguments(op_type, op, names, inputs):
    """Inputs as positional arguments: None for an empty name or a short list."""
    if len(inputs) > len(names):
        raise InputError(f"{op_type}: {len(inputs)} inputs given for a node with "
                         f"{len(names)} ({', '.join(names)})")
    padded = list(inputs) + [None] * (len(names) - len(inputs))
    args = [value if name else None for name, value in zip(names, padded)]
    required = (args + [None] * 3)[:3]
    missing = [name for name, value in zip(op.inputs, required) if value is None]
    if missing:
        raise InputError(f"{op_type}: required input {', '.join(missing)} is missing")
    return args
