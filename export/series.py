"""A series checkpoint -> one ONNX file through ``export_model`` (parity gate, golden bundle).

The normalisation is in the graph: ``Normalised`` (``train/series_model.py``) subtracts the
stored per-channel mean and divides by the stored std before the recurrent net, so the
file takes raw frames (batch, time, channels) float32 with ``lengths`` (batch,) int64 and
returns ``logits`` and ``probs`` (batch, classes). The constants are also in the
``rnnedge.user`` metadata, for reading, not for applying a second time; the file is of kind
``series``, its config and class names in the schema's ``rnnedge.config`` and ``rnnedge.vocab``. After the gate, the file is
checked once more on the runtime for what the gate does not look at: each case alone
against the same case in a padded, mixed-length batch.

A forward model is exported as ``Streaming`` (``train/series_model.py``): its recurrent
states (``h``, ``c`` for an LSTM; (layers, batch, hidden)) and, for the mean and max heads,
its running pooled statistics (``pooled`` (batch, hidden), ``seen`` (batch, 1)) are extra
inputs and outputs paired in ``rnnedge.states``, so ``stream()`` carries them; zero states
give the whole-sequence answer. A bidirectional model keeps the graph without states.
"""

from pathlib import Path

import numpy as np

from rnnedge.runtime.errors import ParityError
from rnnedge.runtime.tolerances import FP32, Diff, compare

from .user_model import export_model

INPUTS, OUTPUTS = ["frames", "lengths"], ["logits", "probs"]
AXES = {"frames": {0: "batch", 1: "time"}, "lengths": {0: "batch"},
        "logits": {0: "batch"}, "probs": {0: "batch"}}


def series_metadata(ckpt):
    """What ``rnnedge.user`` holds for a series classifier: the normalisation in its graph."""
    return {"norm": ckpt["norm"], "normalisation": "in the graph: (frames - mean) / std"}


def series_schema(ckpt, sha=None):
    """The schema's fields of a series file (``export/metadata.py``)."""
    from .metadata import provenance

    return {"kind": "series", "config": ckpt["config"], "vocab": list(ckpt["vocab"]),
            "metrics": ckpt.get("metrics", {}), "provenance": provenance(ckpt, sha)}


def example_inputs(ckpt, seed=0):
    """Raw-looking frames (2, 10, C) around the stored mean and true lengths (2,), then the
    states of a forward model: small random h (and c), a running pool over 3 frames."""
    import torch

    rng = np.random.default_rng(seed)
    mean, std = np.float32(ckpt["norm"]["mean"]), np.float32(ckpt["norm"]["std"])
    x = mean + std * rng.standard_normal((2, 10, len(mean))).astype(np.float32)
    frames = [torch.from_numpy(x.astype(np.float32)), torch.tensor([10, 6], dtype=torch.int64)]
    config = ckpt["config"]
    if config["bidirectional"]:
        return frames
    from rnnedge.train.series_model import state_names

    L, H = config["num_layers"], config["hidden_size"]
    shapes = {"h": (L, 2, H), "c": (L, 2, H), "pooled": (2, H), "seen": (2, 1)}
    states = {n: 0.5 * rng.standard_normal(shapes[n]) for n in state_names(config)}
    if "seen" in states:
        states["seen"] = np.full((2, 1), 3.0)  # a pool carried over 3 frames
    return frames + [torch.from_numpy(s.astype(np.float32)) for s in states.values()]


def io_names(config):
    """(input names, output names, dynamic axes, state pairs or None) of a series export."""
    if config["bidirectional"]:
        return INPUTS, OUTPUTS, AXES, None
    from rnnedge.train.series_model import state_names

    states, axes = state_names(config), dict(AXES)
    for name, out in states.items():  # h, c (layers, batch, hidden); pooled, seen (batch, .)
        axes[name] = axes[out] = {0: "batch"} if name in ("pooled", "seen") else {1: "batch"}
    return INPUTS + list(states), OUTPUTS + list(states.values()), axes, states


def export_series(ckpt, out, sha=None, tol=FP32):
    """Export a loaded series checkpoint to ``out``; return (path, diffs)."""
    from rnnedge.train.series_model import Streaming, build_normalised

    module = build_normalised(ckpt)
    inputs, outputs, axes, states = io_names(ckpt["config"])
    module = module if states is None else Streaming(module).eval()
    padding = []

    def check(path):  # on the written file, before it is published at ``out``
        padding.extend(padding_invariance(path, ckpt, tol))
        failed = [d for d in padding if not d.ok]
        if failed:
            raise ParityError("the export answers differently alone and in a padded batch: "
                              + "; ".join(map(str, failed)) + "; nothing was written")

    report = export_model(module, example_inputs(ckpt), out, input_names=inputs,
                          output_names=outputs, dynamic_axes=axes, states=states,
                          lengths="lengths", metadata=series_metadata(ckpt), tol=tol,
                          kind=series_schema(ckpt, sha), check=check)
    diffs = [Diff("gate ort vs PyTorch B={} T={}".format(*c["shapes"]["frames"][:2]), c["max_abs"],
                  c["max_rel"], (), True, tol)
             for c in report.checked]
    return Path(out), diffs + padding


def padding_invariance(path, ckpt, tol=FP32, seed=1):
    """Each of seven cases of mixed lengths alone against itself in one padded batch (ort)."""
    from rnnedge.runtime.model import load

    model = load(path, engine="ort")
    rng = np.random.default_rng(seed)
    mean, std = np.float32(ckpt["norm"]["mean"]), np.float32(ckpt["norm"]["std"])
    cases = [mean + std * rng.standard_normal((int(t), len(mean))).astype(np.float32)
             for t in rng.integers(1, 40, 7)]
    batched = model.predict(cases, batch_size=len(cases))
    alone = np.concatenate([model.predict([c]) for c in cases])
    return [compare("probs alone vs in a padded batch", alone, batched, tol)]
