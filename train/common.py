"""What every training loop shares: device and thread choice, seeding, the progress bar, the log.

Not here: the time budget (``budget.py``).
"""

import contextlib
import io
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rnnedge.runtime.errors import InputError
from rnnedge.runtime.quiet import quiet

from . import distributed, rundir

# The default's cap: the recurrent nets trained here gain little past it, and on a large
# machine the other cores stay with its other users.
MAX_THREADS = 8


def pick_device(name="auto"):
    """``auto`` takes CUDA when available, else the CPU; ``cuda`` without a GPU is an error."""
    import torch

    if name not in ("auto", "cpu", "cuda"):
        raise InputError(f"--device must be auto, cpu or cuda, not {name!r}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for but torch sees no CUDA GPU; use --device cpu")
    if name == "cuda":
        torch.backends.cudnn.enabled = True
    return torch.device(name)


@dataclass(frozen=True)
class Threads:
    """torch's CPU threads in a run, and where the number came from: ``given`` (--threads),
    ``free`` (the free cores: ``cores`` less the load average ``load``) or ``torch``'s own."""

    count: int
    source: str
    cores: int | None = None  # measured for ``free`` only
    load: float | None = None

    def __str__(self):
        n = f"{self.count} thread{'s' if self.count != 1 else ''}"
        if self.source == "free":
            return f"{n} ({self.cores} cores, load {self.load:.1f})"
        return f"{n} (--threads)" if self.source == "given" else f"{n} (torch's default)"


def set_threads(threads, device):
    """Set torch's CPU threads and say why (``Threads``): ``threads`` when given; on the CPU
    otherwise the free cores (``free_cores``); on CUDA, torch's default.

    torch's default is every core, which on a loaded machine oversubscribes it: a Hamlet
    model trained at 900 chars/s so on 2 busy cores, 6,490 on one thread. Results on the CPU
    are reproducible for a given seed and thread count: give ``threads`` to rerun a run bit
    for bit, as the default follows the load. The inter-op pool gets the same count where
    torch still lets it be set (once, before any parallel work).
    """
    import torch

    if threads is not None and threads < 1:
        raise InputError(f"--threads must be >= 1, not {threads}")
    if threads is None and device.type != "cpu":
        return Threads(torch.get_num_threads(), "torch")
    chosen = Threads(threads, "given") if threads is not None else free_cores(
        distributed.local_size())
    torch.set_num_threads(chosen.count)
    with contextlib.suppress(RuntimeError):  # settable once, before any parallel work
        torch.set_num_interop_threads(chosen.count)
    return chosen


def free_cores(processes=1):
    """``Threads`` of the cores the 1-minute load average leaves free, shared by ``processes``
    training processes on this machine: max(1, cores - round(load)) among them, 1 to
    ``MAX_THREADS`` each. ``cores`` are those this process may run on."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not Unix, or no load average to read
        load = 0.0
    free = max(1, min(cores, cores - round(load)))
    return Threads(max(1, min(free // processes, MAX_THREADS)), "free", cores, load)


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
    a multi-process run (``main=False``) it shows nothing: rank 0 speaks for all; nor under
    ``--quiet`` (``runtime.quiet``).
    """
    if not main or quiet():
        return PlainProgress(every, io.StringIO())
    stream = stream or sys.stderr
    if not stream.isatty():
        return PlainProgress(every, stream)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), transient=True)


@contextlib.contextmanager
def counted(description, total, main=True):
    """A progress bar of one pass over ``total`` items (``progress``); yields ``advance(n)``."""
    with progress(main=main) as bar:
        task = bar.add_task(description, total=total, info="")
        yield lambda n: bar.update(task, advance=n)
        bar.remove_task(task)


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


def started(device, threads, world):
    """The line that opens a training call's output: where it trains, on how many threads and
    why, in how many processes. Said, not logged (each log commit is an epoch's or the end's);
    the checkpoints record the threads (``trained_on``)."""
    processes = f" in {world.size} processes" if world.size > 1 else ""
    each = " each" if world.size > 1 else ""
    return f"training on {device.type}{processes}, {threads}{each}"


def finish(metrics, log, budget, quality=None):
    """The result of a training call, closed: the ``quality`` record (``expect.judge``; the
    command line prints its line last), then the ``end`` record (``Budget.end``) go into the
    log; ``metrics`` gain both, the quality record and the call's ``elapsed_s``."""
    if quality:
        log.write(quality)
        metrics = {**metrics, "quality": quality}
    record, line = budget.end()
    log.write(record, line)
    return {**metrics, "elapsed_s": record["elapsed_s"]}


class TrainLog:
    """The run's train_log.jsonl, one JSON object per line, and a summary echoed per record.

    ``out_dir`` is held (``rundir.hold``). ``write`` commits an event record at once; an
    epoch's record is committed with its checkpoints (``checkpoint.save_epoch``) and only
    ``say``s its line here. Off the main rank of a multi-process run (``main=False``) it
    writes and says nothing: rank 0 logs for all. Under ``--quiet`` it writes and says nothing
    either; the command line prints the result.
    """

    def __init__(self, out_dir, echo=print, main=True):
        self.run = rundir.held(out_dir) if main else None
        self.path = Path(out_dir) / rundir.LOG
        self.echo = echo if main and not quiet() else None

    def write(self, record, line=None):
        if self.run is not None:
            self.run.commit(log=[record])
        self.say(line)

    def say(self, line):
        if line and self.echo:
            self.echo(line)
