"""``rnnedge train charlm|sentiment``: flags over the config dataclasses (needs torch).

A command's hyper-parameter flags are made from the fields of its config dataclasses in
``rnnedge.train.config`` (``with_settings``), where each setting is written once: name, type,
default and help. Every such flag defaults to None, meaning "not given": the value then comes
from ``--config`` (a preset file under ``configs/``) or from the dataclass; help texts show the
dataclass's default. ``--resume`` follows the one rule of ``rnnedge.train.config``.

Several processes: start the same command under torchrun, e.g.
``torchrun --nproc_per_node 2 -m rnnedge.cli train sentiment ...`` (or ``torchrun ...
$(which rnnedge) train ...``); ``--batch-size`` is the global batch, and rank 0 writes.
"""

import inspect
import os
import time
from pathlib import Path
from typing import Optional

import typer

from rnnedge.train.config import (CharLMConfig, CharTrainConfig, SentimentConfig,
                                  SentimentTrainConfig, setting_fields)

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


def with_settings(*classes):
    """Decorate a command that takes ``**settings``: typer sees, after its own options, one
    flag per setting of the config dataclasses ``classes``, in their order (``option``)."""

    def decorate(command):
        signature = inspect.signature(command)
        own = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
        flags = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option(f),
                                   annotation=Optional[f.type])
                 for cls in classes for f in setting_fields(cls)]
        command.__signature__ = signature.replace(parameters=own + flags)
        return command

    return decorate


def option(field):
    """The flag of a dataclass field: None when not given, its help and default from the field
    (``train.config.setting``); a bool with an ``off`` name is an on/off pair."""
    help, off = field.metadata.get("help", ""), field.metadata.get("off")
    if off:
        shown = field.name if field.default else off
        return typer.Option(None, f"--{field.name.replace('_', '-')}/--{off}",
                            help=f"{help} [default: {shown}]".strip())
    return typer.Option(None, help=f"{help} [default: {field.default}]".strip())


@train_app.command("charlm",
    epilog='Example: rnnedge train charlm --config configs/hamlet_demo.toml --out runs/charlm --max-minutes 3')
@with_settings(CharTrainConfig, CharLMConfig)
def train_charlm(out: Path = typer.Option(Path("runs/charlm"), help="checkpoint directory"),
                 text: Optional[Path] = typer.Option(None, help="UTF-8 corpus (default: Hamlet)"),
                 data_dir: Optional[Path] = DATA_DIR, preset: Optional[Path] = PRESET,
                 max_minutes: Optional[float] = MAX_MINUTES, device: str = DEVICE,
                 resume: Optional[Path] = RESUME, threads: Optional[int] = THREADS, **settings):
    """Character language model with truncated BPTT (Hamlet by default)."""
    since = time.perf_counter()  # --max-minutes counts importing torch too
    from rnnedge.train.charlm import train_charlm as run

    best = run(out, text=text, data_dir=data_dir, max_minutes=max_minutes, since=since,
               device=device, resume=resume, threads=threads, preset=preset, **settings)
    say_once(f"best epoch {best['epoch']}: validation {best['val_nats']:.3f} nats/char "
             f"= {best['val_bpc']:.3f} bits/char; checkpoints in {out}")
    say_quality(best)


@train_app.command("sentiment",
    epilog='Example: rnnedge train sentiment --config configs/imdb_demo.toml --out runs/sentiment')
@with_settings(SentimentTrainConfig, SentimentConfig)
def train_sentiment(out: Path = typer.Option(Path("runs/sentiment"), help="checkpoint directory"),
                    data: Optional[Path] = typer.Option(None, help="CSV/JSONL with text and label "
                                                        "columns (default: IMDb)"),
                    data_dir: Optional[Path] = DATA_DIR, preset: Optional[Path] = PRESET,
                    max_minutes: Optional[float] = MAX_MINUTES, device: str = DEVICE,
                    resume: Optional[Path] = RESUME, threads: Optional[int] = THREADS,
                    **settings):
    """Many-to-one review classifier with early stopping on validation accuracy (IMDb by default)."""
    since = time.perf_counter()  # --max-minutes counts importing torch too
    from rnnedge.train.sentiment import train_sentiment as run

    best = run(out, data=data, data_dir=data_dir, max_minutes=max_minutes, since=since,
               device=device, resume=resume, threads=threads, preset=preset, **settings)
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
