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

# `rnnedge bench` times numpy's matrix-vector floor on one core, as the engines run at
# --threads 1. A BLAS reads these once, when numpy loads it, so they are set before the imports
# below can load numpy; deploy.timing.blas_threads sets OpenBLAS and MKL again (ctypes) and
# reports the count in effect.
if sys.argv[1:2] == ["bench"]:
    os.environ.update(OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", VECLIB_MAXIMUM_THREADS="1")

# each command module registers its commands; imported after the thread settings above
from . import check, diagnose, export, run, series, train  # noqa: E402, F401
from .app import app, run_app  # noqa: E402


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
