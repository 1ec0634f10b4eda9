"""The ``rnnedge`` typer app, the options its commands share, and how errors leave it.

Torch-free: importing this module (or any command module) imports no torch; the
commands that need it import it inside their function.
"""

import os
import sys
from typing import Optional

import typer

from rnnedge.runtime.errors import InputError, RnnedgeError

# Help texts are plain: no rich markup, which would eat "[batch,time,40]" and "[default: 1]"
HELP = dict(no_args_is_help=True, rich_markup_mode=None,
            context_settings={"help_option_names": ["-h", "--help"]})
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, **HELP,
                  help="Recurrent models from PyTorch training to a torch-free edge runtime.")


def _version(value: bool):
    if value:
        from rnnedge.runtime import __version__

        typer.echo(f"rnnedge {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                          help="print the version and exit"),
             quiet: bool = typer.Option(False, "--quiet", "-q", help="results, warnings and "
                                        "errors only: no progress or running commentary")):
    """Recurrent models from PyTorch training to a torch-free edge runtime.

    Example: rnnedge --quiet train charlm --max-minutes 3
    """
    if quiet:
        from rnnedge.runtime.quiet import ENV

        os.environ[ENV] = "1"


def emit_json(command, payload):
    """The one ``--json`` layout of every command: one JSON object on stdout, indented, with
    ``command`` first, then the command's fields (a list goes under a named key)."""
    import json

    typer.echo(json.dumps({"command": command, **payload}, indent=2))

ENGINE = typer.Option("ort", "--engine", help="ort (onnxruntime), numba (the reference), "
                      "fast or fast-int8 (the fused numba kernels, fp32 or int8; any model)")
THREADS = typer.Option(1, "--threads", help="CPU threads; 1 is the low-power case")
DATA_DIR = typer.Option(None, "--data-dir", help="data directory (default: $RNNEDGE_DATA)")
AS_JSON = typer.Option(False, "--json", help="machine-readable")
# Optional dependencies by the module a command imports: (what it is, how to install it). A
# device install has none of them; the commands that need one say so in one line.
EXTRAS = {"torch": ("PyTorch", "pip install 'rnnedge[train]' (or torch's CPU build first: pip "
                    "install torch --index-url https://download.pytorch.org/whl/cpu)"),
          "onnxscript": ("onnxscript", "pip install 'rnnedge[train]'"),
          "matplotlib": ("matplotlib", "pip install 'rnnedge[plot]'")}


def run_app(application, argv=None):
    """Run a typer app; typed errors become one line on stderr and a non-zero exit."""
    try:
        application(args=argv, prog_name="rnnedge")
    except RnnedgeError as exc:
        print(f"rnnedge: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("rnnedge: interrupted", file=sys.stderr)
        sys.exit(130)
    except ModuleNotFoundError as exc:  # an optional dependency this install lacks
        missing = (exc.name or "").partition(".")[0]
        if missing not in EXTRAS:
            raise
        what, install = EXTRAS[missing]
        print(f"rnnedge: error: rnnedge {_command(argv)} needs {what}: {install}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:  # an I/O failure no check foresaw: still one line, not a traceback
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"rnnedge: error: {exc.strerror or exc}{where}", file=sys.stderr)
        sys.exit(2)


def _command(argv):
    """The command named in ``argv`` (default: the process's), e.g. "export" or "train"."""
    args = sys.argv[1:] if argv is None else list(argv)
    return next((a for a in args if not a.startswith("-")), "")


def check_task(model, task, path):
    from rnnedge.runtime.metadata import KIND_NAMES

    if model.kind != task:
        raise InputError(f"{path} is {KIND_NAMES[model.kind]}; this command needs a {task} model")


def torch_checkpoint(checkpoint: Optional[object]):
    """The checkpoint when torch can read it; None (with a note) when torch is missing."""
    if checkpoint is None:
        return None
    from rnnedge.export.torch_engines import torch_available

    if not torch_available():
        typer.echo("note: torch is not installed; PyTorch is left out", err=True)
        return None
    return checkpoint
