"""The metadata that makes an rnnedge ONNX file self-describing: one schema for every kind.

``props`` writes the keys ``rnnedge.runtime.metadata`` documents and parses: the kind, the
model's config and vocabulary, the io signature, the state pairs, the golden bundle, the
versions and how the file was exported. Every exporter (``exporter.py`` for rnnedge's own
checkpoints, ``user_model.py`` for any module) calls it; values are strings, JSON where
structured.
"""

import json

from rnnedge.runtime.metadata import FORMAT, KINDS


def props(kind, *, signature, states, golden, export, config=None, vocab=None, metrics=None,
          lengths=None, user=None, provenance=None):
    """The ``rnnedge.*`` props of one file; ``provenance``: its checkpoint's training record."""
    import onnx
    import onnxruntime
    import torch

    from rnnedge.runtime import __version__
    from rnnedge.runtime.golden import encode

    assert kind in KINDS, kind
    dumps = lambda value: json.dumps(value, sort_keys=True, allow_nan=False)
    out = {
        "rnnedge.format": FORMAT,
        "rnnedge.kind": kind,
        "rnnedge.config": dumps(config or {}),
        "rnnedge.vocab": json.dumps(vocab if vocab is not None else []),
        "rnnedge.metrics": dumps(metrics or {}),
        "rnnedge.signature": json.dumps(signature),
        "rnnedge.states": json.dumps(dict(states or {})),
        "rnnedge.lengths": json.dumps(lengths),
        "rnnedge.user": user if isinstance(user, str) else dumps(user or {}),
        "rnnedge.export": json.dumps(export),
        "rnnedge.versions": json.dumps({"torch": torch.__version__, "onnx": onnx.__version__,
                                        "onnxruntime": onnxruntime.__version__,
                                        "exporter": f"rnnedge {__version__}"}),
        "rnnedge.golden": encode(golden),
    }
    out.update(provenance or {})
    return out


def provenance(ckpt, checkpoint_sha256):
    """The training record of a checkpoint, kept beside the schema's keys."""
    return {
        "rnnedge.train_config": json.dumps(ckpt.get("train_config", {}), sort_keys=True),
        "rnnedge.epoch": str(ckpt.get("epoch", "")),
        # device, precision, world_size of the training run; {} for checkpoints older than it
        "rnnedge.trained_on": json.dumps(ckpt.get("trained_on", {}), sort_keys=True),
        "rnnedge.checkpoint_sha256": checkpoint_sha256 or "",
    }
