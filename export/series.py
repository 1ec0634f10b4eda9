"""A series checkpoint -> one ONNX file through ``export_model`` (parity gate, golden bundle).

The normalisation is in the graph: ``Normalised`` (``train/series_model.py``) subtracts the
stored per-channel mean and divides by the stored std before the recurrent net, so the
file takes raw frames (batch, time, channels) float32 with ``lengths`` (batch,) int64 and
returns ``logits`` and ``probs`` (batch, classes). The constants are also in the
``rnnedge.user`` metadata (with ``"task": "series"``, the class names, the channel count
and the configs), for reading, not for applying a second time. After the gate, the file is
checked once more on the runtime for what the gate does not look at: each case alone
against the same case in a padded, mixed-length batch.
"""

from pathlib import Path

import numpy as np

from rnnedge.runtime.tolerances import FP32, Diff, compare

from .user_model import export_model

INPUTS, OUTPUTS = ["frames", "lengths"], ["logits", "probs"]
AXES = {"frames": {0: "batch", 1: "time"}, "lengths": {0: "batch"},
        "logits": {0: "batch"}, "probs": {0: "batch"}}


def series_metadata(ckpt, sha=None):
    """What ``rnnedge.user`` holds for a series classifier (JSON-serialisable)."""
    return {"task": "series", "classes": list(ckpt["vocab"]), "channels": ckpt["config"]["channels"],
            "norm": ckpt["norm"], "normalisation": "in the graph: (frames - mean) / std",
            "config": ckpt["config"], "train_config": ckpt.get("train_config", {}),
            "metrics": ckpt.get("metrics", {}), "checkpoint_sha256": sha}


def example_inputs(ckpt, seed=0):
    """Raw-looking frames (2, 10, C) around the stored mean and true lengths (2,)."""
    import torch

    rng = np.random.default_rng(seed)
    mean, std = np.float32(ckpt["norm"]["mean"]), np.float32(ckpt["norm"]["std"])
    x = mean + std * rng.standard_normal((2, 10, len(mean))).astype(np.float32)
    return torch.from_numpy(x.astype(np.float32)), torch.tensor([10, 6], dtype=torch.int64)


def export_series(ckpt, out, sha=None, tol=FP32):
    """Export a loaded series checkpoint to ``out``; return (path, diffs)."""
    from rnnedge.train.series_model import build_normalised

    module = build_normalised(ckpt)
    report = export_model(module, example_inputs(ckpt), out, input_names=INPUTS,
                          output_names=OUTPUTS, dynamic_axes=AXES, lengths="lengths",
                          metadata=series_metadata(ckpt, sha), tol=tol)
    diffs = [Diff("gate ort vs PyTorch B={} T={}".format(*c["shapes"]["frames"][:2]), c["max_abs"],
                  c["max_rel"], (), True, tol)
             for c in report.checked]
    return Path(out), diffs + padding_invariance(out, ckpt, tol)


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
