"""What every training loop shares: device choice, seeding, the progress bar, the log."""

import json
import random
import time
from pathlib import Path

from rnnedge.runtime.errors import InputError


def pick_device(name="auto", threads=None):
    """``auto`` takes CUDA when available, else the CPU; ``cuda`` without a GPU is an error.

    ``threads`` sets torch's CPU thread count (None keeps torch's default); results on
    the CPU are reproducible for a given seed and thread count.
    """
    import torch

    if threads is not None:
        if threads < 1:
            raise InputError(f"--threads must be >= 1, not {threads}")
        torch.set_num_threads(threads)

    if name not in ("auto", "cpu", "cuda"):
        raise InputError(f"--device must be auto, cpu or cuda, not {name!r}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for but torch sees no CUDA GPU; use --device cpu")
    if name == "cuda":
        torch.backends.cudnn.enabled = True
    return torch.device(name)


def seed_everything(seed):
    """Seed Python, numpy and torch; CPU runs with the same seed give the same weights."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def progress():
    """A rich progress bar that shows loss and throughput fields set by the loop."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), transient=True)


class Budget:
    """A wall-clock budget in minutes (``None`` means unlimited)."""

    def __init__(self, max_minutes=None):
        self.start = time.perf_counter()
        self.limit = None if max_minutes is None else 60.0 * max_minutes

    def elapsed(self):
        return time.perf_counter() - self.start

    def spent(self):
        return self.limit is not None and self.elapsed() >= self.limit


class TrainLog:
    """Appends one JSON object per line to ``DIR/train_log.jsonl`` and echoes a summary."""

    def __init__(self, out_dir, echo=print):
        self.path = Path(out_dir) / "train_log.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.echo = echo

    def write(self, record, line=None):
        with open(self.path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        if line and self.echo:
            self.echo(line)
