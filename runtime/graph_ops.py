"""The numba engine's operator table: every non-recurrent ONNX operator it runs, in numpy.

``OPS`` maps an operator to its implementations keyed by the opset version that
introduced their semantics; ``bind(node, opset)`` picks the one in force, reads and
checks the node's attributes once, and returns ``run(inputs) -> outputs``. A function's
keyword-only parameters are the attributes it implements (with the spec's defaults),
its positional parameters the inputs; any other attribute, a value outside
``ALLOWED``, or an operator older than its first entry raises ``UnsupportedError``
naming the operator, the node and the attribute. Math and neural-network operators
live here, shape and index operators in ``shape_ops.py``, pooling and the windows
``Conv`` shares with it in ``pool_ops.py``; LSTM, GRU and RNN are
``reference.py``'s, and walking the graph (Loop, If) is ``interpreter.py``'s.
"""

import functools
import inspect
import math

import numpy as np
from onnx import helper, numpy_helper

from . import pool_ops as P
from . import sequence_ops as Q
from . import shape_ops as S
from .errors import UnsupportedError


def div(A, B):
    """Div-14: integer division truncates toward zero, as ONNX (and C) does."""
    if np.issubdtype(np.asarray(A).dtype, np.integer):
        return (np.sign(A) * np.sign(B) * (np.abs(A) // np.abs(B))).astype(np.asarray(A).dtype)
    return np.divide(A, B)


def pow_(X, Y):
    """Pow-15: the result has X's type whatever Y's is."""
    X = np.asarray(X)
    if np.issubdtype(X.dtype, np.floating):
        return np.power(X, np.asarray(Y).astype(X.dtype))
    return np.power(X.astype(np.float64), Y).astype(X.dtype)


def mod(A, B, *, fmod=0):
    """Mod-10/13: the remainder with the divisor's sign (``fmod`` 0, Python's %) or with the
    dividend's (``fmod`` 1, C's fmod; the spec requires it for floats)."""
    return np.fmod(A, B) if fmod else np.mod(A, B)


def einsum(*Inputs, equation):
    """Einsum-12 by numpy's einsum, whose grammar is the spec's (explicit ``->`` or implicit
    output in alphabetical order, ``...`` broadcast dims); spaces are dropped first."""
    return np.einsum(equation.replace(" ", ""), *Inputs, optimize=True)


_erf = np.vectorize(math.erf, otypes=[np.float64])


def erf(input):
    """Erf-13, exact to the input's precision (numpy has no erf ufunc)."""
    return _erf(input).astype(np.asarray(input).dtype)


def sigmoid(X):
    """Sigmoid-13 from exp(-|x|): no overflow, and small results keep their precision."""
    e = np.exp(-np.abs(X))
    return np.where(X >= 0, 1, e) / (1 + e)


def leaky_relu(X, *, alpha=0.01):
    """LeakyRelu-16."""
    return np.where(X < 0, X * alpha, X)


def gelu(X, *, approximate="none"):
    """Gelu-20: x * Phi(x), with Phi by erf or by the tanh approximation."""
    if approximate == "tanh":
        return 0.5 * X * (1 + np.tanh(math.sqrt(2 / math.pi) * (X + 0.044715 * X ** 3)))
    return 0.5 * X * (1 + erf(X * (1 / math.sqrt(2))))


def clip(input, min=None, max=None):
    """Clip-13: bounds as optional inputs."""
    if min is None and max is None:
        return input
    return np.clip(input, min, max)


def clip_6(input, *, min=-3.4028234663852886e38, max=3.4028234663852886e38):
    """Clip-6: bounds as attributes."""
    return np.clip(input, min, max).astype(np.asarray(input).dtype)


def softmax(input, *, axis=-1):
    """Softmax-13: along one axis."""
    e = np.exp(input - np.max(input, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(input, *, axis=-1):
    """LogSoftmax-13: along one axis."""
    shifted = input - np.max(input, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def _coerced(fn):
    """Softmax-1/11 and LogSoftmax-1/11: over all dims from ``axis`` on, as one row."""
    def run(input, *, axis=1):
        rows = S.flatten(input, axis=axis % np.ndim(input))  # (N, D)
        return fn(rows, axis=1).reshape(np.shape(input))
    run.__doc__ = fn.__doc__.replace("-13: along one axis", "-1/11: coerced to 2-D")
    return run


def gemm(A, B, C=None, *, alpha=1.0, beta=1.0, transA=0, transB=0):
    """Gemm-13: alpha * A' B' + beta * C, scaling skipped when 1 to match onnxruntime bit for bit."""
    Y = np.matmul(A.T if transA else A, B.T if transB else B)
    if alpha != 1.0:
        Y = Y * np.asarray(alpha, Y.dtype)
    if C is not None:
        Y = Y + (C if beta == 1.0 else C * np.asarray(beta, Y.dtype))
    return Y


def _variadic(ufunc, name):
    def run(*data_0):
        return functools.reduce(ufunc, data_0)
    run.__doc__ = f"{name}-13: element-wise over any number of broadcast inputs."
    return run


def _reduce(fn, name, axes_input):
    """ReduceX with ``axes`` as an input (ReduceSum-13, the others 18) or an attribute."""
    def reduce(data, axes, keepdims, noop_with_empty_axes):
        if axes is None or np.size(axes) == 0:
            if noop_with_empty_axes:
                return data
            axes = None
        axes = None if axes is None else tuple(int(a) for a in np.reshape(axes, -1))
        out = fn(np.asarray(data), axis=axes, keepdims=bool(keepdims))
        return np.asarray(out).astype(np.asarray(data).dtype, copy=False)

    if axes_input:
        def run(data, axes=None, *, keepdims=1, noop_with_empty_axes=0):
            return reduce(data, axes, keepdims, noop_with_empty_axes)
    else:
        def run(data, *, axes=None, keepdims=1):
            return reduce(data, axes, keepdims, 0)
    run.__doc__ = f"{name} with axes as {'an input' if axes_input else 'an attribute'}."
    return run


def arg_max(data, *, axis=0, keepdims=1, select_last_index=0):
    """ArgMax-13: int64 indices; ties go to the first index unless ``select_last_index``."""
    data = np.asarray(data)
    if select_last_index:
        index = data.shape[axis] - 1 - np.argmax(np.flip(data, axis), axis=axis)
    else:
        index = np.argmax(data, axis=axis)
    index = index.astype(np.int64)
    return np.expand_dims(index, axis) if keepdims else index


def conv(X, W, B=None, *, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None,
         pads=None, strides=None):
    """Conv-11 over any number of spatial dims, as one matmul per group on strided windows."""
    N, C = X.shape[:2]
    M, kernel = W.shape[0], W.shape[2:]
    spatial = len(kernel)
    strides = strides or [1] * spatial
    dilations = dilations or [1] * spatial
    begin, end = P.spatial_pads(auto_pad, pads, X.shape[2:], kernel, strides, dilations)
    windows = P.windows(X, kernel, strides, dilations, begin, end)  # (N, C, O..., K...)
    out = windows.shape[2:2 + spatial]                   # (O1, O2, ...)
    G = group
    # (N, C, O..., K...) -> (N, G, O, C/G * K): one row of the product per output position
    cols = windows.reshape(N, G, C // G, int(np.prod(out)), int(np.prod(kernel)))
    cols = cols.transpose(0, 1, 3, 2, 4).reshape(N, G, int(np.prod(out)), -1)
    weights = W.reshape(G, M // G, -1)                   # (G, M/G, C/G * K)
    Y = np.matmul(cols, weights.transpose(0, 2, 1))      # (N, G, O, M/G)
    Y = Y.transpose(0, 1, 3, 2).reshape((N, M) + tuple(out))
    if B is not None:
        Y = Y + B.reshape((M,) + (1,) * spatial)
    return Y


def batch_normalization(X, scale, B, input_mean, input_var, *, epsilon=1e-5, momentum=0.9,
                        training_mode=0):
    """BatchNormalization-15 in inference mode, statistics over channel dim 1."""
    shape = (-1,) + (1,) * (X.ndim - 2)
    inv = (scale / np.sqrt(input_var + np.asarray(epsilon, input_var.dtype))).reshape(shape)
    return (X - input_mean.reshape(shape)) * inv + B.reshape(shape)


def layer_normalization(X, Scale, B=None, *, axis=-1, epsilon=1e-5, stash_type=1):
    """LayerNormalization-17: Y, Mean and InvStdDev over the dims from ``axis`` on, in float32."""
    axes = tuple(range(axis % X.ndim, X.ndim))
    x = X.astype(np.float32, copy=False)
    mean = np.mean(x, axis=axes, keepdims=True)
    centred = x - mean
    inv_std = 1 / np.sqrt(np.mean(centred * centred, axis=axes, keepdims=True)
                          + np.float32(epsilon))
    Y = centred * inv_std * Scale
    if B is not None:
        Y = Y + B
    return Y.astype(X.dtype, copy=False), mean, inv_std


OPS = {
    "Abs": {6: np.abs}, "Neg": {6: np.negative}, "Sqrt": {6: np.sqrt}, "Exp": {6: np.exp},
    "Log": {6: np.log}, "Reciprocal": {6: np.reciprocal}, "Floor": {6: np.floor},
    "Ceil": {6: np.ceil}, "Tanh": {6: np.tanh}, "Erf": {9: erf}, "Sigmoid": {6: sigmoid},
    "Relu": {6: lambda X: np.maximum(X, 0)}, "LeakyRelu": {6: leaky_relu}, "Gelu": {20: gelu},
    "Clip": {6: clip_6, 11: clip},
    "Add": {7: np.add}, "Sub": {7: np.subtract}, "Mul": {7: np.multiply}, "Div": {7: div},
    "Pow": {7: pow_}, "Mod": {10: mod}, "Max": {8: _variadic(np.maximum, "Max")},
    "Min": {8: _variadic(np.minimum, "Min")},
    "Equal": {7: np.equal}, "Less": {7: np.less}, "Greater": {7: np.greater},
    "LessOrEqual": {12: np.less_equal}, "GreaterOrEqual": {12: np.greater_equal},
    "Not": {1: np.logical_not}, "And": {7: np.logical_and}, "Or": {7: np.logical_or},
    "Xor": {7: np.logical_xor}, "Where": {9: S.where},
    "MatMul": {1: np.matmul}, "Gemm": {7: gemm}, "Einsum": {12: einsum}, "Conv": {1: conv},
    "MaxPool": {1: P.max_pool}, "AveragePool": {1: P.average_pool},
    "BatchNormalization": {9: batch_normalization},
    "LayerNormalization": {17: layer_normalization},
    "Softmax": {1: _coerced(softmax), 13: softmax},
    "LogSoftmax": {1: _coerced(log_softmax), 13: log_softmax},
    "ReduceSum": {1: _reduce(np.sum, "ReduceSum-11", False),
                  13: _reduce(np.sum, "ReduceSum-13", True)},
    "ArgMax": {1: arg_max},
    "Constant": {1: S.constant}, "ConstantOfShape": {9: S.constant_of_shape},
    "Identity": {1: S.identity}, "Cast": {6: S.cast}, "CastLike": {15: S.cast_like},
    "Shape": {1: S.shape}, "Reshape": {5: S.reshape}, "Flatten": {1: S.flatten},
    "Squeeze": {1: S.squeeze_1, 13: S.squeeze}, "Unsqueeze": {1: S.unsqueeze_1, 13: S.unsqueeze},
    "Transpose": {1: S.transpose}, "Expand": {8: S.expand}, "Concat": {4: S.concat},
    "Slice": {10: S.slice_}, "Split": {2: S.split_2, 13: S.split_13, 18: S.split_18},
    "Gather": {1: S.gather}, "GatherElements": {11: S.gather_elements},
    "CumSum": {11: S.cumsum}, "ScatterElements": {11: S.scatter_elements},
    "Range": {11: S.range_}, "TopK": {10: S.topk}, "Pad": {11: S.pad},
    "Dropout": {7: S.dropout_7, 12: S.dropout},
    "SequenceEmpty": {11: Q.sequence_empty}, "SequenceInsert": {11: Q.sequence_insert},
    "SequenceAt": {11: Q.sequence_at}, "SequenceLength": {11: Q.sequence_length},
    "ConcatFromSequence": {11: Q.concat_from_sequence},
}
for _name, _fn in (("ReduceMean", np.mean), ("ReduceMax", np.max), ("ReduceMin", np.min),
                   ("ReduceProd", np.prod)):
    OPS[_name] = {1: _reduce(_fn, f"{_name}-13", False), 18: _reduce(_fn, f"{_name}-18", True)}

# SAME_* pooling is refused: onnxruntime 1.32 sizes it ignoring dilations and refuses
# kernels smaller than the stride, so nothing checks it; torch never writes auto_pad
POOL_PADS = {"NOTSET", "VALID"}
# attribute values implemented where the spec allows more
ALLOWED = {
    ("Cast", "to"): set(S.DTYPES),
    ("Conv", "auto_pad"): {"NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"},
    ("MaxPool", "auto_pad"): POOL_PADS, ("AveragePool", "auto_pad"): POOL_PADS,
    ("MaxPool", "storage_order"): {0},  # the layout of Indices, which is refused
    ("BatchNormalization", "training_mode"): {0}, ("LayerNormalization", "stash_type"): {1},
    ("Gelu", "approximate"): {"none", "tanh"}, ("ScatterElements", "reduction"): {"none"},
    ("Pad", "mode"): {"constant", "reflect", "edge", "wrap"},
}
# operators with several outputs; fn returns a tuple (Split: one per node output)
OUTPUTS = {"Split": None, "TopK": 2, "Dropout": 2, "LayerNormalization": 3}


def bind(node, opset):
    """Read ``node`` once for ``opset``; return ``run(inputs) -> tuple of outputs``."""
    fn = _implementation(node, opset)
    inputs, attributes = _signature(fn)
    where = f"{node.op_type} node {node.name!r}"
    if len(node.input) > inputs:
        raise UnsupportedError(f"{where} has {len(node.input)} inputs; the numba engine "
                               f"implements {inputs}")
    given = _attributes(node, attributes, where)
    if "num_outputs" in attributes:
        given.setdefault("num_outputs", len(node.output))
    missing = [name for name, default in attributes.items()
               if default is inspect.Parameter.empty and name not in given]
    if missing:
        raise UnsupportedError(f"{where} lacks the required attribute {', '.join(missing)}")
    outputs = OUTPUTS.get(node.op_type, 1)
    if outputs is not None and len(node.output) > outputs:
        raise UnsupportedError(f"{where} asks for {len(node.output)} outputs; the numba "
                               f"engine computes {outputs}")
    call = functools.partial(fn, **given) if given else fn
    if outputs == 1:
        return lambda args: (call(*args),)
    return lambda args: call(*args)


def _implementation(node, opset):
    versions = OPS.get(node.op_type)
    if versions is None:
        raise UnsupportedError(f"the numba engine does not implement {node.op_type} "
                               f"(node {node.name!r})")
    since = [v for v in versions if v <= opset]
    if not since:
        raise UnsupportedError(f"{node.op_type} node {node.name!r}: opset {opset} is older than "
                               f"the numba engine implements (from {min(versions)})")
    return versions[max(since)]


@functools.cache
def _signature(fn):
    """(how many inputs fn takes, {attribute: default}); a ufunc takes ``nin`` and none."""
    if isinstance(fn, np.ufunc):
        return fn.nin, {}
    params = inspect.signature(fn).parameters.values()
    positional = [p for p in params if p.kind == p.POSITIONAL_OR_KEYWORD]
    variadic = any(p.kind == p.VAR_POSITIONAL for p in params)
    attributes = {p.name: p.default for p in params if p.kind == p.KEYWORD_ONLY}
    return (math.inf if variadic else len(positional)), attributes


def _attributes(node, implemented, where):
    """The node's attributes as keyword arguments, each checked against ``implemented``."""
    given = {}
    for attribute in node.attribute:
        value = helper.get_attribute_value(attribute)
        if isinstance(value, bytes):
            value = value.decode()
        elif attribute.type == attribute.TENSOR:
            value = numpy_helper.to_array(value)
        allowed = ALLOWED.get((node.op_type, attribute.name))
        if attribute.name not in implemented or (allowed is not None and value not in allowed):
            raise UnsupportedError(f"{where}: attribute {attribute.name}={value!r} is not "
                                   "supported by the numba engine")
        if isinstance(value, np.ndarray) and value.dtype not in S.DTYPES.values():
            raise UnsupportedError(f"{where}: attribute {attribute.name} holds a "
                                   f"{value.dtype} tensor; the numba engine computes on numbers")
        given[attribute.name] = value
    return given
