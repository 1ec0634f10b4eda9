"""The full ``rnnedge`` command line: the runtime's commands plus train, export, verify, bench.

Thin by design: each command parses its flags, imports lazily (so ``rnnedge
generate`` never loads torch), and calls one library function whose keyword names
match the flags.
"""

import json
from pathlib import Path
from typing import List, Optional

import typer

from rnnedge.runtime.cli import app, run_app

train_app = typer.Typer(no_args_is_help=True, help="Train a model (needs torch).")
app.add_typer(train_app, name="train")

DATA_DIR = typer.Option(None, "--data-dir", help="data directory (default: $RNNEDGE_DATA)")
DEVICE = typer.Option("auto", help="auto (CUDA when available), cpu or cuda")
THREADS = typer.Option(None, help="torch CPU threads (default: torch's choice)")


@train_app.command("charlm")
def train_charlm(out: Path = typer.Option(Path("runs/charlm"), help="checkpoint directory"),
                 text: Optional[Path] = typer.Option(None, help="UTF-8 corpus (default: Hamlet)"),
                 data_dir: Optional[Path] = DATA_DIR,
                 epochs: int = 20, max_minutes: Optional[float] = None, device: str = DEVICE,
                 seed: int = 0, resume: Optional[Path] = None, batch_size: int = 32,
                 num_steps: int = 100, lr: float = 2e-3, clip: float = 5.0, embed_dim: int = 64,
                 hidden_size: int = 256, num_layers: int = 2, dropout: float = 0.1,
                 cell: str = "lstm", nonlinearity: str = "tanh", threads: Optional[int] = THREADS):
    """Character language model with truncated BPTT (Hamlet by default)."""
    from rnnedge.train.charlm import train_charlm as run

    best = run(out, text=text, data_dir=data_dir, epochs=epochs, max_minutes=max_minutes,
               device=device, seed=seed, resume=resume, batch_size=batch_size,
               num_steps=num_steps, lr=lr, clip=clip, embed_dim=embed_dim,
               hidden_size=hidden_size, num_layers=num_layers, dropout=dropout, cell=cell,
               nonlinearity=nonlinearity, threads=threads)
    typer.echo(f"best epoch {best['epoch']}: validation {best['val_nats']:.3f} nats/char "
               f"= {best['val_bpc']:.3f} bits/char; checkpoints in {out}")


@train_app.command("sentiment")
def train_sentiment(out: Path = typer.Option(Path("runs/sentiment"), help="checkpoint directory"),
                    data: Optional[Path] = typer.Option(None, help="CSV/JSONL with text and label "
                                                        "columns (default: IMDb)"),
                    data_dir: Optional[Path] = DATA_DIR,
                    epochs: int = 8, max_minutes: Optional[float] = None, device: str = DEVICE,
                    seed: int = 0, resume: Optional[Path] = None, batch_size: int = 64,
                    lr: float = 2e-3, clip: float = 1.0, patience: int = 2, val_size: int = 2500,
                    embed_dim: int = 64, hidden_size: int = 128, num_layers: int = 1,
                    dropout: float = 0.4, cell: str = "lstm", nonlinearity: str = "tanh",
                    head: str = "mean",
                    bidirectional: bool = False, max_len: int = 400, keep: str = "head_tail",
                    min_count: int = 2, max_vocab: int = 30000, threads: Optional[int] = THREADS):
    """Many-to-one review classifier with early stopping on validation accuracy (IMDb by default)."""
    from rnnedge.train.sentiment import train_sentiment as run

    best = run(out, data=data, data_dir=data_dir, epochs=epochs, max_minutes=max_minutes,
               device=device, seed=seed, resume=resume, batch_size=batch_size, lr=lr, clip=clip,
               patience=patience, val_size=val_size, embed_dim=embed_dim, hidden_size=hidden_size,
               num_layers=num_layers, dropout=dropout, cell=cell, nonlinearity=nonlinearity, head=head,
               bidirectional=bidirectional, max_len=max_len, keep=keep, min_count=min_count,
               max_vocab=max_vocab, threads=threads)
    typer.echo("best epoch " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                         for k, v in best.items()) + f"; checkpoints in {out}")


@app.command("export")
def export_cmd(checkpoint: Path, out: Path = typer.Option(..., "--out", help="ONNX file to write")):
    """Export a checkpoint to a validated, self-describing ONNX file."""
    from rnnedge.export.exporter import export

    path, diffs = export(checkpoint, out)
    worst = max(diffs, key=lambda d: d.max_abs)
    typer.echo(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB); parity with PyTorch over "
               f"{len(diffs)} outputs, worst {worst}")


@app.command()
def verify(model: Path, checkpoint: Optional[Path] = typer.Option(None, help="source checkpoint"),
           data_dir: Optional[Path] = DATA_DIR,
           as_json: bool = typer.Option(False, "--json", help="machine-readable")):
    """Compare PyTorch, onnxruntime and numba on the same inputs; exit 1 on a parity failure."""
    from rnnedge.export.verify import verify as run

    diffs = run(model, checkpoint=_torch_checkpoint(checkpoint), data_dir=data_dir)
    if as_json:
        typer.echo(json.dumps([d.as_dict() for d in diffs], indent=2))
    else:
        for d in diffs:
            typer.echo(str(d))
    failed = [d for d in diffs if not d.ok]
    typer.echo(f"{len(diffs) - len(failed)} passed, {len(failed)} failed", err=as_json)
    if failed:
        raise typer.Exit(1)


@app.command()
def bench(model: Path, checkpoint: Optional[Path] = typer.Option(None, help="adds PyTorch eager"),
          variant: Optional[List[Path]] = typer.Option(None, help="a file written by `rnnedge "
                                                       "optimize`, run on onnxruntime (repeatable)"),
          steps: int = typer.Option(500, help="charlm: timed streaming steps"),
          warmup: int = typer.Option(50, help="charlm: untimed steps first"),
          threads: int = typer.Option(1, help="charlm: CPU threads"),
          reviews: int = typer.Option(128, help="sentiment: IMDb test reviews per pass"),
          data_dir: Optional[Path] = DATA_DIR,
          as_json: bool = typer.Option(False, "--json", help="machine-readable")):
    """Latency (charlm, per streamed character) or throughput (sentiment), engines side by side."""
    import os

    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # the numpy floor: one core, as the engines
    from rnnedge.runtime import bench as b
    from rnnedge.runtime.model import read_metadata, read_onnx

    checkpoint = _torch_checkpoint(checkpoint)
    variants = tuple(variant or ())
    if read_metadata(read_onnx(model), model).task == "charlm":
        from rnnedge.export.torch_engines import charlm_maker

        extra = {"torch": charlm_maker(checkpoint)} if checkpoint else {}
        report = b.bench_charlm(model, extra, steps=steps, warmup=warmup, threads=threads,
                                variants=variants)
        typer.echo(json.dumps(report, indent=2) if as_json else b.markdown(report))
        return
    from rnnedge.export.torch_engines import sentiment_maker
    from rnnedge.train.imdb import load_imdb

    texts = [r.text for r in load_imdb("test", data_dir)[::max(1, 25000 // reviews)][:reviews]]
    extra = {"torch": sentiment_maker(checkpoint)} if checkpoint else {}
    report = b.bench_sentiment(model, texts, extra, variants=variants)
    typer.echo(json.dumps(report, indent=2) if as_json else b.markdown_sentiment(report))


@app.command()
def evaluate(model: Path, data_dir: Optional[Path] = DATA_DIR,
             split: str = typer.Option("test", help="IMDb split: test or train"),
             data: Optional[Path] = typer.Option(None, help="CSV/JSONL labeled file instead of IMDb"),
             limit: Optional[int] = typer.Option(None, help="score only the first N reviews"),
             batch_size: int = typer.Option(64, "--batch-size"), engine: str = typer.Option("ort"),
             threads: int = typer.Option(2),
             as_json: bool = typer.Option(False, "--json", help="machine-readable")):
    """Accuracy of a sentiment model on raw review text, with the torch-free runtime."""
    from rnnedge.runtime.model import load
    from rnnedge.runtime.sentiment import evaluate as run
    from rnnedge.train.common import progress
    from rnnedge.train.imdb import load_imdb, load_labeled_file

    m = load(model, engine=engine, threads=threads)
    reviews = load_labeled_file(data) if data else load_imdb(split, data_dir)
    reviews = reviews[:limit] if limit else reviews
    with progress() as bar:
        task = bar.add_task(f"evaluating on {engine}", total=len(reviews), info="")
        result = run(m, [r.text for r in reviews], [r.label for r in reviews], batch_size,
                     on_batch=lambda n: bar.advance(task, n))
    result.update(engine=engine, split=str(data) if data else split)
    typer.echo(json.dumps(result) if as_json else
               f"accuracy {result['accuracy']:.4f} ({result['correct']}/{result['n']}) on "
               f"{result['split']} with {engine}")


diagnose_app = typer.Typer(no_args_is_help=True, help="Diagnostics of trained models (needs torch).")
app.add_typer(diagnose_app, name="diagnose")


@diagnose_app.command("gradients")
def diagnose_gradients(checkpoint: Optional[List[Path]] = typer.Option(None, help="trained char "
                                                                       "models to add (repeatable)"),
                       out: Path = typer.Option(Path("runs/diagnose"), help="folder for the PNG and JSON"),
                       steps: int = 200, windows: int = 8, hidden_size: int = 256,
                       num_layers: int = 2, data_dir: Optional[Path] = DATA_DIR, seed: int = 0):
    """||dL/dh(k)|| against the distance t-k for RNN, LSTM and GRU on real Hamlet windows."""
    from rnnedge.train.diagnose import charlm_curves, report

    curves = charlm_curves(checkpoint or (), steps=steps, windows=windows, data_dir=data_dir,
                           hidden_size=hidden_size, num_layers=num_layers, seed=seed)
    for row in report(curves, out):
        at = row["vanishes_at"]
        typer.echo(f"{row['curve']}: below 1e-3 of its value at k = t "
                   f"{f'from distance {at}' if at is not None else f'nowhere within {steps} steps'}; "
                   f"ratio at 50 steps {row['ratio_at_50']:.2e}")
    typer.echo(f"wrote {out / 'gradients.png'} and {out / 'gradients.json'}")


@app.command("optimize")
def optimize_cmd(model: Path, out: Path = typer.Option(..., "--out", help="variant to write "
                                                       "(.ort with --ort-format)"),
                 int8: bool = typer.Option(False, "--int8", help="dynamic int8 quantization"),
                 fp16: bool = typer.Option(False, "--fp16", help="fp16 weights, fp32 compute"),
                 ort_format: bool = typer.Option(False, "--ort-format",
                                                 help="offline-optimized ORT format (minimal builds)"),
                 numba_int8: bool = typer.Option(False, "--numba-int8",
                                                 help="charlm: gate the numba int8 engine "
                                                 "(--engine fast-int8); the file stays fp32"),
                 force: bool = typer.Option(False, "--force", help="write even if the gate fails"),
                 data_dir: Optional[Path] = DATA_DIR,
                 limit: Optional[int] = typer.Option(None, help="gate on N reviews / characters only"),
                 as_json: bool = typer.Option(False, "--json", help="machine-readable")):
    """A smaller variant of an exported model, written only if it passes its accuracy gate."""
    from rnnedge.export.optimize import optimize, summary

    report = optimize(model, out, int8=int8, fp16=fp16, ort_format=ort_format,
                      numba_int8=numba_int8, force=force, data_dir=data_dir, limit=limit)
    typer.echo(json.dumps(report, indent=2) if as_json else summary(report))


def _torch_checkpoint(checkpoint):
    """The checkpoint when torch can read it; None (with a note) when torch is missing."""
    if checkpoint is None:
        return None
    from rnnedge.export.torch_engines import torch_available

    if not torch_available():
        typer.echo("note: torch is not installed; PyTorch is left out", err=True)
        return None
    return checkpoint


def main():
    run_app(app)


if __name__ == "__main__":
    main()
