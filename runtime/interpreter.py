"""The numba engine: a small ONNX graph interpreter whose recurrent nodes run on the reference.

``LSTM``, ``GRU`` and ``RNN`` nodes go to ``reference.run_node`` (numba kernels that
follow the ONNX spec); the handful of glue operators rnnedge graphs use (Gather,
Transpose, MatMul, ...) run in numpy. Weights come from the ONNX initializers, never
from PyTorch, so this is a second, independent reading of the exported file.
Anything outside that set raises ``UnsupportedError`` naming the operator.
"""

import numpy as np
from onnx import helper, numpy_helper

from .errors import UnsupportedError

_ONNX_TO_NUMPY = {1: np.float32, 6: np.int32, 7: np.int64, 10: np.float16, 11: np.float64}


def _attrs(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _cast(x, to):
    if to not in _ONNX_TO_NUMPY:
        raise UnsupportedError(f"Cast to ONNX type {to} is not supported by the numba engine")
    return x.astype(_ONNX_TO_NUMPY[to])


def _slice(x, starts, ends, axes=None, steps=None):
    axes = range(len(starts)) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    index = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        index[int(a)] = slice(int(s), int(e), int(st))
    return x[tuple(index)]


def _reshape(x, shape):
    shape = [x.shape[i] if d == 0 else int(d) for i, d in enumerate(shape)]
    return x.reshape(shape)


def _reduce(fn):
    def run(x, axes=None, keepdims=1, **_):
        return fn(x, axis=None if axes is None else tuple(int(a) for a in axes),
                  keepdims=bool(keepdims))
    return run


# op_type -> fn(*inputs, **attributes) returning one array
OPS = {
    "Identity": lambda x: x,
    "Gather": lambda data, idx, axis=0: np.take(data, idx, axis=axis),
    "Transpose": lambda x, perm=None: np.ascontiguousarray(np.transpose(x, perm)),
    "Squeeze": lambda x, axes=None: np.squeeze(x, axis=None if axes is None else tuple(int(a) for a in axes)),
    "Unsqueeze": lambda x, axes: np.expand_dims(x, tuple(int(a) for a in axes)),
    "Slice": _slice,
    "Reshape": lambda x, shape, allowzero=0: _reshape(x, shape),
    "Concat": None,  # variadic, handled in run()
    "MatMul": lambda a, b: np.matmul(a, b),
    "Add": lambda a, b: a + b,
    "Sub": lambda a, b: a - b,
    "Mul": lambda a, b: a * b,
    "Div": lambda a, b: a / b,
    "Sigmoid": lambda x: (1.0 / (1.0 + np.exp(-x))).astype(x.dtype),
    "Cast": lambda x, to: _cast(x, to),
    "ReduceSum": _reduce(np.sum),
    "ReduceMax": _reduce(np.max),
    "Shape": lambda x: np.array(x.shape, dtype=np.int64),
    "Range": lambda start, limit, delta: np.arange(start, limit, delta),
    "Less": lambda a, b: a < b,
    "Where": lambda c, a, b: np.where(c, a, b),
    "Max": lambda *xs: np.maximum.reduce(xs),
}
RECURRENT = {"LSTM", "GRU", "RNN"}


class Interpreter:
    """Runs an ``onnx.ModelProto`` node by node; ``run(feeds) -> {output name: array}``."""

    def __init__(self, model, kernel="numba"):
        unknown = sorted({n.op_type for n in model.graph.node} - set(OPS) - RECURRENT)
        if unknown:
            raise UnsupportedError(f"the numba engine does not implement {', '.join(unknown)}")
        from .reference import bind_node

        self.constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        # recurrent nodes are bound once: attributes read and checked at load, not per call
        self.nodes = [(n, bind_node(n, engine=kernel) if n.op_type in RECURRENT else _attrs(n))
                      for n in model.graph.node]
        self.outputs = [o.name for o in model.graph.output]

    def run(self, feeds):
        env = dict(self.constants)
        env.update(feeds)
        for node, attrs in self.nodes:
            args = [env[name] if name else None for name in node.input]
            if node.op_type in RECURRENT:
                results = attrs(args)
            elif node.op_type == "Concat":
                results = [np.concatenate(args, axis=attrs["axis"])]
            else:
                results = [OPS[node.op_type](*args, **attrs)]
            for name, value in zip(node.output, results):
                if name:
                    env[name] = value
        return {name: env[name] for name in self.outputs}
