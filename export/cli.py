"""The full ``rnnedge`` command line: the runtime's commands plus train, export, verify, bench.

Thin by design: each command parses its flags, imports lazily (so ``rnnedge
generate`` never loads torch), and calls one library function whose keyword names
match the flags.
"""

import json
from pathlib import Path
from typing import Optional

import typer

from rnnedge.runtime.cli import app, run_app

train_app = typer.Typer(no_args_is_help=True, help="Train a model (needs torch).")
app.add_typer(train_app, name="train")

DATA_DIR = typer.Option(None, "--data-dir", help="data directory (default: $RNNEDGE_DATA)")
DEVICE = typer.Option("auto", help="auto (CUDA when available), cpu or cuda")


@train_app.command("charlm")
def train_charlm(out: Path = typer.Option(Path("runs/charlm"), help="checkpoint directory"),
                 text: Optional[Path] = typer.Option(None, help="UTF-8 corpus (default: Hamlet)"),
                 data_dir: Optional[Path] = DATA_DIR,
                 epochs: int = 20, max_minutes: Optional[float] = None, device: str = DEVICE,
                 seed: int = 0, resume: Optional[Path] = None, batch_size: int = 32,
                 num_steps: int = 100, lr: float = 2e-3, clip: float = 5.0, embed_dim: int = 64,
                 hidden_size: int = 256, num_layers: int = 2, dropout: float = 0.1,
                 cell: str = "lstm", nonlinearity: str = "tanh"):
    """Character language model with truncated BPTT (Hamlet by default)."""
    from rnnedge.train.charlm import train_charlm as run

    best = run(out, text=text, data_dir=data_dir, epochs=epochs, max_minutes=max_minutes,
               device=device, seed=seed, resume=resume, batch_size=batch_size,
               num_steps=num_steps, lr=lr, clip=clip, embed_dim=embed_dim,
               hidden_size=hidden_size, num_layers=num_layers, dropout=dropout, cell=cell,
               nonlinearity=nonlinearity)
    typer.echo(f"best epoch {best['epoch']}: validation {best['val_nats']:.3f} nats/char "
               f"= {best['val_bpc']:.3f} bits/char; checkpoints in {out}")


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
          steps: int = 500, warmup: int = 50, threads: int = 1,
          as_json: bool = typer.Option(False, "--json", help="machine-readable")):
    """Per-step streaming latency at batch 1, per engine, with ratios from the same run."""
    from rnnedge.runtime.bench import bench_charlm, markdown

    extra = {}
    if _torch_checkpoint(checkpoint):
        from rnnedge.export.torch_engines import charlm_stepper

        extra["torch"] = charlm_stepper(checkpoint, threads)
    report = bench_charlm(model, extra, steps=steps, warmup=warmup, threads=threads)
    typer.echo(json.dumps(report, indent=2) if as_json else markdown(report))


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
