"""Where data sets live, and fetching a missing one from its original source.

The data directory is a setting: an explicit argument (``--data-dir``), else the
environment variable ``RNNEDGE_DATA``, else ``~/.cache/rnnedge/data``. A missing
file is downloaded with a progress bar to a temporary name and renamed only when
complete, so an interrupted download never leaves a half file behind. Torch-free.
"""

import os
import urllib.error
import urllib.request
from pathlib import Path

from rnnedge.runtime.atomic import writing
from rnnedge.runtime.errors import DataError, OutputError
from rnnedge.runtime.quiet import quiet

ENV_VAR = "RNNEDGE_DATA"


def data_dir(explicit=None):
    """The data directory: ``explicit``, else ``$RNNEDGE_DATA``, else the user cache."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    return Path.home() / ".cache" / "rnnedge" / "data"


def _read(resp, failed, size=1 << 16):
    try:
        return resp.read(size)
    except (OSError, TimeoutError) as exc:  # a connection reset or timed out mid-way
        raise failed(exc) from exc


def fetch(url, dest, timeout=30.0):
    """Download ``url`` to ``dest`` atomically with a progress bar; return ``dest``."""
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create data directory {dest.parent}: {exc}; "
                        f"set --data-dir or {ENV_VAR} to a writable folder") from exc
    failed = lambda exc: DataError(  # noqa: E731
        f"{dest.name} is not in {dest.parent} and downloading it from {url} failed ({exc}); "
        f"put the file there or point --data-dir / {ENV_VAR} at a folder that has it")
    try:
        resp = urllib.request.urlopen(url, timeout=timeout)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:  # no network, no such file
        raise failed(exc) from exc
    try:  # the network's errors are DataErrors before the writer sees them: not "cannot write"
        with resp, writing(dest) as tmp, open(tmp, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            columns = (*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn())
            with Progress(*columns, transient=True, disable=quiet()) as bar:
                task = bar.add_task(f"downloading {dest.name}", total=total)
                while chunk := _read(resp, failed):
                    out.write(chunk)
                    bar.advance(task, len(chunk))
    except OutputError as exc:  # the disk: full, read-only
        raise failed(exc) from exc
    return dest
