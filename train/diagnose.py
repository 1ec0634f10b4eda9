"""Gradient-flow diagnostic: how fast dL/dh(k) vanishes or explodes with the distance t - k.

The chapter explains vanishing and exploding gradients with the factor W^(t-k) in
dh(t)/dh(k). This measures it: the recurrence is run one step at a time so every
state h(k) is a node of the graph, the loss is taken at the last step t only, and
the norm of dL/dh(k) is recorded for every k. ``gradient_norms`` works for any
recurrence; ``charlm_curves`` applies it to the character model's cells on real
Hamlet windows, at initialization and for trained checkpoints (read and checked before any
curve is computed). ``report`` writes gradients.json and gradients.png, both or neither.
"""

import contextlib
import copy
import io
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rnnedge.data.hamlet import CharCorpus, load_text

from rnnedge.runtime.atomic import writing
from rnnedge.runtime.errors import CheckpointError, InputError, OutputError, write_error

from . import checkpoint
from .charlm import CELLS, CharLM, CharLMConfig, build_model


def gradient_norms(step, state, xs, loss_at_last):
    """||dL/dh(k)|| for k = 0..t-1, returned by distance d = t-1-k (d = 0 first).

    step(x_k, state) -> (out_k, state); state is a tensor h or a tuple whose first
    element is h. loss_at_last(h_{t-1}) -> scalar: the loss reads the last state only.
    """
    # the initial state requires grad so that every h(k) is a node of the graph
    state = (tuple(s.detach().requires_grad_() for s in state) if isinstance(state, tuple)
             else state.detach().requires_grad_())
    hs = []
    for x in xs:
        _, state = step(x, state)
        h = state[0] if isinstance(state, tuple) else state
        h.retain_grad()
        hs.append(h)
    loss_at_last(hs[-1]).backward()
    norms = [h.grad.norm().item() if h.grad is not None else 0.0 for h in hs]
    return np.array(norms[::-1])


def _charlm_norms(model, ids):
    """Norms over one window ``ids`` (T+1,) of the character model's recurrent state."""
    model = copy.deepcopy(model).double().eval()  # float64: curves reach 1e-30 without underflow
    x = torch.from_numpy(ids[:-1]).view(1, -1)  # (1, T)
    emb = model.embedding(x)  # (1, T, E)
    xs = [emb[:, k:k + 1] for k in range(emb.shape[1])]
    target = torch.from_numpy(ids[-1:])

    def loss(h):  # h (L, 1, H): the last layer's state is the output at step t
        return nn.functional.cross_entropy(model.fc(h[-1]), target)

    return gradient_norms(lambda xk, s: model.rnn(xk, s), model.init_state(1), xs, loss)


def mean_curve(model, windows):
    """Geometric mean over windows of the norm curve, normalised to 1 at distance 0."""
    curves = [_charlm_norms(model, w) for w in windows]
    logs = np.log(np.maximum(np.stack(curves), 1e-300))
    curve = np.exp(logs.mean(axis=0))
    return curve / curve[0]


def vanishing_distance(curve, threshold=1e-3):
    """First distance at which the curve falls below ``threshold`` of its value at d = 0."""
    below = np.nonzero(curve < threshold * curve[0])[0]
    return int(below[0]) if below.size else None


def charlm_curves(checkpoints=(), cells=tuple(CELLS), steps=200, windows=8, data_dir=None,
                  hidden_size=256, num_layers=2, seed=0):
    """Curves for fresh models of each cell and for each trained checkpoint; the checkpoints
    are read and checked first, before minutes of work."""
    if steps < 1 or windows < 1:
        raise InputError(f"--steps and --windows must be >= 1, not {steps} and {windows}")
    trained = {}
    for path in checkpoints:
        ckpt = checkpoint.load(path, "charlm")
        clip = ckpt.get("train_config", {}).get("clip")
        label = f"{ckpt['config']['cell']} trained ({Path(path).parent.name}, clip {clip})"
        trained[label] = (path, ckpt)
    corpus = CharCorpus.from_text(load_text(None, data_dir))
    for path, ckpt in trained.values():
        if tuple(ckpt["vocab"]) != corpus.vocab:
            raise CheckpointError(f"{path} was trained on another text (its characters are not "
                                  f"Hamlet's); the diagnostic runs on Hamlet windows")
    if steps > len(corpus.val) - 2:
        raise InputError(f"--steps {steps} is longer than the validation text "
                         f"({len(corpus.val)} characters); use at most {len(corpus.val) - 2}")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(corpus.val) - steps - 1, windows)
    wins = [corpus.val[s:s + steps + 1] for s in starts]
    curves = {}
    for cell in cells:
        config = CharLMConfig(len(corpus.vocab), hidden_size=hidden_size, num_layers=num_layers,
                              cell=cell, dropout=0.0)
        curves[f"{cell} init"] = mean_curve(CharLM(config), wins)
    for label, (_, ckpt) in trained.items():
        curves[label] = mean_curve(build_model(ckpt), wins)
    return curves


def report(curves, out_dir):
    """Write gradients.json and gradients.png to ``out_dir``, both or neither (an
    ``OutputError`` naming the one that could not be written); return the summary rows."""
    out_dir = check_out_dir(out_dir)
    rows = [{"curve": name, "vanishes_at": vanishing_distance(c),
             "ratio_at_50": float(c[min(50, len(c) - 1)]), "ratio_at_end": float(c[-1])}
            for name, c in curves.items()]
    table = {"summary": rows, "curves": {n: c.tolist() for n, c in curves.items()}}
    files = {out_dir / "gradients.json": json.dumps(table, indent=1).encode(),
             out_dir / "gradients.png": _plot(curves)}  # drawn before anything is written
    made = not out_dir.exists()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(out_dir, exc) from exc
    try:
        write_together(files)
    except OutputError:
        if made:  # the folder this call made, empty again: the temporaries are gone
            with contextlib.suppress(OSError):
                out_dir.rmdir()
        raise
    return rows


def write_together(files):
    """Write ``{path: bytes}``, each whole (``runtime/atomic.py``); every file is on disk before
    any is renamed into place, so a full disk leaves none of them."""
    with contextlib.ExitStack() as stack:
        temps = {path: stack.enter_context(writing(path)) for path in files}
        for path, tmp in temps.items():
            try:
                with open(tmp, "wb") as fh:
                    fh.write(files[path])
                    fh.flush()
                    os.fsync(fh.fileno())
            except OSError as exc:  # named here: the writers would all name the last one
                raise write_error(path, exc) from exc


def _plot(curves):
    """The PNG bytes of the curves' plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, c in curves.items():
        ax.semilogy(np.arange(len(c)), np.maximum(c, 1e-30), label=name)
    ax.axhline(1e-3, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("distance t - k (steps)")
    ax.set_ylabel("||dL/dh(k)|| / ||dL/dh(t)||")
    ax.set_title("Gradient flow through the recurrence (Hamlet windows)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=120)
    plt.close(fig)
    return png.getvalue()


def check_out_dir(out_dir):
    """``out_dir`` as a Path, unless it is a file (checked before the curves are computed)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} is a file; the diagnostic writes a folder "
                         f"(gradients.png, gradients.json): give a directory")
    return out_dir
