"""The runtime as a service user runs it: a read-only install, no home folder.

numba refuses to define a cached kernel when it can write neither beside the source nor in
the user's cache (``runtime/cache.py`` then picks a temporary folder of that user's)."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parent / "golden"
NOBODY = 65534


def test_numba_caches_in_a_temporary_folder_when_neither_of_its_own_can_be_written(tmp_path):
    from rnnedge.runtime.cache import ENV, fallback_dir, writable

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    unwritable = blocker / "ops" / "__pycache__"  # under a file: can never be created
    assert writable(tmp_path / "new" / "deeper") and not writable(unwritable)
    assert fallback_dir(tmp_path / "ops", unwritable, {}) is None  # numba's own choice works
    assert fallback_dir(unwritable, tmp_path, {}) is None
    folder = fallback_dir(unwritable, blocker / "home" / ".cache", {})
    assert folder is not None and writable(folder) and "rnnedge-numba-" in folder
    assert fallback_dir(unwritable, unwritable, {ENV: "/where/the/user/said"}) is None



def test_a_user_who_can_write_nothing_of_the_install_verifies_a_model():
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run a command as another user")
    as_nobody = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    env = {"PATH": "/usr/bin:/bin"}  # no HOME: numba's user-wide cache has no place either
    probe = subprocess.run([*as_nobody, sys.executable, "-c", "import numpy, onnx"], env=env,
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"this checkout or its Python is not readable by another user: "
                    f"{probe.stderr.strip().splitlines()[-1:]}")
    folder = Path(tempfile.mkdtemp())  # pytest's own folders are the owner's alone
    try:
        os.chmod(folder, 0o755)
        model = folder / "kws.onnx"
        shutil.copy(GOLDEN / "tiny_kws.onnx", model)
        os.chmod(model, 0o644)
        done = subprocess.run([*as_nobody, sys.executable, "-m", "rnnedge.cli", "verify",
                               str(model)], env=env, capture_output=True, text=True, timeout=600)
    finally:
        shutil.rmtree(folder)
    assert done.returncode == 0, done.stderr[-2000:]
    assert " 0 failed" in done.stdout + done.stderr
