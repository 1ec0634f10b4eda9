"""ONNX sequence operators of the numba engine's glue: a sequence is a Python list of arrays.

What the TorchScript exporter emits for a ``torch.jit.script`` loop that collects one
output per step (``outputs.append(h)`` then ``torch.stack``): ``SequenceEmpty``,
``SequenceInsert`` inside the ``Loop`` body, ``ConcatFromSequence`` after it. Registered
in ``graph_ops.OPS``; numpy only, no table here.
"""

import numpy as np

from .errors import InputError
from .shape_ops import DTYPES


def sequence_empty(*, dtype=1):
    """SequenceEmpty-11: an empty sequence (its element type is not needed by numpy)."""
    if dtype not in DTYPES:
        from .errors import UnsupportedError

        raise UnsupportedError(f"SequenceEmpty: dtype {dtype} is not implemented")
    return []


def sequence_insert(input_sequence, tensor, position=None):
    """SequenceInsert-11: a new sequence with ``tensor`` at ``position`` (default: the end)."""
    out = list(input_sequence)
    out.insert(len(out) if position is None else int(position), tensor)
    return out


def sequence_at(input_sequence, position):
    """SequenceAt-11: the element at ``position`` (negative counts from the end)."""
    return input_sequence[int(position)]


def sequence_length(input_sequence):
    """SequenceLength-11: the number of elements, as an int64 scalar."""
    return np.array(len(input_sequence), np.int64)


def concat_from_sequence(input_sequence, *, axis, new_axis=0):
    """ConcatFromSequence-11: concatenate along ``axis``, or stack on a new one."""
    if not input_sequence:
        raise InputError("ConcatFromSequence of an empty sequence: a Loop ran no step "
                         "(the time axis is 0)")
    return (np.stack if new_axis else np.concatenate)(input_sequence, axis=axis)
