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


class OutputError(RnnedgeError):
    """A file or folder could not be written: a read-only folder, a full disk, a path in the way."""


def first_line(exc):
    """The first line of a library's exception text, for a one-line message (torch's run long)."""
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def write_error(path, exc):
    """The ``OutputError`` of an ``OSError`` met while writing ``path``: what failed, what to do."""
    import errno

    advice = {errno.ENOSPC: "the disk is full: free space or write elsewhere",
              errno.EDQUOT: "the disk quota is spent: free space or write elsewhere",
              errno.EROFS: "the file system is read-only: write elsewhere",
              errno.EACCES: "permission denied: write to a folder you may write to",
              errno.EPERM: "permission denied: write to a folder you may write to",
              errno.ENOTDIR: "a part of the path is a file, not a folder: choose another path",
              errno.EEXIST: "a part of the path is a file, not a folder: choose another path",
              errno.EISDIR: "the path is a directory: give a file name"}
    why = advice.get(exc.errno, f"{exc.strerror or exc}: check the path and free space")
    return OutputError(f"cannot write {path}: {why}; nothing was written there")


class ParityError(RnnedgeError):
    """Two engines disagree beyond the named tolerance."""

    exit_code = 1


class GateError(ParityError):
    """An optimized variant loses more accuracy on real data than its gate allows."""
