"""``rnnedge optimize``: an exported fp32 model -> a smaller variant, kept only if it passes a gate.

The variants (``variants.py``): int8 (onnxruntime dynamic quantization; GRU and RNN keep fp32
weights, and the report counts the nodes quantized and names those that are not), fp16 weights
computed in fp32, numba int8 (gate-only: the fp32 graph unchanged, gated as the ``fast-int8``
engine runs it, any kind), and the ORT format of the int8 or fp32 graph. fp16 weights are
refused in the ORT format: onnxruntime runs no constant folding on an ORT-format model at load,
so every call would cast every weight (1.6-2.0x slower a step).

The variant and its source run through the runtime on real data (``gates.py``). A variant that
fails is not written unless ``force``; writes are atomic (temporary file, then rename). A variant
keeps its source's metadata and adds ``rnnedge.variant``, ``rnnedge.variant_of`` (sha256 of the
source file), ``rnnedge.variant_engine`` (the engine it was gated on: ort, or fast-int8),
``rnnedge.variant_settings`` and ``rnnedge.variant_gate``. Here: the request
checks, the gated write, the report and the summary ``rnnedge optimize`` prints. Not here:
static (calibrated) quantization, fp16 compute, and variants of variants (none is supported).
"""

import contextlib
import json
from collections import Counter
from pathlib import Path

from rnnedge.runtime.errors import InputError, write_error
from rnnedge.runtime.files import read_onnx, sha256
from rnnedge.runtime.metadata import FORMAT, read_metadata

from .gates import judge_for
from .variants import (NUMBA_INT8_SETTINGS, ORT_FORMAT_LEVEL, RECURRENT_OPS, build,
                       fp32_weight_nodes, initializer_bytes, int8_nodes, op_types, set_props,
                       write_gated)


def optimize(model, out, int8=False, fp16=False, ort_format=False, numba_int8=False, force=False,
             data_dir=None, limit=None, gates=None, inputs=None, data=None, seed=0):
    """Write the variant of ``model`` to ``out`` when it passes its gate (or ``force``); the report.

    One path for every kind; the gate is the kind's (``gates.judge_for``): Hamlet bits per
    character, IMDb or series accuracy on real data, or, for a user's file or with ``inputs``
    (an ``.npz`` of real inputs), output agreement on its golden bundle. ``limit`` caps the
    real cases the gate reads (a ``seed``ed sample stratified by class; Hamlet: the first
    ``limit`` characters); ``data``: a series classifier's labelled frames; ``gates``: the
    thresholds (None: the kind's defaults).
    """
    source, out = Path(model), Path(out)
    _check_request(source, out, int8, fp16, ort_format, numba_int8, limit)
    proto = read_onnx(source)
    meta = read_metadata(proto, source)
    if meta.variant:
        raise InputError(f"{source} is already a variant ({meta.variant}); optimize the fp32 "
                         f"export it was made from")
    engine = NUMBA_INT8_SETTINGS["engine"] if numba_int8 else "ort"
    judge = judge_for(source, meta, engine, inputs=inputs, data=data, data_dir=data_dir,
                      limit=limit, gates=gates, seed=seed)  # the real data is read before any work
    variant, settings = build(proto, int8, fp16, numba_int8)
    if ort_format:
        settings = {**settings, "ort_optimization_level": ORT_FORMAT_LEVEL}
    if int8 or ort_format:  # the quantizer's and the ORT format's version
        import onnxruntime

        settings = {**settings, "onnxruntime": onnxruntime.__version__}
    name = "+".join(n for n, on in (("int8", int8), ("fp16", fp16), ("numba-int8", numba_int8),
                                    ("ort", ort_format)) if on)
    report = {"source": str(source), "out": str(out), "variant": name, "kind": meta.kind,
              "settings": settings, "source_bytes": source.stat().st_size,
              "initializer_bytes": {"before": initializer_bytes(proto),
                                    "after": initializer_bytes(variant)},
              "op_types": {"before": op_types(proto), "after": op_types(variant)},
              "fp32_weight_nodes": fp32_weight_nodes(variant), "int8_nodes": int8_nodes(variant),
              "engine": engine, "gate_only": numba_int8, "gate_inputs": judge.inputs}
    # a file without rnnedge metadata (a plain torch.onnx.export) becomes one of kind "user"
    schema = {} if meta.rnnedge else {"rnnedge.format": FORMAT, "rnnedge.kind": "user"}
    set_props(variant, {**schema, "rnnedge.variant": name, "rnnedge.variant_of": sha256(source),
                        "rnnedge.variant_engine": engine,
                        "rnnedge.variant_settings": json.dumps(settings, sort_keys=True)})
    with _writing(out):
        report["gate"] = write_gated(variant, out, ort_format, force, judge,
                                      f"the {name} variant of {source}")
    report["out_bytes"] = out.stat().st_size
    # what was written, read back: an ORT-format file is no ONNX graph to compare
    report["graph_unchanged"] = None if ort_format else read_onnx(out).graph == proto.graph
    return report


@contextlib.contextmanager
def _writing(out):
    """A folder that cannot take ``out`` (read-only, full, a file in the path) as an OutputError;
    ``write_gated`` has removed its temporary file by then."""
    try:
        yield
    except OSError as exc:
        raise write_error(out, exc) from exc


def _check_request(source, out, int8, fp16, ort_format, numba_int8, limit):
    if out.is_dir():
        raise InputError(f"--out {out} is a directory; give the file to write, such as "
                         f"{out / 'model.int8.onnx'}")
    if not (int8 or fp16 or ort_format or numba_int8):
        raise InputError("nothing to do: choose --int8 or --fp16, and/or --ort-format; "
                         "or --numba-int8")
    if int8 and fp16:
        raise InputError("--int8 and --fp16 exclude each other: int8 already stores the weights "
                         "in 8 bits; choose one")
    if numba_int8 and (int8 or fp16 or ort_format):
        raise InputError("--numba-int8 goes alone: it keeps the fp32 graph for the numba int8 "
                         "engine (fast-int8), which quantizes at load and cannot run int8, fp16 "
                         "or ORT-format files; drop --int8, --fp16 and --ort-format")
    if fp16 and ort_format:
        raise InputError("--fp16 with --ort-format would cast every weight on every call: "
                         "onnxruntime does not fold constants when it loads the ORT format; "
                         "use --int8 --ort-format (smaller and faster) or --fp16 alone")
    if ort_format != (out.suffix == ".ort"):
        raise InputError(f"{out}: an ORT-format file must end in .ort and only it (onnxruntime "
                         f"tells the formats apart by the suffix); "
                         f"{'rename it' if ort_format else 'add --ort-format or rename it'}")
    if out.exists() and out.resolve() == source.resolve():
        raise InputError(f"--out {out} is the source model; write the variant to another file")
    if limit is not None and limit < 1:
        raise InputError(f"limit must be >= 1, not {limit}")


def summary(report):
    """What ``rnnedge optimize`` prints: the file, what changed, the gate and what it read."""
    from .gates import summary_lines

    gate = report["gate"]
    lines = _file_lines(report) + summary_lines(gate) + _sample_lines(gate)
    lines.append("gate passed" if gate["passed"] else
                 "GATE FAILED, written because of --force: " + "; ".join(gate["failures"]))
    return "\n".join(lines)


def _file_lines(report):
    """The file written and how it differs from its source: for int8, the nodes quantized and
    those that stay fp32; numba int8 changes nothing in the file."""
    if report["gate_only"]:
        same = ("the file is the fp32 model unchanged (its graph and weights, with the gate in "
                "its metadata)" if report["graph_unchanged"] else "the file is the fp32 model")
        return [f"wrote {report['out']} (numba-int8, a gate-only variant): "
                f"{report['out_bytes'] / 1e6:.2f} MB; {same}",
                "int8 is applied at load by --engine fast-int8 (the int8 weights exist only in "
                "memory); every other engine runs it in fp32"]
    before, after = report["op_types"]["before"], report["op_types"]["after"]
    fewer = ", ".join(f"{op} x{n}" for op, n in before.items() if after.get(op, 0) < n)
    more = ", ".join(f"{op} x{n}" for op, n in after.items() if before.get(op, 0) < n)
    lines = [f"wrote {report['out']} ({report['variant']}): {report['source_bytes'] / 1e6:.2f} "
             f"MB -> {report['out_bytes'] / 1e6:.2f} MB; nodes {fewer or '-'} -> {more or '-'}"]
    if report["graph_unchanged"]:
        lines.append("the graph and weights are the source's unchanged; only the metadata differs")
    if "int8" not in report["variant"].split("+"):
        return lines
    quantized, kept = report["int8_nodes"], report["fp32_weight_nodes"]
    count = lambda ops: ", ".join(f"{n} {op}" for op, n in ops.items()) or "none"  # noqa: E731
    kept_ops = Counter(n["op_type"] for n in kept)
    names = f" ({', '.join(n['name'] for n in kept)})" if kept else ""
    lines.append(f"int8: {count(quantized)}; stays fp32: {count(dict(sorted(kept_ops.items())))}"
                 f"{names}")
    if kept_ops.keys() & set(RECURRENT_OPS) and not quantized.keys() & set(RECURRENT_OPS):
        lines.append("no recurrent node quantized: onnxruntime's dynamic int8 covers LSTM, not "
                     "GRU/RNN; --numba-int8 quantizes all three")
    return lines


def _sample_lines(gate):
    """Which of the data set's cases the gate read, when it read not all of them."""
    from .evaluate import describe_sample

    sample = gate.get("sample")
    if not sample or sample["sample"] == "all":
        return []
    what = ("Hamlet validation characters" if "bpc" in gate else "IMDb test reviews"
            if "reviews" in gate else f"labelled cases of {gate['data']}")
    return [f"gate sample: {describe_sample(sample, what)}"]
