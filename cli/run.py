"""The on-device commands: ``generate``, ``classify``, ``info``. Torch-free."""

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from rnnedge.runtime.errors import InputError

from .app import AS_JSON, ENGINE, THREADS, app, check_task, emit_json


@app.command(
    epilog='Example: rnnedge generate runs/charlm.onnx --prompt "The " --length 300 --engine fast-int8')
def generate(model: Path, prompt: str = typer.Option("The ", help="text the model is primed with"),
             length: int = typer.Option(500, help="characters to sample after the prompt"),
             temperature: float = typer.Option(1.0, help="logits are divided by this"),
             top_k: int = typer.Option(5, "--top-k", help="sample among the k likeliest (0 = all)"),
             seed: int = typer.Option(0, help="same seed, same text"),
             engine: str = ENGINE, threads: int = THREADS):
    """Sample text from a character model, primed with PROMPT."""
    from rnnedge.runtime.model import load

    m = load(model, engine=engine, threads=threads)
    check_task(m, "charlm", model)
    chars = m.sample_chars(prompt, length, temperature, top_k or None, seed)
    sys.stdout.write(prompt)
    for ch in chars:  # each character as it is sampled; Ctrl-C keeps what was printed
        sys.stdout.write(ch)
        sys.stdout.flush()
    sys.stdout.write("\n")


@app.command(epilog='Example: rnnedge info kws.onnx --json')
def info(model: Path, as_json: bool = AS_JSON):
    """Show any ONNX file's signature, recurrent nodes, state pairs and metadata."""
    from rnnedge.runtime.model import describe

    report = describe(model)
    if as_json:
        emit_json("info", report)
        return
    for key, value in report.items():  # JSON escapes what a file could hide for the terminal
        shown = value if isinstance(value, (int, float)) or value is None or (
            isinstance(value, str) and value.isprintable()) else json.dumps(value)
        typer.echo(f"{key}: {shown}")


@app.command(epilog='Example: rnnedge classify runs/sentiment.onnx "A wonderful film."')
def classify(model: Path, texts: Optional[List[str]] = typer.Argument(None, help="reviews to score"),
             file: Optional[Path] = typer.Option(None, "--file", help="one review per line"),
             as_json: bool = AS_JSON,
             batch_size: int = typer.Option(64, "--batch-size"),
             engine: str = ENGINE, threads: int = THREADS):
    """Score reviews (arguments, --file, or standard input) with a sentiment model."""
    from rnnedge.runtime.model import load
    from rnnedge.runtime.sentiment import read_reviews

    reviews = list(texts or []) + (read_reviews(file) if file else [])
    if file is not None and not reviews:
        raise InputError(f"{file} holds no review; give one review per line")
    if not reviews:
        reviews = sys.stdin.read().splitlines()
    m = load(model, engine=engine, threads=threads)
    check_task(m, "sentiment", model)
    probs = m.classify(reviews, batch_size=batch_size)
    rows = [{"prob": float(p), "label": "positive" if p >= 0.5 else "negative", "known_words": k,
             "text": t} for p, t, k in zip(probs, reviews, m.known_words(reviews))]
    if as_json:
        emit_json("classify", {"model": str(model), "results": rows})
        return
    for r in rows:
        short = r["text"] if len(r["text"]) <= 60 else r["text"][:57] + "..."
        unknown = "" if r["known_words"] else "\t(no known word: the score says nothing)"
        typer.echo(f"{r['prob']:.4f}\t{r['label']}\t{short}{unknown}")
