"""Checking and measuring exported files: ``verify``, ``bench``, ``evaluate``.

Torch-optional: PyTorch joins ``verify`` and ``bench`` when a checkpoint is given and
torch imports; the rest runs on the runtime alone.
"""

from pathlib import Path
from typing import List, Optional

import typer

from rnnedge.runtime.quiet import quiet

from .app import AS_JSON, DATA_DIR, app, emit_json, torch_checkpoint


@app.command(epilog='Example: rnnedge verify runs/charlm.onnx --checkpoint runs/charlm/best.pt')
def verify(model: Path, checkpoint: Optional[Path] = typer.Option(None, help="source checkpoint"),
           data_dir: Optional[Path] = DATA_DIR, as_json: bool = AS_JSON,
           verbose: bool = typer.Option(False, "--verbose", "-v", help="every comparison, not the summary"),
           allow_skip: bool = typer.Option(False, "--allow-skip", help="an engine that cannot run "
                                           "the file is listed as skipped, not a failure")):
    """Check every engine (ort, numba, fast, fast-int8) against the golden bundle, onnxruntime
    and the checkpoint; exit 1 on a failure, or when an engine cannot run the file."""
    from rnnedge.deploy.verify import verify as run
    from rnnedge.runtime.model import file_kind

    checkpoint = torch_checkpoint(checkpoint)
    reference = None
    if checkpoint is not None:
        from rnnedge.export.torch_engines import reference as torch_reference

        reference = torch_reference(checkpoint, task=file_kind(model))
    notes, skipped = [], {}
    diffs = run(model, reference=reference, data_dir=data_dir, notes=notes, allow_skip=allow_skip,
                skipped=skipped)
    allowed = skipped if allow_skip else {}
    failed = [d for d in diffs if not d.ok]
    if as_json:
        emit_json("verify", {"model": str(model), "passed": len(diffs) - len(failed),
                             "failed": len(failed), "skipped": allowed, "notes": notes,
                             "comparisons": [d.as_dict() for d in diffs]})
    else:
        from rnnedge.deploy.verify import summarize

        lines = [str(d) for d in diffs] if verbose else summarize(diffs)
        for line in lines if not quiet() or verbose else [str(d) for d in failed]:
            typer.echo(line)
    for name, why in allowed.items():
        typer.echo(f"engine {name}: skipped (--allow-skip): {why}", err=as_json)
    for note in notes if not quiet() else ():
        typer.echo(f"note: {note}", err=True)
    typer.echo(f"{len(diffs) - len(failed)} passed, {len(failed)} failed"
               + (f", {len(allowed)} skipped ({', '.join(allowed)})" if allowed else ""),
               err=as_json)
    if failed:
        raise typer.Exit(1)


@app.command(
    epilog='Example: rnnedge bench kws.onnx --engine fast --engine fast-int8 --batch 16 --time 100')
def bench(model: Path, checkpoint: Optional[Path] = typer.Option(None, help="adds PyTorch eager"),
          variant: Optional[List[Path]] = typer.Option(None, help="a file written by `rnnedge "
                                                       "optimize`, run on the engine it was gated "
                                                       "on (repeatable)"),
          engine: Optional[List[str]] = typer.Option(None, "--engine", help="ort, numba, fast or "
                                                     "fast-int8 (repeatable; default: every engine "
                                                     "that runs the model); ort always runs, the "
                                                     "parity reference"),
          steps: int = typer.Option(500, help="streaming models: timed steps (one frame a call)"),
          warmup: int = typer.Option(50, help="streaming models: untimed steps first"),
          threads: int = typer.Option(1, help="CPU threads (1 is the low-power case)"),
          cases: int = typer.Option(128, help="whole-sequence classifiers: real cases per pass"),
          batch: Optional[int] = typer.Option(None, help="sentiment: the one batch size timed "
                                              "(default 1, 8 and 64); your own or a series model: "
                                              "whole sequences of this batch"),
          time: Optional[int] = typer.Option(None, help="your own or a series model: whole "
                                             "sequences of this many frames (default 50 with "
                                             "--batch)"),
          plot: Optional[Path] = typer.Option(None, help="a PNG bar chart of the latency table "
                                              "(needs matplotlib: pip install 'rnnedge[plot]')"),
          data_dir: Optional[Path] = DATA_DIR, as_json: bool = AS_JSON):
    """Latency or throughput of every engine that runs the model, side by side, parity first."""
    from rnnedge.deploy.bench import bench as run

    checkpoint = torch_checkpoint(checkpoint)
    torch_maker = None
    if checkpoint is not None:
        from rnnedge.export.torch_engines import maker
        from rnnedge.runtime.model import file_kind

        torch_maker = maker(checkpoint, task=file_kind(model))
    report, text = run(model, torch_maker, steps=steps, warmup=warmup, threads=threads,
                       cases=cases, data_dir=data_dir, variants=tuple(variant or ()),
                       engines=tuple(engine or ()), batch=batch, time=time, plot=plot)
    if as_json:
        emit_json("bench", report)
    else:
        typer.echo(text)


@app.command(epilog='Example: rnnedge evaluate runs/sentiment.onnx --split test --limit 1000')
def evaluate(model: Path, data_dir: Optional[Path] = DATA_DIR,
             split: str = typer.Option("test", help="IMDb (Japanese Vowels) split: test or train"),
             data: Optional[Path] = typer.Option(None, help="labeled file: CSV/JSONL reviews instead "
                                                 "of IMDb; .ts/.npz/.csv frames for a series model"),
             limit: Optional[int] = typer.Option(None, help="score N cases: a seeded sample, "
                                                 "stratified by class (default: all)"),
             seed: int = typer.Option(0, help="--limit: the sample's seed"),
             batch_size: int = typer.Option(64, "--batch-size"), engine: str = typer.Option("ort"),
             threads: int = typer.Option(2),
             missing: str = typer.Option("error", help="series frames: missing values (?, NaN) "
                                         "stop with the line (error) or are interpolated"),
             as_json: bool = AS_JSON):
    """Accuracy of a sentiment model (raw review text) or a series classifier (--data .ts/.npz/.csv,
    default Japanese Vowels), with the torch-free runtime."""
    from rnnedge.deploy.evaluate import (describe_sample, evaluate as run, evaluate_series,
                                         load_classifier, reviews_to_score)
    from rnnedge.train.common import progress

    m = load_classifier(model, engine, threads)
    if m.kind == "series":
        from .series import series_report

        result = evaluate_series(m, data, split, data_dir, limit, batch_size, missing, seed)
        if as_json:
            emit_json("evaluate", {"model": str(model), **result})
        else:
            typer.echo(series_report(result) + "\nscored "
                       + describe_sample(result, f"cases of {result['data']}"))
        return
    sample = {}
    reviews = reviews_to_score(split, data, data_dir, limit, seed, sample)
    with progress() as bar:
        task = bar.add_task(f"evaluating on {engine}", total=len(reviews), info="")
        result = run(m, reviews, batch_size, lambda n: bar.advance(task, n))
    result.update(engine=engine, split=str(data) if data else split, **sample)
    what = f"reviews of {data}" if data else f"IMDb {split} reviews"
    if as_json:
        emit_json("evaluate", {"model": str(model), **result})
    else:
        typer.echo(f"accuracy {result['accuracy']:.4f} ({result['correct']}/{result['n']}) on "
                   f"{describe_sample(sample, what)} with {engine}")
