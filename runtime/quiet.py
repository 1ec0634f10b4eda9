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
