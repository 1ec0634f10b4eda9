"""Typed errors of rnnedge: the part of the interface a user sees when input is wrong.

Every error says what was wrong and what to do. The command line turns an
``RnnedgeError`` into one line on stderr and its ``exit_code`` (2 for bad input,
1 for a failed parity check); it never shows a traceback for these.
"""


class RnnedgeError(Exception):
    """Base class of every error rnnedge raises on purpose."""

    exit_code = 2


class ModelFileError(RnnedgeError):
    """A model file is missing, is not ONNX, or carries no rnnedge metadata."""


class InputError(RnnedgeError):
    """Input to a model is invalid: unknown characters, empty prompt, wrong state shape."""


class UnsupportedError(RnnedgeError):
    """An ONNX node uses an attribute or value the reference does not implement."""


class DataError(RnnedgeError):
    """A data set is missing, unreadable, or could not be downloaded."""


class CheckpointError(RnnedgeError):
    """A training checkpoint is missing or does not hold what rnnedge writes."""


class ParityError(RnnedgeError):
    """Two engines disagree beyond the named tolerance."""

    exit_code = 1


class GateError(ParityError):
    """An optimized variant loses more accuracy on real data than its gate allows."""
