"""``rnnedge train charlm|sentiment``: flags over the config dataclasses (needs torch).

Every hyper-parameter flag defaults to None, meaning "not given": the value then comes from
``--config`` (a preset file under ``configs/``) or from the dataclass in
``rnnedge.train.config``, where each default is written once. Help texts show those
defaults. ``--resume`` follows the one rule of ``rnnedge.train.config``.

Several processes: start the same command under torchrun, e.g.
``torchrun --nproc_per_node 2 -m rnnedge.cli train sentiment ...`` (or ``torchrun ...
$(which rnnedge) train ...``); ``--batch-size`` is the global batch, and rank 0 writes.
"""

import os
import time
from pathlib import Path
from typing import Optional

import typer

from rnnedge.train.config import (CharLMConfig, CharTrainConfig, SentimentConfig,
                                  SentimentTrainConfig, default)

from .app import DATA_DIR, HELP, app

train_app = typer.Typer(**HELP, help="Train a model (needs torch).")
app.add_typer(train_app, name="train")

DEVICE = typer.Option("auto", help="auto (CUDA when available), cpu or cuda")
THREADS = typer.Option(None, help="torch CPU threads (default: the free cores, from the load "
                        "average, at most 8; on CUDA torch's choice)")
PRESET = typer.Option(None, "--config", help="preset file of settings (configs/*.toml)")
RESUME = typer.Option(None, help="continue the run in this directory or checkpoint, with its "
                      "settings (only --epochs may change)")
MAX_MINUTES = typer.Option(None, help="minutes for the whole command, the final test scoring "
                           "included: training stops at the step that leaves time for "
                           "validation and scoring")
PRECISION_HELP = "fp32, bf16 or fp16 (autocast; fp16 on CUDA only)"


def setting(cls, name, help=""):
    """A flag whose default lives in the dataclass ``cls``: None here, shown in the help."""
    return typer.Option(None, help=f"{help} [default: {default(cls, name)}]".strip())


@train_app.command("charlm")
def train_charlm(out: Path = typer.Option(Path("runs/charlm"), help="checkpoint directory"),
                 text: Optional[Path] = typer.Option(None, help="UTF-8 corpus (default: Hamlet)"),
                 data_dir: Optional[Path] = DATA_DIR, preset: Optional[Path] = PRESET,
                 max_minutes: Optional[float] = MAX_MINUTES, device: str = DEVICE,
                 resume: Optional[Path] = RESUME, threads: Optional[int] = THREADS,
                 epochs: Optional[int] = setting(CharTrainConfig, "epochs"),
                 seed: Optional[int] = setting(CharTrainConfig, "seed"),
                 precision: Optional[str] = setting(CharTrainConfig, "precision",
                                                    PRECISION_HELP),
                 batch_size: Optional[int] = setting(CharTrainConfig, "batch_size", "parallel streams"),
                 num_steps: Optional[int] = setting(CharTrainConfig, "num_steps", "BPTT window"),
                 lr: Optional[float] = setting(CharTrainConfig, "lr"),
                 clip: Optional[float] = setting(CharTrainConfig, "clip", "global gradient norm"),
                 embed_dim: Optional[int] = setting(CharLMConfig, "embed_dim"),
                 hidden_size: Optional[int] = setting(CharLMConfig, "hidden_size"),
                 num_layers: Optional[int] = setting(CharLMConfig, "num_layers"),
                 dropout: Optional[float] = setting(CharLMConfig, "dropout"),
                 cell: Optional[str] = setting(CharLMConfig, "cell", "lstm, gru or rnn"),
                 nonlinearity: Optional[str] = setting(CharLMConfig, "nonlinearity", "rnn: tanh or relu")):
    """Character language model with truncated BPTT (Hamlet by default)."""
    since = time.perf_counter()  # --max-minutes counts importing torch too
    from rnnedge.train.charlm import train_charlm as run

    best = run(out, text=text, data_dir=data_dir, max_minutes=max_minutes, since=since,
               device=device, resume=resume, threads=threads, preset=preset, epochs=epochs,
               seed=seed, precision=precision, batch_size=batch_size, num_steps=num_steps, lr=lr,
               clip=clip,
               embed_dim=embed_dim, hidden_size=hidden_size, num_layers=num_layers,
               dropout=dropout, cell=cell, nonlinearity=nonlinearity)
    say_once(f"best epoch {best['epoch']}: validation {best['val_nats']:.3f} nats/char "
             f"= {best['val_bpc']:.3f} bits/char; checkpoints in {out}")
    say_quality(best)


@train_app.command("sentiment")
def train_sentiment(out: Path = typer.Option(Path("runs/sentiment"), help="checkpoint directory"),
                    data: Optional[Path] = typer.Option(None, help="CSV/JSONL with text and label "
                                                        "columns (default: IMDb)"),
                    data_dir: Optional[Path] = DATA_DIR, preset: Optional[Path] = PRESET,
                    max_minutes: Optional[float] = MAX_MINUTES, device: str = DEVICE,
                    resume: Optional[Path] = RESUME, threads: Optional[int] = THREADS,
                    epochs: Optional[int] = setting(SentimentTrainConfig, "epochs"),
                    seed: Optional[int] = setting(SentimentTrainConfig, "seed"),
                    precision: Optional[str] = setting(SentimentTrainConfig, "precision",
                                                       PRECISION_HELP),
                    batch_size: Optional[int] = setting(SentimentTrainConfig, "batch_size"),
                    lr: Optional[float] = setting(SentimentTrainConfig, "lr"),
                    clip: Optional[float] = setting(SentimentTrainConfig, "clip", "global gradient norm"),
                    patience: Optional[int] = setting(SentimentTrainConfig, "patience"),
                    val_size: Optional[int] = setting(SentimentTrainConfig, "val_size"),
                    embed_dim: Optional[int] = setting(SentimentConfig, "embed_dim"),
                    hidden_size: Optional[int] = setting(SentimentConfig, "hidden_size"),
                    num_layers: Optional[int] = setting(SentimentConfig, "num_layers"),
                    dropout: Optional[float] = setting(SentimentConfig, "dropout"),
                    cell: Optional[str] = setting(SentimentConfig, "cell", "lstm, gru or rnn"),
                    nonlinearity: Optional[str] = setting(SentimentConfig, "nonlinearity"),
                    head: Optional[str] = setting(SentimentConfig, "head", "last, mean or max"),
                    bidirectional: Optional[bool] = typer.Option(
                        None, "--bidirectional/--unidirectional",
                        help=f"[default: {'bidirectional' if default(SentimentConfig, 'bidirectional') else 'unidirectional'}]"),
                    max_len: Optional[int] = setting(SentimentConfig, "max_len", "tokens kept per review"),
                    keep: Optional[str] = setting(SentimentConfig, "keep", "last, first or head_tail"),
                    min_count: Optional[int] = setting(SentimentConfig, "min_count"),
                    max_vocab: Optional[int] = setting(SentimentConfig, "max_vocab")):
    """Many-to-one review classifier with early stopping on validation accuracy (IMDb by default)."""
    since = time.perf_counter()  # --max-minutes counts importing torch too
    from rnnedge.train.sentiment import train_sentiment as run

    best = run(out, data=data, data_dir=data_dir, max_minutes=max_minutes, since=since,
               device=device, resume=resume, threads=threads, preset=preset, epochs=epochs,
               seed=seed,
               precision=precision, batch_size=batch_size, lr=lr, clip=clip, patience=patience,
               val_size=val_size,
               embed_dim=embed_dim, hidden_size=hidden_size, num_layers=num_layers,
               dropout=dropout, cell=cell, nonlinearity=nonlinearity, head=head,
               bidirectional=bidirectional, max_len=max_len, keep=keep, min_count=min_count,
               max_vocab=max_vocab)
    say_once(classifier_summary(best, out))
    say_quality(best)


def classifier_summary(best, out):
    """The closing line of ``train sentiment`` and ``train series``: what best.pt holds."""
    n = best.get("averaged_epochs")
    what = (f"the mean weights of epochs {best['epoch'] - n + 1}-{best['epoch']}" if n
            else f"epoch {best['epoch']}")
    parts = [f"validation accuracy {best['val_acc']:.4f}"]
    if "test_acc" in best:
        sampled = (f" on a sample of {best['test_n']:,} of {best['test_of']:,}"
                   if "test_n" in best else "")
        parts.append(f"test accuracy {best['test_acc']:.4f}{sampled}")
    stopped = {"early": "stopped early", "budget": "stopped by --max-minutes"}.get(best.get("stopped"))
    seconds = best.get("train_s")
    tail = ", ".join(x for x in (stopped, seconds and f"{seconds:.0f} s of training") if x)
    return f"best.pt: {what}, {', '.join(parts)}{f' ({tail})' if tail else ''}; checkpoints in {out}"


def say_once(line, err=False):
    """The closing line of a training command, printed by rank 0 alone under torchrun."""
    if os.environ.get("RANK", "0") == "0":
        typer.echo(line, err=err)


def say_quality(best):
    """The last line, when the preset has an [expect] band: inside it on stdout, a warning
    outside it on stderr; the command succeeds either way (``rnnedge.train.expect``)."""
    quality = best.get("quality")
    if quality:
        say_once(quality["line"], err=not quality["ok"])
