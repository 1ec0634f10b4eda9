"""Where numba caches rnnedge's compiled kernels, chosen before the first kernel is defined.

numba caches a ``cache=True`` function beside its source (``runtime/ops/__pycache__``) or in
the user's cache folder (``~/.cache/numba``); when neither can be written (a read-only
install run by a service user without a home) it refuses to define the function at all
("cannot cache function ...: no locator available") and the runtime cannot be imported.
``use_writable_cache`` then points numba at a folder of this user's under the system's
temporary directory, unless ``NUMBA_CACHE_DIR`` is set: an explicit choice is kept. Standard
library only; numba is configured through its environment variable (and its config, if it
was imported already).
"""

import os
import sys
import tempfile
from pathlib import Path

ENV = "NUMBA_CACHE_DIR"


def writable(folder):
    """Whether ``folder`` exists and takes a new file, or could be created where it is."""
    folder = Path(folder)
    while not folder.exists():
        if folder.parent == folder:
            return False
        folder = folder.parent
    if not folder.is_dir():
        return False
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError:
        return False
    return True


def fallback_dir(in_tree, user_wide, environ):
    """The folder numba should cache in, or None when its own choice works (or is set)."""
    if environ.get(ENV) or writable(in_tree) or writable(user_wide):
        return None
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return str(Path(tempfile.gettempdir()) / f"rnnedge-numba-{uid}")


def use_writable_cache():
    """Set ``NUMBA_CACHE_DIR`` to ``fallback_dir`` when numba could not cache otherwise."""
    home = os.environ.get("HOME") or os.path.expanduser("~")
    base = os.environ.get("XDG_CACHE_HOME") or (Path(home) / ".cache" if home != "~" else None)
    user_wide = Path(base) / "numba" if base else Path("/nonexistent")  # numba's AppDirs
    folder = fallback_dir(Path(__file__).resolve().parent / "ops" / "__pycache__", user_wide,
                          os.environ)
    if folder is None:
        return
    os.environ[ENV] = folder
    if "numba" in sys.modules:  # imported before rnnedge: its config read the variable already
        sys.modules["numba"].config.CACHE_DIR = folder
