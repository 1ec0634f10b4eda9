"""Training checkpoints: written atomically, readable with ``torch.load(weights_only=True)``.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so the
safe unpickler loads it:

    {"format": 1, "task": str, "config": dict, "vocab": list|dict, "model": state_dict,
     "optimizer": state_dict, "epoch": int, "metrics": dict, "history": list}

``config`` is ``dataclasses.asdict`` of the task's frozen config; the task module
rebuilds its model from it, never from loose keyword arguments.
"""

import hashlib
import os
import tempfile
from pathlib import Path

from rnnedge.runtime.errors import CheckpointError

FORMAT = 1
REQUIRED = ("format", "task", "config", "vocab", "model", "epoch", "metrics")


def save(path, payload):
    """Write ``payload`` to ``path`` through a temporary file and an atomic rename."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save({"format": FORMAT, **payload}, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load(path, task=None):
    """Load a checkpoint safely; check that it is one of ours (and of ``task``)."""
    import pickle
    import zipfile

    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError) as exc:
        raise CheckpointError(f"{path} is not a readable torch checkpoint ({exc})") from exc
    missing = [k for k in REQUIRED if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise CheckpointError(f"{path} is not an rnnedge checkpoint (missing {', '.join(missing)})")
    if task is not None and ckpt["task"] != task:
        raise CheckpointError(f"{path} is a {ckpt['task']!r} checkpoint, expected {task!r}")
    return ckpt


def sha256(path):
    """Hex SHA-256 of a file, recorded in exported models to tie them to their source."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
