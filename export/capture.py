"""The exporters' chatter kept off the terminal: Python warnings and what torch writes to fds 1 and 2.

torch's C++ warnings (and some of its errors' graph dumps) go to the file descriptors
directly, past ``sys.stderr``; ``exporter_output`` redirects both descriptors to a file for
the length of a block and hands the lines back, for ``--verbose`` and
``ExportReport.exporter_output``.
"""

import contextlib
import os
import sys
import tempfile
import warnings

_CAPTURING = []  # the lines of the capture in progress, if any (``exporter_output``)


@contextlib.contextmanager
def exporter_output():
    """A list that receives, when the block ends, the Python warnings raised in it (each once)
    and the lines written to file descriptors 1 and 2 (torch's C++ warnings go there, past
    ``sys.stderr``), none of which reach the terminal. A block inside another one yields the
    outer block's list, filled when the outer block ends."""
    if _CAPTURING:
        yield _CAPTURING[-1]
        return
    lines = []
    _CAPTURING.append(lines)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    try:
        with tempfile.TemporaryFile() as sink, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for fd in saved:
                os.dup2(sink.fileno(), fd)
            try:
                yield lines
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                for fd, copy in saved.items():
                    os.dup2(copy, fd)
                lines.extend(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))
                sink.seek(0)
                lines.extend(line for line in sink.read().decode(errors="replace").splitlines()
                             if line.strip())
    finally:
        for copy in saved.values():
            os.close(copy)
        _CAPTURING.pop()
