"""Shape, index and type operators of the numba engine's glue (numpy only).

Each function is one ONNX operator: inputs positional and attributes keyword, both
under the spec's names, returning one array or a tuple when the operator has several
outputs. Shape-valued inputs arrive as int64 arrays. The table that maps operator
names and opset versions to these functions, and checks attributes at load, is
``graph_ops.py``; this module holds no table and no graph logic.
"""

import numpy as np

from .errors import UnsupportedError

# ONNX TensorProto data type -> numpy dtype, for the types this engine computes with
DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32,
          7: np.int64, 9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32,
          13: np.uint64}


def _ints(values):
    return [int(v) for v in np.asarray(values).reshape(-1)]


def constant(*, value=None, value_float=None, value_floats=None, value_int=None,
             value_ints=None):
    """Constant-13: the one value attribute the node carries, as an array."""
    if value is not None:
        return value
    if value_float is not None:
        return np.array(value_float, np.float32)
    if value_floats is not None:
        return np.array(value_floats, np.float32)
    if value_int is not None:
        return np.array(value_int, np.int64)
    return np.array(value_ints, np.int64)


def constant_of_shape(input, *, value=None):
    """ConstantOfShape-9: a tensor of shape ``input`` filled with ``value`` (float32 0)."""
    fill = np.zeros(1, np.float32) if value is None else value
    return np.full(_ints(input), fill.reshape(-1)[0], dtype=fill.dtype)


def shape(data, *, start=0, end=None):
    """Shape-15: dims ``start:end`` of data's shape; negative values count from the end."""
    return np.array(np.shape(data)[start:end], np.int64)


def cast(input, *, to, saturate=1):
    """Cast-19 (``saturate`` only affects float8 types, which are not implemented)."""
    return np.asarray(input).astype(DTYPES[to])


def cast_like(input, target_type, *, saturate=1):
    """CastLike-19: cast ``input`` to the element type of ``target_type``."""
    return np.asarray(input).astype(target_type.dtype)


def reshape(data, shape, *, allowzero=0):
    """Reshape-14: a 0 in ``shape`` copies the input dim unless ``allowzero``; -1 is inferred."""
    dims = _ints(shape)
    if not allowzero:
        dims = [data.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    return np.reshape(data, dims)


def flatten(input, *, axis=1):
    """Flatten-13: a 2-D view, dims before ``axis`` in the rows and the rest in the columns."""
    dims = np.shape(input)
    rows = int(np.prod(dims[:axis], dtype=np.int64))
    return np.reshape(input, (rows, int(np.prod(dims[axis:], dtype=np.int64))))


def squeeze(data, axes=None):
    """Squeeze-13: drop ``axes`` (all dims of size 1 when omitted)."""
    return np.squeeze(data, axis=None if axes is None else tuple(_ints(axes)))


def unsqueeze(data, axes):
    """Unsqueeze-13: insert dims of size 1 at ``axes``, counted in the output rank."""
    return np.expand_dims(data, tuple(_ints(axes)))


def squeeze_1(data, *, axes=None):
    """Squeeze-1/11: ``axes`` as an attribute."""
    return squeeze(data, axes)


def unsqueeze_1(data, *, axes):
    """Unsqueeze-1/11: ``axes`` as an attribute."""
    return unsqueeze(data, axes)


def transpose(data, *, perm=None):
    """Transpose-13: permute dims by ``perm`` (reversed when omitted)."""
    return np.transpose(data, perm)


def expand(input, shape):
    """Expand-13: broadcast ``input`` and ``shape`` against each other (both ways)."""
    out = np.broadcast_shapes(np.shape(input), tuple(_ints(shape)))
    return np.array(np.broadcast_to(input, out))


def concat(*inputs, axis):
    """Concat-13."""
    return np.concatenate(inputs, axis=axis)


def slice_(data, starts, ends, axes=None, steps=None):
    """Slice-13. ONNX clamps out-of-range starts and ends exactly as Python slices do."""
    index = [slice(None)] * np.ndim(data)
    axes = range(len(starts)) if axes is None else _ints(axes)
    steps = [1] * len(starts) if steps is None else _ints(steps)
    for start, end, axis, step in zip(_ints(starts), _ints(ends), axes, steps):
        index[axis] = slice(start, end, step)
    return np.asarray(data)[tuple(index)]


def split_18(input, split=None, *, axis=0, num_outputs):
    """Split-18: by the ``split`` sizes, else into ``num_outputs`` chunks of ceil(dim / n)."""
    dim = np.shape(input)[axis]
    if split is None:
        chunk = -(-dim // num_outputs)
        split = [min(chunk, dim - i * chunk) for i in range(num_outputs)]
    edges = np.cumsum(_ints(split))[:-1]
    return tuple(np.split(input, edges, axis=axis))


def split_2(input, *, axis=0, split=None, num_outputs):
    """Split-2/11: ``split`` as an attribute; without it, equal parts."""
    return split_13(input, None if split is None else np.array(split), axis=axis,
                    num_outputs=num_outputs)


def split_13(input, split=None, *, axis=0, num_outputs):
    """Split-13: by the ``split`` input, else into equal parts (the dim must divide)."""
    if split is None and np.shape(input)[axis] % num_outputs:
        raise ValueError(f"dim {np.shape(input)[axis]} does not split into {num_outputs} "
                         "equal parts")
    return split_18(input, split, axis=axis, num_outputs=num_outputs)


def gather(data, indices, *, axis=0):
    """Gather-13: ``np.take``; negative indices count from the end as in the spec."""
    return np.take(data, indices, axis=axis)


def gather_elements(data, indices, *, axis=0):
    """GatherElements-13 (torch.gather): ``out[i][j][k] = data[i][indices[i][j][k]][k]`` for
    axis 1; ``indices`` has data's rank, no larger a dim, and may count from the end."""
    data, indices = np.asarray(data), np.asarray(indices, np.int64)
    if indices.ndim != data.ndim:
        raise ValueError(f"indices of rank {indices.ndim} for data of rank {data.ndim}")
    axis %= data.ndim
    index = list(np.indices(indices.shape, sparse=True))
    index[axis] = np.where(indices < 0, indices + data.shape[axis], indices)
    return data[tuple(index)]


def cumsum(x, axis, *, exclusive=0, reverse=0):
    """CumSum-14 along the one ``axis``: ``exclusive`` leaves each element out of its own sum,
    ``reverse`` sums from the end."""
    x = np.asarray(x)
    axis = int(np.asarray(axis).reshape(-1)[0]) % max(x.ndim, 1)
    if reverse:
        x = np.flip(x, axis)
    out = np.cumsum(x, axis=axis, dtype=x.dtype)
    if exclusive:  # shift by one along axis: (0, s_0, ..., s_{n-2})
        shifted = np.zeros_like(out)
        head, tail = [slice(None)] * x.ndim, [slice(None)] * x.ndim
        head[axis], tail[axis] = slice(1, None), slice(None, -1)
        shifted[tuple(head)] = out[tuple(tail)]
        out = shifted
    return np.flip(out, axis) if reverse else out


def scatter_elements(data, indices, updates, *, axis=0, reduction="none"):
    """ScatterElements-18 with reduction "none": ``data`` with ``updates`` written at ``indices``."""
    out = np.array(data)
    np.put_along_axis(out, np.asarray(indices, np.int64), updates, axis=axis)
    return out


def range_(start, limit, delta):
    """Range-11: ``max(ceil((limit - start) / delta), 0)`` values in the inputs' type."""
    return np.arange(start, limit, delta).astype(np.asarray(start).dtype, copy=False)


def topk(X, K, *, axis=-1, largest=1, sorted=1):
    """TopK-11: values and int64 indices; equal values keep the lower index first."""
    X = np.asarray(X)
    k, n = int(np.asarray(K).reshape(-1)[0]), X.shape[axis]
    if largest:
        # a stable ascending sort of the reversed axis, read backwards: descending by
        # value, equal values in increasing index order
        order = n - 1 - np.flip(np.argsort(np.flip(X, axis), axis=axis, kind="stable"), axis)
    else:
        order = np.argsort(X, axis=axis, kind="stable")
    indices = np.take(order, np.arange(k), axis=axis).astype(np.int64)
    return np.take_along_axis(X, indices, axis=axis), indices


def where(condition, X, Y):
    """Where-16."""
    return np.where(condition, X, Y)


def identity(input):
    """Identity-16."""
    return input


def dropout(data, ratio=None, training_mode=None, *, seed=None):
    """Dropout-13 at inference: the input unchanged and an all-true mask."""
    if training_mode is not None and bool(training_mode):
        raise UnsupportedError("Dropout with training_mode=True is not supported; the "
                               "numba engine runs inference only")
    return data, np.ones(np.shape(data), np.bool_)


def dropout_7(data, *, ratio=0.5):
    """Dropout-7/10: ``ratio`` as an attribute; inference only."""
    return dropout(data)


def pad(data, pads, constant_value=None, axes=None, *, mode="constant"):
    """Pad-18: ``pads`` as [x1_begin, x2_begin, ..., x1_end, x2_end] over ``axes``."""
    data = np.asarray(data)
    axes = range(data.ndim) if axes is None else [a % data.ndim for a in _ints(axes)]
    pads, widths = _ints(pads), [(0, 0)] * data.ndim
    for i, axis in enumerate(axes):
        widths[axis] = (pads[i], pads[i + len(axes)])
    if any(w < 0 for pair in widths for w in pair):
        raise UnsupportedError("Pad: negative pads (cropping) are not supported")
    if mode == "constant":
        value = 0 if constant_value is None else np.asarray(constant_value).reshape(-1)[0]
        return np.pad(data, widths, mode="constant", constant_values=value)
    return np.pad(data, widths, mode=mode)
