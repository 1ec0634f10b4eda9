"""``rnnedge export``: checkpoint -> checked, validated, self-describing ONNX file.

The file is written to a temporary name beside the target, checked with
``onnx.checker`` (full check), validated against PyTorch, and only then renamed into
place: a failed export leaves nothing behind.
"""

import os
import tempfile
from pathlib import Path

from rnnedge.runtime.errors import ParityError
from rnnedge.runtime.tolerances import FP32

from . import metadata


def build(ckpt, sha, linear_before_reset=1):
    """The ONNX model of a loaded checkpoint."""
    task = ckpt["task"]
    props = metadata.build(task, ckpt, sha)
    if task == "charlm":
        from .models import charlm_graph

        return charlm_graph(ckpt["config"], ckpt["model"], props, linear_before_reset)
    from .models import sentiment_graph

    return sentiment_graph(ckpt["config"], ckpt["model"], props, linear_before_reset)


def validate(ckpt, onnx_model, tol=FP32):
    """Diffs of onnxruntime against PyTorch on random inputs; raises ParityError on failure."""
    from rnnedge.runtime.model import OrtEngine

    engine = OrtEngine(onnx_model, threads=1)
    if ckpt["task"] == "charlm":
        from rnnedge.train.charlm import build_model

        from .validate import validate_charlm

        diffs = validate_charlm(build_model(ckpt), engine, ckpt["config"], tol)
    else:
        from rnnedge.train.sentiment import build_model

        from .validate import validate_sentiment

        diffs = validate_sentiment(build_model(ckpt), engine, ckpt["config"], tol)
    failed = [d for d in diffs if not d.ok]
    if failed:
        raise ParityError("export does not match PyTorch: " + "; ".join(map(str, failed)))
    return diffs


def export(checkpoint, out, tol=FP32, linear_before_reset=1):
    """Export ``checkpoint`` to ``out``; return (path, diffs of the validation)."""
    import onnx

    from rnnedge.train import checkpoint as ckpt_io

    ckpt = ckpt_io.load(checkpoint)
    model = build(ckpt, ckpt_io.sha256(checkpoint), linear_before_reset)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        onnx.save(model, tmp)
        onnx.checker.check_model(tmp, full_check=True)
        diffs = validate(ckpt, model, tol)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out, diffs
