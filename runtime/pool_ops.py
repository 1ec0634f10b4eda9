"""Sliding-window operators of the numba engine's glue: MaxPool, AveragePool, and the window
arithmetic they share with ``Conv`` (numpy only).

A window op pads the spatial dims (N, C, D1, D2, ...) by ``pads`` or ``auto_pad``, views
every window of ``kernel_shape`` at ``strides`` with ``dilations`` as extra trailing axes
(``windows``), and reduces them. ``ceil_mode`` adds one more output where a window would
start inside the input or its begin padding, with the positions past the padding filled so
that they never count. Registered in ``graph_ops.OPS``, which also checks attribute values
(``storage_order``, ``auto_pad``); no table here.
"""

import functools

import numpy as np


def spatial_pads(auto_pad, pads, size, kernel, strides, dilations):
    """(begin, end) padding per spatial dim, from ``pads`` or ``auto_pad`` (SAME_*: ceil(n / s)
    outputs, the odd pad at the end for SAME_UPPER and at the begin for SAME_LOWER)."""
    spatial = len(kernel)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        extent = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
        total = [max((-(-n // s) - 1) * s + e - n, 0)
                 for n, s, e in zip(size, strides, extent)]
        small = [t // 2 for t in total]
        big = [t - h for t, h in zip(total, small)]
        return (small, big) if auto_pad == "SAME_UPPER" else (big, small)
    if auto_pad == "VALID" or pads is None:
        return [0] * spatial, [0] * spatial
    return list(pads[:spatial]), list(pads[spatial:])


def output_size(n, begin, end, extent, stride, ceil_mode):
    """Windows along one dim of ``n`` padded by ``begin`` and ``end``; in ceil mode the last
    window must start inside the input or its begin padding (ONNX and PyTorch)."""
    span = n + begin + end - extent  # negative: ceil mode may still take one window
    count = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (count - 1) * stride >= n + begin:
        count -= 1
    if count < 1:
        raise ValueError(f"a window of {extent} does not fit a dim of {n} padded to "
                         f"{n + begin + end}")
    return count


def windows(X, kernel, strides, dilations, begin, end, ceil_mode=0, fill=0):
    """Every window of ``X`` (N, C, D...) as a view shaped (N, C, O..., K...): ``X`` padded
    with ``fill`` by ``begin``/``end`` and, in ceil mode, as far as the last window reaches."""
    spatial = len(kernel)
    extent = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    out = [output_size(n, b, e, x, s, ceil_mode)
           for n, b, e, x, s in zip(X.shape[2:], begin, end, extent, strides)]
    reach = [(o - 1) * s + x - n - b for o, s, x, n, b in zip(out, strides, extent, X.shape[2:],
                                                               begin)]
    X = np.pad(X, [(0, 0), (0, 0)] + list(zip(begin, [max(e, r) for e, r in zip(end, reach)])),
               constant_values=fill)
    axes = tuple(range(2, 2 + spatial))
    view = np.lib.stride_tricks.sliding_window_view(X, extent, axis=axes)
    index = (Ellipsis,) + tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(out, strides)) \
        + tuple(slice(None, None, d) for d in dilations)
    return view[index]


def _geometry(X, kernel_shape, auto_pad, pads, strides, dilations):
    """(strides, dilations, begin, end) with the spec's defaults filled in."""
    spatial = len(kernel_shape)
    strides = list(strides or [1] * spatial)
    dilations = list(dilations or [1] * spatial)
    begin, end = spatial_pads(auto_pad, pads, X.shape[2:], kernel_shape, strides, dilations)
    return strides, dilations, begin, end


def _lowest(dtype):
    return -np.inf if np.issubdtype(dtype, np.floating) else np.iinfo(dtype).min


def max_pool(X, *, kernel_shape, auto_pad="NOTSET", ceil_mode=0, dilations=None, pads=None,
             storage_order=0, strides=None):
    """MaxPool-12: the largest value of each window; padding never wins (only ``Y``: the
    ``Indices`` output, and ``storage_order`` with it, are refused at load)."""
    X = np.asarray(X)
    strides, dilations, begin, end = _geometry(X, kernel_shape, auto_pad, pads, strides,
                                               dilations)
    view = windows(X, kernel_shape, strides, dilations, begin, end, ceil_mode, _lowest(X.dtype))
    return view.max(axis=tuple(range(-len(kernel_shape), 0)))  # (N, C, O...)


def average_pool(X, *, kernel_shape, auto_pad="NOTSET", ceil_mode=0, count_include_pad=0,
                 dilations=None, pads=None, strides=None):
    """AveragePool-19: each window's sum over the count of its input positions, or of its
    input and explicit padding positions with ``count_include_pad`` (what ceil mode reaches
    past the padding never counts)."""
    X = np.asarray(X)
    strides, dilations, begin, end = _geometry(X, kernel_shape, auto_pad, pads, strides,
                                               dilations)
    spatial = tuple(range(-len(kernel_shape), 0))
    sums = windows(X, kernel_shape, strides, dilations, begin, end, ceil_mode).sum(axis=spatial)
    # (O1, O2, ...): the count of a window is the product of its counts along each dim
    counts = functools.reduce(np.multiply.outer, [
        _counts(n, b, e, k, s, d, o, count_include_pad) for n, b, e, k, s, d, o in
        zip(X.shape[2:], begin, end, kernel_shape, strides, dilations, sums.shape[2:])])
    return (sums / counts).astype(X.dtype, copy=False)


def _counts(n, begin, end, kernel, stride, dilation, out, include_pad):
    """(out,): how many taps of each window along one dim fall inside the input, or inside
    the input and its explicit padding."""
    taps = np.arange(out)[:, None] * stride + np.arange(kernel) * dilation - begin  # (O, K)
    low, high = (-begin, n + end) if include_pad else (0, n)
    return ((taps >= low) & (taps < high)).sum(axis=1)
