"""A training run's directory: one writer at a time, and a manifest that keeps its files in step.

One idea, kept in one file though it passes 350 lines: every write into a run directory.

    DIR/run.lock         flock'd by the one process that writes DIR; no other process writes there
    DIR/run.json         the manifest: {"format": 1, "log_lines": int, "files": {"last.pt":
                         {"epoch": int, "sha256": hex}, "best.pt": {...}}}
    DIR/last.pt, best.pt the checkpoints (bytes given by the caller: this module knows no torch)
    DIR/train_log.jsonl  one JSON object per line

Invariant, at every instant, whatever process is killed where: run.json is complete (it is
only ever renamed into place) and describes a complete state of the run, in which
  (a) each checkpoint it names holds the bytes of its sha256, or a complete staged copy
      NAME.next does;
  (b) the first ``log_lines`` lines of the log are exactly the committed records.
``Run.commit`` keeps it: append the records to the log (fsync), write each new checkpoint as
NAME.next (temp file, fsync, rename), write run.json the same way (the commit point), then
rename each NAME.next over NAME. A kill before the commit point leaves the old run.json, whose
files were never touched (the new lines lie past ``log_lines``); after it, the new run.json,
whose bytes are in NAME or NAME.next. On the next start ``hold`` finishes the work: it renames
committed NAME.next files into place, deletes uncommitted ones and temp files, and cuts the log
back to ``log_lines``. Readers that do not hold the lock (export, resume from another run) use
``committed_bytes``: the bytes run.json names, from NAME or NAME.next; they ignore the rest.

Not here: what a checkpoint holds (``checkpoint.py``). ``fault`` is a test hook that stops the
process at a named step (``tests/test_run_safety.py``).
"""

import contextlib
import fcntl
import functools
import glob
import hashlib
import json
import os
import time
from pathlib import Path

from rnnedge.runtime.atomic import fault, fsync_dir, write_atomic
from rnnedge.runtime.errors import CheckpointError, InputError, write_error

FORMAT = 1
LOCK, MANIFEST, LOG = "run.lock", "run.json", "train_log.jsonl"
CHECKPOINTS = ("last.pt", "best.pt")
STAGED = ".next"  # NAME.next: a complete new NAME, renamed over NAME once run.json names it
MARKERS = CHECKPOINTS + (MANIFEST, LOCK)  # a directory with one of these holds a run
RUN_FILES = MARKERS + (LOG,) + tuple(n + STAGED for n in CHECKPOINTS)
_held = {}  # resolved directory -> the Run this process holds there


class Run:
    """A run directory held by this process: its manifest (recovered on opening) and commits."""

    def __init__(self, path):
        self.path = Path(path)
        self.manifest = read_manifest(self.path) or self._adopt()
        self._recover()

    def entry(self, name):
        """{"epoch", "sha256"} of checkpoint ``name`` as committed, or None."""
        return self.manifest["files"].get(name)

    def commit(self, files=None, log=()):
        """One transaction: ``files`` ({name: (bytes, epoch)}) replace checkpoints and ``log``
        records are appended; after a kill at any point, all of it is on disk or none."""
        files = files or {}
        unknown = set(files) - set(CHECKPOINTS)
        if unknown:
            raise ValueError(f"a run commits {', '.join(CHECKPOINTS)}, not {', '.join(unknown)}")
        try:  # a torn line past log_lines is cut at the next start
            lines = self.manifest["log_lines"] + append_lines(self.path / LOG, log)
        except OSError as exc:
            raise write_error(self.path / LOG, exc) from exc
        fault("log")
        entries = dict(self.manifest["files"])
        for name, (data, epoch) in files.items():
            write_atomic(self.path / (name + STAGED), data)
            fault(f"staged:{name}")
            entries[name] = {"epoch": epoch, "sha256": hashlib.sha256(data).hexdigest()}
        self._write_manifest({"format": FORMAT, "log_lines": lines, "files": entries})
        fault("commit")
        for name in files:
            os.replace(self.path / (name + STAGED), self.path / name)
            fault(f"install:{name}")
        fsync_dir(self.path)

    def _write_manifest(self, manifest):
        write_atomic(self.path / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
        self.manifest = manifest

    def _adopt(self):
        """The manifest of a directory that has none: a new one, or a run from before manifests,
        taken as it stands (epochs unknown until rewritten)."""
        files = {name: {"epoch": None, "sha256": file_sha256(self.path / name)}
                 for name in CHECKPOINTS if (self.path / name).is_file()}
        log = self.path / LOG
        lines = log.read_bytes().count(b"\n") if log.is_file() else 0
        self._write_manifest({"format": FORMAT, "log_lines": lines, "files": files})
        return self.manifest

    def _recover(self):
        """Finish the commit a killed writer got past its commit point; drop what it did not."""
        for name, entry in self.manifest["files"].items():
            target, staged = self.path / name, self.path / (name + STAGED)
            if file_sha256(target) == entry["sha256"]:
                continue
            if file_sha256(staged) != entry["sha256"]:
                raise CheckpointError(f"{target} is not the {name} that {self.path / MANIFEST} "
                                      f"records and no staged copy is left; the directory was "
                                      f"changed by hand: restore {name}, or delete "
                                      f"{MANIFEST} to accept the files as they are")
            os.replace(staged, target)
        leftovers = [self.path / (n + STAGED) for n in CHECKPOINTS]
        leftovers += [Path(p) for n in RUN_FILES
                      for p in glob.glob(str(self.path / f".{glob.escape(n)}.*.tmp"))]
        for path in leftovers:  # no writer is alive: this process holds the lock
            path.unlink(missing_ok=True)
        cut_lines(self.path / LOG, self.manifest["log_lines"])
        fsync_dir(self.path)


@contextlib.contextmanager
def hold(out):
    """Hold the run directory ``out`` (made if missing) for the block, as a ``Run``.

    Another process holding it is an ``InputError`` that names it; a dead holder holds
    nothing (the kernel drops its flock). Taken before anything in ``out`` is written.
    """
    out = Path(out)
    key = out.resolve()
    if key in _held:
        raise RuntimeError(f"{out} is already held by this process")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; a training run writes a folder of checkpoints: "
                         f"give a directory")
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise write_error(out, exc) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = lock_holder(out / LOCK)
            who = f"PID {pid}" if pid else "another process"
            raise InputError(f"{out} is in use: {who} is training into it; wait for it to "
                             f"end, or choose another --out") from None
        _held[key] = Run(out)
        try:
            fault("locked")
            yield _held[key]
        except Exception:
            # a start refused before it wrote anything (bad settings, missing data) leaves no
            # directory behind that it made
            left = {p.name: p for p in out.iterdir()}
            if created and set(left) <= {LOCK, MANIFEST, LOG} and not (
                    LOG in left and left[LOG].stat().st_size):
                for path in left.values():
                    path.unlink()
                out.rmdir()
            raise
        finally:
            del _held[key]
    finally:
        os.close(fd)  # releases the flock


def holding(train):
    """Decorate ``train(out, ...)`` so that each call holds the run directory ``out``."""

    @functools.wraps(train)
    def held_train(out, *args, **kwargs):
        with hold(out):
            return train(out, *args, **kwargs)

    return held_train


def held(out, required=True):
    """The ``Run`` this process holds in ``out``; None (or, if ``required``, an error) if none."""
    run = _held.get(Path(out).resolve())
    if run is None and required:
        raise RuntimeError(f"{out} is not held by this process; write a run inside rundir.hold")
    return run


def lock_holder(path):
    """PID of the process holding the flock on ``path``, from Linux's /proc/locks; else None."""
    try:
        st = os.stat(path)
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    found = {}
    for fields in map(str.split, lines):  # "1: FLOCK  ADVISORY  WRITE 4711 fe:00:2147505 0 EOF"
        if len(fields) > 5 and fields[1] == "FLOCK" and fields[5].endswith(f":{st.st_ino}"):
            found[fields[5] == device] = int(fields[4])
    return found.get(True, found.get(False))


def read_manifest(directory):
    """The run.json of ``directory``, or None if it has none."""
    path = Path(directory) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable run manifest ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a run manifest of format {FORMAT}")
    return manifest


def committed_bytes(path, attempts=20):
    """The bytes of checkpoint ``path``: for a run's last.pt or best.pt those its run.json
    names (from NAME or NAME.next), else the file's. Holds no lock and writes nothing."""
    path = Path(path)
    real = path.resolve()
    for _ in range(attempts):
        manifest = read_manifest(real.parent) if real.name in CHECKPOINTS else None
        entry = manifest and manifest["files"].get(real.name)
        if not entry:
            return path.read_bytes()
        for candidate in (real, real.with_name(real.name + STAGED)):
            with contextlib.suppress(FileNotFoundError):
                data = candidate.read_bytes()
                if hashlib.sha256(data).hexdigest() == entry["sha256"]:
                    return data
        time.sleep(0.05)  # a writer between two steps of its commit: read again
    raise CheckpointError(f"{path} is not the {real.name} that {real.parent / MANIFEST} records; "
                          f"the directory was changed by hand: restore {real.name}, or delete "
                          f"{MANIFEST} to accept the files as they are")


def is_run_file(path):
    """True when ``path`` (symlinks resolved) is one of a run directory's own files."""
    real = Path(path).resolve()
    return real.name in RUN_FILES and any((real.parent / n).exists() for n in MARKERS)


def file_sha256(path):
    """Hex SHA-256 of the file at ``path``, or None when there is none."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def append_lines(path, records):
    """Append ``records`` as JSON lines, durably (fsync); returns how many."""
    if records:
        with open(path, "a") as fh:
            fh.write("".join(json.dumps(r) + "\n" for r in records))
            fh.flush()
            os.fsync(fh.fileno())
    return len(records)


def cut_lines(path, n):
    """Cut the file at ``path`` after its ``n``-th line (uncommitted lines and a torn last line)."""
    data = Path(path).read_bytes() if Path(path).exists() else b""
    end = 0
    for _ in range(n):
        end = data.find(b"\n", end) + 1
        if end == 0:
            raise CheckpointError(f"{path} has fewer lines than the {n} that {MANIFEST} records; "
                                  f"it was changed by hand: restore it, or delete {MANIFEST}")
    if len(data) > end:
        os.truncate(path, end)


