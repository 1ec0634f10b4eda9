"""The metadata that makes an rnnedge ONNX file self-describing.

Every key starts with ``rnnedge.``; values are strings, JSON where structured.
The runtime reads them back with ``rnnedge.runtime.model.read_metadata``.
"""

import json

FORMAT_VERSION = "1"


def build(task, ckpt, checkpoint_sha256, extra=None):
    """Metadata props for a model exported from the loaded checkpoint ``ckpt``."""
    import onnx
    import torch

    from rnnedge.runtime import __version__

    props = {
        "rnnedge.format": FORMAT_VERSION,
        "rnnedge.task": task,
        "rnnedge.config": json.dumps(ckpt["config"], sort_keys=True),
        "rnnedge.vocab": json.dumps(ckpt["vocab"]),
        "rnnedge.metrics": json.dumps(ckpt["metrics"], sort_keys=True),
        "rnnedge.train_config": json.dumps(ckpt.get("train_config", {}), sort_keys=True),
        "rnnedge.epoch": str(ckpt["epoch"]),
        # device, precision, world_size of the training run; {} for checkpoints older than it
        "rnnedge.trained_on": json.dumps(ckpt.get("trained_on", {}), sort_keys=True),
        "rnnedge.checkpoint_sha256": checkpoint_sha256,
        "rnnedge.versions": json.dumps({"torch": torch.__version__, "onnx": onnx.__version__,
                                        "exporter": f"rnnedge {__version__}"}),
    }
    props.update(extra or {})
    return props
