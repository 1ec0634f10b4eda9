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
import shutil
import tempfile
from pathlib import Path

from rnnedge.runtime.errors import CheckpointError, InputError

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


def resume_path(out, resume):
    """The checkpoint file a run into ``out`` continues from; None for a fresh run.

    ``resume`` is a checkpoint file or a run directory (its last.pt). A fresh run refuses an
    ``out`` that already holds a run (a last.pt): it would overwrite its checkpoints.
    """
    if resume is None:
        if (Path(out) / "last.pt").exists():
            raise InputError(f"{out} already holds a training run; pass --resume {out} to "
                             f"continue it, or choose another --out")
        return None
    return Path(resume) / "last.pt" if Path(resume).is_dir() else Path(resume)


def seed_best(out, resumed):
    """Copy the resumed run's best.pt (else ``resumed``) to ``out/best.pt`` if ``out`` has none,
    so that best.pt stays the best epoch of the whole run, not of its continuation."""
    out, resumed = Path(out), Path(resumed)
    if not (out / "best.pt").exists():
        out.mkdir(parents=True, exist_ok=True)
        best = resumed.parent / "best.pt"
        shutil.copyfile(best if best.exists() else resumed, out / "best.pt")


def sha256(path):
    """Hex SHA-256 of a file, recorded in exported models to tie them to their source."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
