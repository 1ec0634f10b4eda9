"""The one way rnnedge writes a file: whole or not at all.

``writing(path)`` yields a temporary path beside ``path``; when the block ends without an
error the file is flushed to disk, given the permissions the user's umask gives a new file
(``mkstemp`` alone would leave 0600, unreadable by a service running as another user),
renamed over ``path`` and the rename made durable. On an error, Ctrl-C or SIGTERM (which
raises within the block) the temporary file is removed; temporaries of writers that died
(SIGKILL, power loss) are removed by the next writer of the same target, recognised by the
writer's process id in their name. ``write_atomic(path, data)`` writes bytes so;
``temp_dir(path)`` is a scratch folder beside ``path`` under the same rules. An ``OSError``
(a full disk, a read-only folder) becomes ``OutputError`` naming the target. Standard
library only, so every package may use it.
"""

import contextlib
import fcntl
import glob
import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

from .errors import OutputError, write_error

_reached = {}  # fault point -> times reached (``fault``)


@contextlib.contextmanager
def writing(path, suffix=".tmp"):
    """A temporary path beside ``path``, renamed over it when the block succeeds; a second
    writer of ``path`` meanwhile is refused (``OutputError``) instead of losing one result."""
    path = Path(path)
    remove_stale_temps(path)
    try:
        with terminate_raises(), _only_writer(path):
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_prefix(path), suffix=suffix)
            os.close(fd)
            try:
                yield Path(tmp)
                with open(tmp, "rb+") as fh:
                    os.fsync(fh.fileno())
                os.chmod(tmp, 0o666 & ~_umask())
                fault(f"write:{path.name}")
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        fsync_dir(path.parent)
    except OSError as exc:  # a full disk or a read-only folder: the temp file is gone already
        raise write_error(path, exc) from exc


@contextlib.contextmanager
def _only_writer(path):
    """Hold ``.NAME.lock`` beside ``path`` (an flock, released by the kernel when the holder
    dies, however it dies); refuse when another process holds it. The file is removed after."""
    lock = path.parent / f".{path.name}.lock"
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputError(f"{path} is being written by another rnnedge process; wait for it "
                              f"to finish, or write elsewhere") from None
        try:  # the holder before us may have removed the file we locked: lock the new one
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
        os.close(fd)


def write_atomic(path, data):
    """Write ``data`` (bytes) to ``path`` completely or not at all."""
    with writing(path) as tmp:
        tmp.write_bytes(data)


@contextlib.contextmanager
def temp_dir(path):
    """A scratch folder beside ``path`` (same disk, so a rename out of it is atomic), removed
    after the block, on SIGTERM too; the next writer of ``path`` removes a dead one's."""
    path = Path(path)
    remove_stale_temps(path)
    try:
        tmp = tempfile.mkdtemp(dir=path.parent, prefix=_prefix(path), suffix=".tmp")
    except OSError as exc:
        raise write_error(path, exc) from exc
    try:
        with terminate_raises():
            yield Path(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _prefix(path):
    return f".{path.name}.{os.getpid()}."


def _umask():
    mask = os.umask(0)  # read it: the only portable way, restored at once
    os.umask(mask)
    return mask


def remove_stale_temps(path):
    """Remove ``.NAME.PID.*.tmp`` files and folders beside ``path`` whose writer is dead."""
    prefix = f".{Path(path).name}."
    for tmp in glob.glob(str(Path(path).parent / f"{glob.escape(prefix)}*.tmp")):
        pid = Path(tmp).name[len(prefix):].split(".")[0]
        if pid.isdigit() and not alive(int(pid)):
            if os.path.isdir(tmp):
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                Path(tmp).unlink(missing_ok=True)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def fsync_dir(directory):
    """Make the renames in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def terminate_raises():
    """SIGTERM raises SystemExit(143) within the block, as Ctrl-C raises KeyboardInterrupt, so
    that finally clauses run; the old handler is restored after. Main thread only (Python
    delivers signals there); elsewhere the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise SystemExit(128 + signum)

    old = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if old is None else old)


def fault(point):
    """Test hook: ``RNNEDGE_FAULT=kill:POINT@N`` SIGKILLs this process the N-th time (default
    1st) it reaches ``point``; ``stop:POINT@N`` SIGSTOPs it there (a test then signals it)."""
    spec = os.environ.get("RNNEDGE_FAULT")
    if not spec:
        return
    action, _, where = spec.partition(":")
    name, _, nth = where.rpartition("@") if "@" in where else (where, "", "1")
    if name != point:
        return
    _reached[point] = _reached.get(point, 0) + 1
    if _reached[point] == int(nth):
        print(f"rnnedge: fault {action} at {point}@{nth}", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL if action == "kill" else signal.SIGSTOP)
