"""One-pass checks of a streamed call's feeds, for the fast engines' ``run_checked``.

``GraphModel.run`` checks every feed (names, dtypes, ranks, fixed sizes, finiteness) and
then the engine converts and copies its states: about 6 µs of Python a call for a series
model, more than its kernel at 64 units. An engine that knows its inputs takes the common
case (feeds already of the graph's dtypes, C-contiguous, of its exact shapes) with one
compiled copy-and-check of everything it reads (``copy_finite``) and hands anything else
back (None) to the long path, which gives the typed error. Not here: the engines
(fast_chain.py, fast_seq.py) and the long path (graph_model.py).
"""

import numpy as np
from numba import njit

from .errors import InputError
from .ops import common
from .ops.simd import flat

INT64, FLOAT32 = np.dtype(np.int64), np.dtype(np.float32)


def fixed(shape):
    """{(axis, size)} of a declared shape's fixed sizes."""
    return {(axis, dim) for axis, dim in enumerate(shape) if isinstance(dim, int) and dim > 0}


def takes_declared(signature, takes):
    """Whether the graph's inputs are exactly ``takes`` {name: (type, rank, {(axis, size)}
    the engine checks itself)}: the same names, types and ranks, and no fixed size the
    engine would not check (``GraphModel.check`` refuses those)."""
    declared = {i["name"]: (i["type"], len(i["shape"]), fixed(i["shape"]))
                for i in signature["inputs"]}
    return declared.keys() == takes.keys() and all(
        (kind, rank) == takes[name][:2] and sizes <= takes[name][2]
        for name, (kind, rank, sizes) in declared.items())


def is_array(x, dtype, shape):
    """An input the one pass takes as it is: a C-contiguous ``dtype`` array of ``shape``."""
    return (type(x) is np.ndarray and x.dtype == dtype and x.shape == shape
            and x.flags.c_contiguous)


def all_finite(array):
    """``np.isfinite(array).all()``: one compiled call on float32 (~1 µs on a streamed state,
    where numpy's two calls and a temporary take ~3)."""
    return _all_finite(array) if array.dtype == np.float32 else bool(np.isfinite(array).all())


@njit(cache=True, fastmath=False)
def _all_finite(x):
    """Plain twin: ``np.isfinite(x).all()``."""
    for v in x.ravel():
        if not np.isfinite(v):
            return False
    return True


@njit(cache=True, fastmath=False)
def copy_finite(h, c, hn, cn):
    """Copy h into hn and c into cn (C-contiguous, same shapes); whether all were finite.
    One compiled call for both states (~1 µs at batch 1, where two copies and two checks
    take ~1.5)."""
    return _copy_one(flat(h), flat(hn)) & _copy_one(flat(c), flat(cn))


@njit(cache=True, fastmath=False)
def copy_finite3(x, a, b, an, bn):
    """Whether x and the states a, b are all finite, copying each state into its new array
    (C-contiguous, same shapes; an empty state for one the model has not): a streaming
    chain's frames and its h, c."""
    finite = True
    for v in flat(x):
        finite &= np.isfinite(v)
    return finite & _copy_one(flat(a), flat(an)) & _copy_one(flat(b), flat(bn))


@njit(cache=True, fastmath=False)
def copy_finite4(x, a, b, c, d, an, bn, cn, dn):
    """Whether x and the states a..d are all finite, copying each state into its new array
    (C-contiguous, same shapes): a sequence engine's frames and its h, c, pooled, seen."""
    finite = True
    for v in flat(x):
        finite &= np.isfinite(v)
    return (finite & _copy_one(flat(a), flat(an)) & _copy_one(flat(b), flat(bn))
            & _copy_one(flat(c), flat(cn)) & _copy_one(flat(d), flat(dn)))


@njit(cache=True, fastmath=False)
def _copy_one(src, dst):
    finite = True
    for i in range(src.size):
        dst[i] = src[i]
        finite &= np.isfinite(src[i])
    return finite


def checked_sequence(seq, ids, F, no_tokens, time_major=False):
    """``split_sequence`` of the common case: (X, tokens) of a C-contiguous non-empty int64
    (B, T) of ids (``ids``) or float32 (B, T, F) of frames, else (None, None). A
    ``time_major`` sequence (T, B, .) is read as (B, T, .): a copy unless T or B is 1."""
    if time_major and type(seq) is np.ndarray and seq.ndim > 1:
        seq = np.ascontiguousarray(seq.swapaxes(0, 1))
    if not (type(seq) is np.ndarray and seq.size and seq.flags.c_contiguous):
        return None, None
    if ids:
        return ((np.empty((*seq.shape, 0), FLOAT32), seq) if seq.dtype == INT64 and seq.ndim == 2
                else (None, None))
    return ((seq, no_tokens) if seq.dtype == FLOAT32 and seq.ndim == 3 and seq.shape[2] == F
            else (None, None))


def checked_states(feeds, names, shapes):
    """(the given states, their new float32 arrays) {key: array} of ``shapes`` {key: shape},
    for the keys in ``names`` {key: input name} each a C-contiguous float32 array of its
    shape in ``feeds``, the others zeros (given as themselves: a copy onto itself); (None,
    None) when a state is not so."""
    given, new = [], {}
    for key, shape in shapes.items():
        if key not in names:
            new[key] = np.zeros(shape, FLOAT32)
            given.append(new[key])
        elif is_array(feeds.get(names[key]), FLOAT32, shape):
            given.append(feeds[names[key]])
            new[key] = np.empty(shape, FLOAT32)
        else:
            return None, None
    return given, new


def split_sequence(seq, ids, F, name, no_tokens, time_major=False):
    """(X (B, T, F) float32, tokens (B, T) int64) of the fused kernels, the one not given empty
    (``no_tokens`` for frames): token ids when ``ids``, else frames of F channels; a
    ``time_major`` sequence is given (T, B, .)."""
    fits = seq.ndim == 2 if ids else seq.ndim == 3 and seq.shape[2] == F
    if not fits or seq.shape[0 if time_major else 1] < 1 or ids != (seq.dtype.kind in "iu"):
        axes = "time >= 1, batch" if time_major else "batch, time >= 1"
        raise InputError(f"{name} is {seq.dtype} {seq.shape}; expected "
                         + (f"token ids ({axes})" if ids else f"frames ({axes}, {F})"))
    seq = seq.swapaxes(0, 1) if time_major else seq
    if ids:
        return np.empty((*seq.shape, 0), np.float32), np.ascontiguousarray(seq, np.int64)
    return common.f32(seq), no_tokens


def state_copy(feeds, name, shape):
    """A float32 copy of state input ``name`` (the kernel updates it in place), or zeros."""
    if name is None or name not in feeds:
        return np.zeros(shape, np.float32)
    state = np.array(feeds[name], np.float32, order="C")
    if state.shape != shape:
        raise InputError(f"state {name} is {state.shape}, expected {shape}")
    return state
