"""The ``rnnedge`` command line: one module per command group, each command thin.

``run`` (generate, classify, info: on-device, torch-free), ``check`` (verify, bench,
evaluate: torch optional), ``export`` (export, optimize), ``train`` and ``diagnose``
(torch), ``series`` (train series, classify-series: real-valued frames). Each command
parses its flags, imports lazily and calls one library function whose keyword names match
the flags; ``app.run_app`` turns a typed error into one line on
stderr and its exit code.
"""

from . import check, diagnose, export, run, series, train  # noqa: F401  (each registers its commands)
from .app import app, run_app


def main():
    run_app(app)
