"""Training checkpoints: plain dicts, readable with ``torch.load(weights_only=True)``.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so the
safe unpickler loads it:

    {"format": 1, "task": str, "config": dict, "vocab": list|dict, "model": state_dict,
     "optimizer": state_dict, "epoch": int, "metrics": dict, "history": list}

``config`` is ``dataclasses.asdict`` of the task's frozen config; the task module
rebuilds its model from it, never from loose keyword arguments. ``trained_on`` (device,
precision, number of processes) says where it was trained. Tensors are stored on the CPU
whatever device trained them, so that export, resume and ``torch.load`` work without a GPU.

In a run directory (``rundir``) only the process that holds it writes checkpoints, each write
a commit of the run, and readers get the bytes that the run's manifest names. Elsewhere a
checkpoint is written atomically (temp file, fsync, rename).

A checkpoint is checked when it is read, before any model is built from it (export, resume,
diagnose): its ``config`` must be a valid config of its task, the parameters that config asks
for (counted from it, ``config_shapes``) at most ``MAX_PARAMS`` and equal to the elements of
the tensors stored in ``model`` (and in the running ``average``), tensor by tensor, so that an
altered config never allocates a model its weights do not fill.
"""

import hashlib
import io
import math
from pathlib import Path
from typing import NamedTuple

from rnnedge.runtime.atomic import write_atomic
from rnnedge.runtime.errors import CheckpointError, InputError, first_line

from . import rundir
from .config import CharLMConfig, SentimentConfig, SeriesConfig

FORMAT = 1
REQUIRED = ("format", "task", "config", "vocab", "model", "epoch", "metrics")
MAX_PARAMS = 2_000_000_000  # 8 GB of float32; rnnedge's models are far smaller
ALTERED = "the config or the weights were altered after rnnedge wrote it"
GATES = {"lstm": 4, "gru": 3, "rnn": 1}  # torch stacks them in weight_ih, weight_hh, biases
# task: (its config, the field of the recurrent input's width, the linear head's outputs). Each
# model is an embedding (when its config has a vocab_size), torch's RNN/GRU/LSTM, one Linear.
MODELS = {"charlm": (CharLMConfig, "embed_dim", "vocab_size"),
          "sentiment": (SentimentConfig, "embed_dim", 1),
          "series": (SeriesConfig, "channels", "num_classes")}


class Layout(NamedTuple):
    """The sizes that fix every tensor of a model (``layout``)."""

    embedding: tuple  # (vocab_size, embed_dim), or () without one
    width: int  # the input of the first recurrent layer
    hidden: int
    rows: int  # gates x hidden: the rows of weight_ih, weight_hh and the biases
    dirs: int  # 2 when bidirectional
    layers: int
    out: int  # the linear head's outputs


def to_bytes(payload):
    """The bytes of a checkpoint file holding ``payload``."""
    import torch

    buffer = io.BytesIO()
    torch.save(on_cpu({"format": FORMAT, **payload}), buffer)
    return buffer.getvalue()


def on_cpu(value):
    """``value`` with every tensor in it (in dicts, lists, tuples) copied to the CPU."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: on_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(on_cpu(v) for v in value)
    return value


def save(path, payload):
    """Write ``payload`` to ``path``; in a run directory this process holds, as one commit."""
    path = Path(path)
    run = rundir.held(path.parent, required=False)
    if run is not None and path.name in rundir.CHECKPOINTS:
        run.commit({path.name: (to_bytes(payload), payload["epoch"])})
    elif rundir.is_run_file(path):
        raise InputError(f"{path} belongs to the training run in {path.parent}, which only the "
                         f"process training it writes; save the checkpoint elsewhere")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, to_bytes(payload))
    return path


def save_epoch(out, payload, is_best, best=None):
    """Commit an epoch to the run held in ``out``: last.pt, best.pt when ``is_best``, and the
    epoch's record (its metrics) in the log; all of it survives a kill, or none. ``best``: what
    best.pt holds when it is not last.pt's payload (averaged weights, ``averaging.py``).

    A diverged epoch (a loss or a weight not finite) is an ``InputError``; nothing is saved.
    """
    metrics = payload["metrics"]
    bad = [k for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)]
    bad += nonfinite(payload["model"])
    if bad:
        lr = payload.get("train_config", {}).get("lr")
        raise InputError(f"training diverged in epoch {payload['epoch']}: {', '.join(bad[:4])} "
                         f"{'is' if len(bad) == 1 else 'are'} not finite; nothing was saved for "
                         f"this epoch; train with a lower --lr (this run: {lr})")
    data, epoch = to_bytes(payload), payload["epoch"]
    best_data = data if best is None else to_bytes(best)
    files = {"last.pt": (data, epoch), **({"best.pt": (best_data, epoch)} if is_best else {})}
    rundir.held(out).commit(files, log=[payload["metrics"]])


def nonfinite(state_dict):
    """Names of the floating-point tensors of ``state_dict`` that hold a NaN or an infinity."""
    import torch

    return [name for name, t in state_dict.items()
            if t.is_floating_point() and not bool(torch.isfinite(t).all())]


def load(path, task=None):
    """Load a checkpoint safely; check that it is one of ours (and of ``task``)."""
    return _read(path, task)[0]


def read(path, task=None):
    """(checkpoint, hex SHA-256 of its bytes): of a run's best.pt or last.pt, the committed one."""
    ckpt, data = _read(path, task)
    return ckpt, hashlib.sha256(data).hexdigest()


def _read(path, task):
    import pickle
    import zipfile

    import torch

    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a directory, not a file; give its best.pt "
                              f"or last.pt")
    try:
        data = rundir.committed_bytes(path)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    if not data:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes); give a file written by "
                              f"rnnedge train")
    try:
        ckpt = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError) as exc:
        hint = "; it is an ONNX file, not a checkpoint" if path.suffix == ".onnx" else ""
        raise CheckpointError(f"{path} is not a readable torch checkpoint ({first_line(exc)})"
                              f"{hint}") from exc
    missing = [k for k in REQUIRED if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise CheckpointError(f"{path} is not an rnnedge checkpoint (missing {', '.join(missing)})")
    if task is not None and ckpt["task"] != task:
        raise CheckpointError(f"{path} is a {ckpt['task']!r} checkpoint, expected {task!r}")
    if ckpt["task"] in MODELS:
        check_tensors(path, ckpt)
    return ckpt, data


def rng_state():
    """torch's random states for a checkpoint: the CPU generator's, and each CUDA device's
    when CUDA has been used (dropout on a GPU draws from those), else None."""
    import torch

    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    return {"torch_rng": torch.get_rng_state(), "cuda_rng": cuda}


def restore(ckpt, model, opt):
    """Continue from ``ckpt``: the weights, the optimizer's moments and torch's RNG states,
    CPU and CUDA (so dropout goes on as if never stopped; on as many devices as both runs
    have); returns the run's history so far, a new list."""
    import torch

    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    torch.set_rng_state(ckpt["torch_rng"])
    cuda = ckpt.get("cuda_rng")  # None: saved without CUDA, or by an older rnnedge
    if cuda is not None and torch.cuda.is_available():
        for device, state in enumerate(cuda[:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(state, device)
    return list(ckpt.get("history", []))


def record_test(out, task, log, score, sample=None):
    """Score ``out/best.pt`` on the test split once, after training; write the result into its
    metrics (one commit) and the log. ``score(best) -> (accuracy, loss)``. ``sample``
    ({"test_n", "test_of", "test_seed", "unit"}) when the time budget left room for a sample
    of the split only: the record and the line say so."""
    best = load(out / "best.pt", task)
    acc, loss = score(best)
    result = {"test_acc": acc, "test_loss": loss}
    scope = ""
    if sample:
        result.update({k: sample[k] for k in ("test_n", "test_of", "test_seed")})
        scope = (f" on {sample['test_n']:,} of {sample['test_of']:,} {sample['unit']} (a "
                 f"class-balanced sample, seed {sample['test_seed']}: the time budget left "
                 f"no room for all)")
    best["metrics"] = {**best["metrics"], **result}
    save(out / "best.pt", best)
    log.write({"event": "test", "epoch": best["epoch"], **result},
              f"test (best.pt, epoch {best['epoch']}): accuracy {acc:.4f}, loss {loss:.4f}{scope}")
    return result


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
    """Commit the resumed run's best.pt (else ``resumed``) as best.pt of the run held in ``out``
    if it has none, so that best.pt stays the best epoch of the whole run, not of its
    continuation."""
    run = rundir.held(out)
    if run.entry("best.pt") is None:
        best = Path(resumed).parent / "best.pt"
        ckpt, data = _read(best if best.is_file() else resumed, None)
        run.commit({"best.pt": (data, ckpt["epoch"])})


def check_tensors(path, ckpt):
    """The tensors of ``ckpt`` are those its config asks for, before a model is built from it:
    a ``CheckpointError`` names the two parameter counts, or the first tensor that differs."""
    sizes = layout(path, ckpt)
    count, tensors = size_of(sizes)
    stored = [("model", ckpt["model"])]
    average = ckpt.get("average")
    if isinstance(average, dict) and average.get("mean"):  # a resumed run goes on averaging it
        stored.append(("average", average["mean"]))
    for what, state in stored:
        if not isinstance(state, dict) or not all(map(_is_tensor, state.values())):
            raise CheckpointError(f"{path}: its {what} is not a dict of tensors; it is damaged or "
                                  f"not written by rnnedge")
        held = sum(t.numel() for t in state.values())
        limit = f" (more than the limit of {MAX_PARAMS:,})" if count > MAX_PARAMS else ""
        counts = (f"its config asks for {count:,} parameters in {tensors:,} tensors{limit}, its "
                  f"{what} holds {held:,} in {len(state):,}")
        if count > MAX_PARAMS or tensors != len(state):
            raise CheckpointError(f"{path}: {counts}; {ALTERED}")
        for name, want in shapes_of(sizes).items():  # as many as the file holds
            got = state.get(name)
            if got is None or tuple(got.shape) != want or not got.is_floating_point():
                found = ("missing" if got is None else f"of shape {tuple(got.shape)}"
                         if tuple(got.shape) != want else f"{got.dtype}, not floating point")
                raise CheckpointError(f"{path}: tensor {name} of its {what} is {found}, the "
                                      f"config asks for floats of shape {want} ({counts}); "
                                      f"{ALTERED}")


def _is_tensor(value):
    import torch

    return isinstance(value, torch.Tensor)


def layout(path, ckpt):
    """The ``Layout`` of the model that ``ckpt``'s config builds; a ``CheckpointError`` when
    the config is not a valid one of its task."""
    cls, width, out = MODELS[ckpt["task"]]
    try:
        c = cls(**ckpt["config"]) if isinstance(ckpt["config"], dict) else None
        sizes = {n: getattr(c, n) for n in ("hidden_size", "num_layers", width, out,
                                            "vocab_size", "embed_dim")
                 if isinstance(n, str) and hasattr(c, n)}
        if c is None or not all(type(v) is int and v >= 1 for v in sizes.values()):
            raise TypeError(f"sizes must be integers >= 1: {sizes}")
    except (TypeError, InputError) as exc:
        raise CheckpointError(f"{path}: its config is not a valid {ckpt['task']} config "
                              f"({first_line(exc)}); it is damaged or not written by rnnedge "
                              f"train") from None
    dirs = 2 if getattr(c, "bidirectional", False) else 1
    embedding = (c.vocab_size, c.embed_dim) if hasattr(c, "vocab_size") else ()
    return Layout(embedding, sizes[width], c.hidden_size, GATES[c.cell] * c.hidden_size, dirs,
                  c.num_layers, sizes[out] if isinstance(out, str) else out)


def size_of(m):
    """(parameters, tensors) of the model of ``Layout`` ``m``: ``shapes_of`` summed in closed
    form, since ``num_layers`` may be absurd."""
    def layer(width):  # weight_ih (rows, width), weight_hh (rows, hidden), two biases (rows,)
        return m.dirs * m.rows * (width + m.hidden + 2)

    embedding = m.embedding[0] * m.embedding[1] if m.embedding else 0
    count = (embedding + layer(m.width) + (m.layers - 1) * layer(m.hidden * m.dirs)
             + m.out * (m.hidden * m.dirs + 1))
    return count, bool(m.embedding) + 4 * m.dirs * m.layers + 2


def shapes_of(m):
    """{state-dict name: shape} of the model of ``Layout`` ``m``, in torch's names."""
    shapes = {"embedding.weight": m.embedding} if m.embedding else {}
    for k in range(m.layers):
        for suffix in ("", "_reverse")[:m.dirs]:
            shapes.update({f"rnn.weight_ih_l{k}{suffix}": (m.rows, m.width if k == 0
                                                           else m.hidden * m.dirs),
                           f"rnn.weight_hh_l{k}{suffix}": (m.rows, m.hidden),
                           f"rnn.bias_ih_l{k}{suffix}": (m.rows,),
                           f"rnn.bias_hh_l{k}{suffix}": (m.rows,)})
    return {**shapes, "fc.weight": (m.out, m.hidden * m.dirs), "fc.bias": (m.out,)}
