"""The on-device commands of ``rnnedge``: ``generate``, ``info``, ``classify``. Torch-free.

Each command parses, imports lazily, and calls one library function. ``main`` in
``rnnedge.export.cli`` adds the training-side commands to this ``app`` and turns an
``RnnedgeError`` into one line on stderr and its exit code.
"""

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from .errors import RnnedgeError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Recurrent models from PyTorch training to a torch-free edge runtime.")

ENGINE = typer.Option("ort", "--engine", help="ort (onnxruntime), numba (the reference), "
                      "fast or fast-int8 (numba streaming, charlm only)")
THREADS = typer.Option(1, "--threads", help="CPU threads; 1 is the low-power case")


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


@app.command()
def generate(model: Path, prompt: str = typer.Option("The ", help="text the model is primed with"),
             length: int = typer.Option(500, help="characters to sample after the prompt"),
             temperature: float = typer.Option(1.0, help="logits are divided by this"),
             top_k: int = typer.Option(5, "--top-k", help="sample among the k likeliest (0 = all)"),
             seed: int = typer.Option(0, help="same seed, same text"),
             engine: str = ENGINE, threads: int = THREADS):
    """Sample text from a character model, primed with PROMPT."""
    from .model import load

    m = load(model, engine=engine, threads=threads)
    _check_task(m, "charlm", model)
    typer.echo(m.generate(prompt, length, temperature, top_k or None, seed))


@app.command()
def info(model: Path, as_json: bool = typer.Option(False, "--json", help="machine-readable")):
    """Show a model's metadata and its input/output signature."""
    from .model import describe

    report = describe(model)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    for key, value in report.items():
        typer.echo(f"{key}: {json.dumps(value) if isinstance(value, (dict, list)) else value}")


@app.command()
def classify(model: Path, texts: Optional[List[str]] = typer.Argument(None, help="reviews to score"),
             file: Optional[Path] = typer.Option(None, "--file", help="one review per line"),
             as_json: bool = typer.Option(False, "--json", help="machine-readable"),
             batch_size: int = typer.Option(64, "--batch-size"),
             engine: str = ENGINE, threads: int = THREADS):
    """Score reviews (arguments, --file, or standard input) with a sentiment model."""
    from .model import load
    from .sentiment import read_reviews

    reviews = list(texts or []) + (read_reviews(file) if file else [])
    if not reviews:
        reviews = sys.stdin.read().splitlines()
    m = load(model, engine=engine, threads=threads)
    _check_task(m, "sentiment", model)
    probs = m.classify(reviews, batch_size=batch_size)
    rows = [{"prob": float(p), "label": "positive" if p >= 0.5 else "negative", "text": t}
            for p, t in zip(probs, reviews)]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        short = r["text"] if len(r["text"]) <= 60 else r["text"][:57] + "..."
        typer.echo(f"{r['prob']:.4f}\t{r['label']}\t{short}")


def _check_task(m, task, path):
    from .errors import InputError

    if m.task != task:
        raise InputError(f"{path} is a {m.task} model; this command needs a {task} model")
