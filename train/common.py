"""What every training loop shares: device choice, seeding, the progress bar, the log."""

import io
import random
import sys
import time
from pathlib import Path

from rnnedge.runtime.errors import InputError

from . import distributed, rundir


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


def to_device(array, device):
    """A numpy batch as a tensor on ``device``; on CUDA through pinned memory, copied without
    blocking, so that the host prepares the next batch while the GPU computes."""
    import torch

    tensor, device = torch.from_numpy(array), torch.device(device)
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def seed_everything(seed):
    """Seed Python, numpy and torch; CPU runs with the same seed give the same weights."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def progress(every=5.0, stream=None, main=True):
    """A progress bar that shows loss and throughput fields set by the loop.

    On a terminal, rich's bar; otherwise (a log file, a pipe, CI) ``PlainProgress``: plain
    lines on stderr, so that a log shows that a long command is alive. Off the main rank of
    a multi-process run (``main=False``) it shows nothing: rank 0 speaks for all.
    """
    if not main:
        return PlainProgress(every, io.StringIO())
    stream = stream or sys.stderr
    if not stream.isatty():
        return PlainProgress(every, stream)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), transient=True)


class PlainProgress:
    """The part of rich's ``Progress`` the loops use, as one line per ``every`` seconds at most
    and one when a task ends (finished or removed: one per training epoch)."""

    def __init__(self, every=5.0, stream=None):
        self.every, self.stream = every, stream or sys.stderr
        self.tasks, self.last = {}, time.perf_counter()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def add_task(self, description, total=None, info="", **_):
        task = len(self.tasks)
        self.tasks[task] = {"description": description, "total": total, "done": 0, "info": info,
                            "start": time.perf_counter(), "ended": False}
        return task

    def update(self, task, advance=0, info=None, **_):
        t = self.tasks[task]
        t["done"] += advance
        t["info"] = t["info"] if info is None else info
        if t["total"] is not None and t["done"] >= t["total"]:
            self._end(task)
        elif time.perf_counter() - self.last >= self.every:
            self._say(t)

    def advance(self, task, advance=1):
        self.update(task, advance=advance)

    def remove_task(self, task):
        self._end(task)
        del self.tasks[task]

    def _end(self, task):
        if not self.tasks[task]["ended"]:
            self.tasks[task]["ended"] = True
            self._say(self.tasks[task])

    def _say(self, t):
        self.last = time.perf_counter()
        total = "" if t["total"] is None else f"/{t['total']}"
        info = f"  {t['info']}" if t["info"] else ""
        print(f"{t['description']}: {t['done']}{total}{info}  {self.last - t['start']:.0f}s",
              file=self.stream, flush=True)


class Budget:
    """A wall-clock budget in minutes (``None`` means unlimited).

    In a multi-process run ``spent`` is true on every rank once it is on one (each call is a
    collective then), so that all ranks stop at the same step."""

    def __init__(self, max_minutes=None):
        self.start = time.perf_counter()
        self.limit = None if max_minutes is None else 60.0 * max_minutes

    def elapsed(self):
        return time.perf_counter() - self.start

    def spent(self):
        if self.limit is None:
            return False
        return distributed.any_rank(self.elapsed() >= self.limit)


class TrainLog:
    """The run's train_log.jsonl, one JSON object per line, and a summary echoed per record.

    ``out_dir`` is held (``rundir.hold``). ``write`` commits an event record at once; an
    epoch's record is committed with its checkpoints (``checkpoint.save_epoch``) and only
    ``say``s its line here. Off the main rank of a multi-process run (``main=False``) it
    writes and says nothing: rank 0 logs for all.
    """

    def __init__(self, out_dir, echo=print, main=True):
        self.run = rundir.held(out_dir) if main else None
        self.path = Path(out_dir) / rundir.LOG
        self.echo = echo if main else None

    def write(self, record, line=None):
        if self.run is not None:
            self.run.commit(log=[record])
        self.say(line)

    def say(self, line):
        if line and self.echo:
            self.echo(line)
