"""The ``rnnedge`` command line: one module per command group, each command thin.

``run`` (generate, classify, info: on-device, torch-free), ``check`` (verify, bench,
evaluate: torch optional), ``export`` (export, optimize), ``train`` and ``diagnose``
(torch), ``series`` (train series, classify-series: real-valued frames). Each command
parses its flags, imports lazily and calls one library function whose keyword names match
the flags; ``app.run_app`` turns a typed error into one line on
stderr and its exit code.
"""

import os
import sys

from . import check, diagnose, export, run, series, train  # noqa: F401  (each registers its commands)
from .app import app, run_app


def main():
    try:
        run_app(app)
    except SystemExit as done:
        if "torch.distributed" not in sys.modules or int(os.environ.get("WORLD_SIZE", "1")) < 2:
            raise
        # A torchrun rank whose work is written (checkpoints and logs are fsynced) skips the
        # interpreter's teardown: torch's threads of a destroyed process group can abort it
        # ("terminate called without an active exception", exit -6) and fail the whole run.
        code = done.code
        if isinstance(code, str):
            print(code, file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code if isinstance(code, int) else 0 if code is None else 1)
