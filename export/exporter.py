"""``rnnedge export``: checkpoint -> checked, validated, self-describing ONNX file.

The model is checked with ``onnx.checker`` (full check, on the bytes to be written) and
validated against PyTorch, and only then written: to a temporary name beside the target,
renamed into place (``runtime/atomic.py``), so that a failure, SIGTERM or Ctrl-C leaves
nothing behind and a SIGKILL leaves a temp file that the next export to that target removes.
Refused before any work: an ``out`` that is a directory, the checkpoint itself, or a file of
a training run. Of a run's best.pt, what is exported is the checkpoint its manifest names.
"""

import os
from pathlib import Path

from rnnedge.runtime.errors import CheckpointError, InputError, ParityError, write_error
from rnnedge.runtime.tolerances import FP32

from . import metadata


GOLDEN_SHAPES = ((1, 1), (2, 7), (3, 16))  # (batch, time) of the golden bundle's cases
STATES = {"charlm": {"h0": "hn", "c0": "cn"}, "sentiment": {}}  # c0/cn: an LSTM's only


def build(ckpt, sha, linear_before_reset=1, tol=FP32):
    """The ONNX model of a loaded checkpoint, with the schema's metadata and a golden bundle."""
    from rnnedge.runtime.golden import Case

    from .models import charlm_graph, sentiment_graph
    from .user_model import set_props, signature

    task, config = ckpt["task"], ckpt["config"]
    graph = charlm_graph if task == "charlm" else sentiment_graph
    model = graph(config, ckpt["model"], {}, linear_before_reset)
    reference, feeds = _reference(ckpt, GOLDEN_SHAPES)
    golden = [Case(f, reference(f)) for f in feeds]
    sig = signature(model)
    names = {i["name"] for i in sig["inputs"]}
    states = {i: o for i, o in STATES[task].items() if i in names}
    export = {"exporter": "rnnedge graph builder", "opset": model.opset_import[0].version,
              "tolerance": tol.name, "rewrites": [],
              "module": f"rnnedge {ckpt['task']} checkpoint"}
    set_props(model, metadata.props(
        task, signature=sig, states=states, golden=golden, export=export, config=config,
        vocab=ckpt["vocab"], metrics=ckpt["metrics"],
        lengths="lengths" if "lengths" in names else None,
        provenance=metadata.provenance(ckpt, sha)))
    return model


def _reference(ckpt, shapes):
    """(PyTorch's ``run(feeds) -> outputs`` of the checkpoint, random feeds at ``shapes``)."""
    from rnnedge.runtime.parity import charlm_inputs, sentiment_inputs

    from .torch_engines import reference_of

    inputs = charlm_inputs if ckpt["task"] == "charlm" else sentiment_inputs
    return reference_of(ckpt), inputs(ckpt["config"], shapes, seed=7)


def validate(ckpt, onnx_model, tol=FP32):
    """Diffs of onnxruntime against PyTorch on random inputs; raises ParityError on failure."""
    from rnnedge.runtime.engines import OrtEngine

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

    from rnnedge.runtime.atomic import write_atomic
    from rnnedge.train import checkpoint as ckpt_io

    out = check_out(checkpoint, out)
    ckpt, sha = ckpt_io.read(checkpoint)  # of a run's best.pt: the bytes its manifest names
    bad = ckpt_io.nonfinite(ckpt["model"])
    if bad:
        raise CheckpointError(f"{checkpoint}: tensor {bad[0]} holds NaN or infinite values"
                              f"{f' (and {len(bad) - 1} more)' if len(bad) > 1 else ''}; its "
                              f"training diverged: retrain with a lower --lr")
    if ckpt["task"] == "series":  # a generic export behind the user-model gate
        from .series import export_series

        out.parent.mkdir(parents=True, exist_ok=True)
        return export_series(ckpt, out, sha, tol)
    model = build(ckpt, sha, linear_before_reset, tol)
    data = model.SerializeToString()
    onnx.checker.check_model(data, full_check=True)
    diffs = validate(ckpt, model, tol)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(out, exc) from exc
    write_atomic(out, data)  # an OSError there is an OutputError, and no file is left
    return out, diffs


def check_out(checkpoint, out):
    """``out`` as a Path, unless writing it would destroy a checkpoint or a run's file."""
    from rnnedge.train import rundir

    out = Path(out)
    if out.is_dir():
        raise InputError(f"--out {out} is a directory; give the ONNX file to write, such as "
                         f"{out / 'model.onnx'}")
    if out.exists() and Path(checkpoint).exists() and os.path.samefile(out, checkpoint):
        raise InputError(f"--out {out} is the checkpoint being exported; write the ONNX file "
                         f"elsewhere, such as {out.with_suffix('.onnx')}")
    if rundir.is_run_file(out):
        run = out.resolve().parent
        raise InputError(f"--out {out} is {out.resolve().name} of the training run in {run}; "
                         f"write the ONNX file elsewhere, such as {run / 'model.onnx'}")
    return out
