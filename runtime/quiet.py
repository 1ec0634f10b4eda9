"""``--quiet``: the command line's request for results, warnings and errors alone.

``rnnedge --quiet CMD`` sets ``RNNEDGE_QUIET=1`` in the environment (so that the processes
torchrun starts see it too); progress bars, per-epoch lines and other running commentary
check ``quiet()`` and say nothing. What a command ends with (its result or summary table, a
quality warning, an error) is printed either way.
"""

import os

ENV = "RNNEDGE_QUIET"


def quiet():
    return os.environ.get(ENV) == "1"


class Stages:
    """Progress of a command that may run long, one line a stage on stderr: silent while the
    command is younger than ``after`` seconds (a quick run says nothing), then
    ``verify: real data: ... (12 s)`` as each stage starts; nothing under ``--quiet``."""

    def __init__(self, command, after=5.0, stream=None, clock=None):
        import sys
        import time

        self.command, self.after, self.clock = command, after, clock or time.perf_counter
        self.stream, self.start = stream or sys.stderr, self.clock()

    def __call__(self, what):
        elapsed = self.clock() - self.start
        if elapsed >= self.after and not quiet():
            print(f"{self.command}: {what} ({elapsed:.0f} s)", file=self.stream, flush=True)
