"""``rnnedge optimize``: an exported fp32 model -> a smaller variant, kept only if it passes a gate.

* int8: onnxruntime's dynamic quantization. LSTM becomes ``DynamicQuantizeLSTM`` (int8 W and R,
  activations quantized on each call), the output MatMul becomes ``MatMulInteger`` and the
  embedding table is stored in 8 bits. onnxruntime quantizes no GRU or RNN operator: those nodes
  keep fp32 weights, and the report names them.
* fp16: every float initializer stored in fp16 and cast back to float32 by a node at the head of
  the graph. onnxruntime folds those casts when it creates a session, so the graph computes in
  float32 on fp16-rounded weights: half the file, the same speed. A graph that computes in fp16 is
  no option on the CPU: onnxruntime has no fp16 LSTM kernel there (it would wrap each node in
  casts), and onnxruntime 1.32 crashes (SIGSEGV, in NchwcTransformer) creating a session on such
  a graph at its default optimization level.
* numba int8: the fp32 graph unchanged, gated as the numba int8 engine (``fast-int8``) runs it:
  that engine quantizes the weights when it loads the file (``runtime/ops/fused.py``), so the
  file stays fp32-sized and every other engine runs it in fp32. charlm models only.
* ORT format: the graph optimized offline at the portable level and saved as onnxruntime's
  flatbuffer file for minimal builds; ``rnnedge.runtime.load`` runs it on the ort engine. fp16
  weights are refused there: onnxruntime runs no basic optimization (constant folding) on an
  ORT-format model at load, so every call would cast every weight (1.6-2.0x slower per step).

The gate runs the variant and its source through the runtime on real data (the source on the
ort engine; the variant on ort, or on fast-int8 for the numba int8 variant): Hamlet validation
bits per character (charlm; state carried across windows as in training evaluation; top-1
agreement reported) or IMDb test accuracy and label agreement (sentiment). A variant that fails
is not written unless ``force``; writes are atomic (temporary file, then rename). A variant keeps
its source's metadata and adds ``rnnedge.variant``, ``rnnedge.variant_of`` (sha256 of the source
file), ``rnnedge.variant_settings`` and ``rnnedge.variant_gate``. Not here: static (calibrated)
quantization, fp16 compute, and variants of variants.
"""

import contextlib
import json
import logging
import math
import os
import tempfile
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from rnnedge.runtime.errors import GateError, InputError, UnsupportedError
from rnnedge.runtime.model import load, read_metadata, read_onnx
from rnnedge.train.checkpoint import sha256  # torch-free: torch is imported inside save/load

# Chosen on the gates. onnxruntime stores LSTM weights as int8 whatever weight_type says (it
# decides the embedding and the output layer); per_channel gives each gate row its own scale.
# On a 2x256 LSTM char model per_channel without reduce_range had the best top-1 agreement
# (99.06 % vs 98.4-98.7 % otherwise) and bpc within 0.003 %; on an IMDb LSTM it alone lost no
# accuracy. reduce_range (7-bit weights) only helps x86 CPUs without VNNI, where u8s8 products
# can saturate. QUInt8 (embedding and output layer only) measured alike in accuracy and speed,
# so onnxruntime's default QInt8 stays.
INT8_SETTINGS = {"weight_type": "QInt8", "per_channel": True, "reduce_range": False}
# ORT_ENABLE_ALL would add layout rewrites that hold only on the machine that made them.
ORT_FORMAT_LEVEL = "ORT_ENABLE_EXTENDED"
# What runtime/ops/fused.py ``quantize`` and ``run8`` do; fast-int8 runs any charlm graph so.
NUMBA_INT8_SETTINGS = {
    "engine": "fast-int8",
    "quantized": "when the engine loads the file; the file keeps its fp32 weights",
    "weights": "int8, symmetric, one float32 scale per row (max|row| / 127, round half to even)",
    "int8_matrices": "layer 0 R, [W | R] of each layer above, the output layer",
    "fp32": "layer 0's input projection of each token (embedding @ W^T + biases), every bias",
    "activations": "each product's input vector, per step: int8 with one symmetric scale "
                   "(max|v| / 127, round half to even)",
    "accumulation": "int32, then times row scale * input scale in float32",
}
EVAL_BATCH, EVAL_STEPS = 16, 200  # Hamlet validation layout of train.charlm.evaluate
EVAL_THREADS = max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class Gates:
    """How much a variant may lose against its fp32 source on real data."""

    max_bpc_rise: float = 0.02  # charlm: relative rise of validation bits per character
    max_accuracy_drop: float = 0.005  # sentiment: absolute drop of test accuracy (0.5 points)
    min_agreement: float = 0.99  # sentiment: share of reviews labelled as the fp32 model does


GATES = Gates()


def optimize(model, out, int8=False, fp16=False, ort_format=False, numba_int8=False, force=False,
             data_dir=None, limit=None, gates=GATES):
    """Write the variant of ``model`` to ``out`` when it passes its gate (or ``force``); the report.

    ``limit`` caps the reviews or validation characters the gate reads (default: all of them).
    """
    source, out = Path(model), Path(out)
    _check_request(source, out, int8, fp16, ort_format, numba_int8, limit)
    proto = read_onnx(source)
    meta = read_metadata(proto, source)
    if "rnnedge.variant" in meta.props:
        raise InputError(f"{source} is already a variant ({meta.props['rnnedge.variant']}); "
                         f"optimize the fp32 export it was made from")
    if numba_int8 and meta.task != "charlm":
        raise UnsupportedError(f"{source} is a {meta.task} model; --numba-int8 gates the numba "
                               f"int8 engine (fast-int8), which runs charlm models only; use "
                               f"--int8 (onnxruntime) for it")
    variant, settings = _variant(proto, int8, fp16, numba_int8)
    if ort_format:
        settings = {**settings, "ort_optimization_level": ORT_FORMAT_LEVEL}
    if int8 or ort_format:  # the quantizer's and the ORT format's version
        import onnxruntime

        settings = {**settings, "onnxruntime": onnxruntime.__version__}
    name = "+".join(n for n, on in (("int8", int8), ("fp16", fp16), ("numba-int8", numba_int8),
                                    ("ort", ort_format)) if on)
    report = {"source": str(source), "out": str(out), "variant": name, "task": meta.task,
              "settings": settings, "source_bytes": source.stat().st_size,
              "initializer_bytes": {"before": initializer_bytes(proto),
                                    "after": initializer_bytes(variant)},
              "op_types": {"before": op_types(proto), "after": op_types(variant)},
              "fp32_weight_nodes": fp32_weight_nodes(variant)}
    _set_props(variant, {"rnnedge.variant": name, "rnnedge.variant_of": sha256(source),
                         "rnnedge.variant_settings": json.dumps(settings, sort_keys=True)})
    gate = partial(run_gate, source, task=meta.task, data_dir=data_dir, limit=limit, gates=gates,
                   candidate_engine=NUMBA_INT8_SETTINGS["engine"] if numba_int8 else "ort")
    report["gate"] = _write_gated(variant, out, ort_format, force, gate,
                                  f"the {name} variant of {source}")
    report["out_bytes"] = out.stat().st_size
    return report


def _write_gated(variant, out, ort_format, force, gate, what):
    """``gate(path)`` of ``variant`` saved to a temporary file, renamed to ``out`` if it passes."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        _save(variant, tmp, ort_format)
        report = gate(tmp)
        if not report["passed"] and not force:
            raise GateError(f"{what} fails its gate: "
                            f"{'; '.join(report['failures'])}; nothing was written "
                            f"(--force writes it anyway)")
        # the file evaluated differs from the one written by this one metadata string
        _set_props(variant, {"rnnedge.variant_gate": json.dumps(report, sort_keys=True)})
        _save(variant, tmp, ort_format)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return report


def _check_request(source, out, int8, fp16, ort_format, numba_int8, limit):
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


# -- the variants --------------------------------------------------------------------------


def _variant(proto, int8, fp16, numba_int8):
    """(model, settings) of the variant before any ORT-format step; numba int8 keeps ``proto``."""
    if int8:
        return quantize_int8(proto)
    if fp16:
        return fp16_weights(proto)
    return proto, dict(NUMBA_INT8_SETTINGS) if numba_int8 else {}


@contextlib.contextmanager
def _quiet_logging():
    """Silence the root-logger advice quantize_dynamic prints (pre-processing, opset)."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def quantize_int8(proto, settings=INT8_SETTINGS):
    """(int8 model, settings): onnxruntime dynamic quantization of every operator it knows."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp, _quiet_logging():
        path = Path(tmp) / "int8.onnx"
        quantize_dynamic(proto, path, weight_type=QuantType[settings["weight_type"]],
                         per_channel=settings["per_channel"], reduce_range=settings["reduce_range"])
        return onnx.load(str(path)), dict(settings)


def fp16_weights(proto):
    """(model, settings) with each float32 initializer stored in fp16 and cast back by a node."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    casts, initializers = [], []
    for t in model.graph.initializer:
        if t.data_type != TensorProto.FLOAT:
            initializers.append(t)
            continue
        array = numpy_helper.to_array(t)
        if np.abs(array[np.isfinite(array)]).max(initial=0) > np.finfo(np.float16).max:
            raise InputError(f"initializer {t.name} holds values beyond the fp16 range; "
                             f"this model cannot be stored in fp16")
        initializers.append(numpy_helper.from_array(array.astype(np.float16), f"{t.name}_fp16"))
        casts.append(helper.make_node("Cast", [f"{t.name}_fp16"], [t.name],
                                      name=f"{t.name}_to_float", to=TensorProto.FLOAT))
    del model.graph.initializer[:]
    model.graph.initializer.extend(initializers)
    nodes = casts + list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model, {"weights": "fp16", "compute": "fp32"}


def _save(model, path, ort_format):
    """Write ``model`` as ONNX, or optimized offline into the ORT format."""
    import onnx

    if not ort_format:
        onnx.save(model, str(path))
        onnx.checker.check_model(str(path), full_check=True)
        return
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, ORT_FORMAT_LEVEL)
    options.optimized_model_filepath = str(path)
    options.add_session_config_entry("session.save_model_format", "ORT")
    ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _set_props(model, extra):
    from onnx import helper

    helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, **extra})


def op_types(model):
    return dict(sorted(Counter(n.op_type for n in model.graph.node).items()))


def initializer_bytes(model):
    from onnx import numpy_helper

    return int(sum(numpy_helper.to_array(t).nbytes for t in model.graph.initializer))


def fp32_weight_nodes(model):
    """[{name, op_type}] of nodes reading a float32 weight matrix: an initializer with two or
    more dimensions above 1 (biases (D, 8H) and per-row scales (D, 4H) are not matrices)."""
    from onnx import TensorProto

    weights = {t.name for t in model.graph.initializer
               if t.data_type == TensorProto.FLOAT and sum(d > 1 for d in t.dims) >= 2}
    return [{"name": n.name, "op_type": n.op_type} for n in model.graph.node
            if weights.intersection(n.input)]


# -- the gates -----------------------------------------------------------------------------


def run_gate(source, variant, task, data_dir=None, limit=None, gates=GATES,
             reference_engine="ort", candidate_engine="ort"):
    """The variant against its source on the task's real data, each loaded on its engine."""
    reference = load(source, engine=reference_engine, threads=EVAL_THREADS)
    candidate = load(variant, engine=candidate_engine, threads=EVAL_THREADS)
    gate = gate_charlm if task == "charlm" else gate_sentiment
    return {**gate(reference, candidate, data_dir, limit, gates),
            "engines": {"reference": reference.engine.name, "candidate": candidate.engine.name}}


def bits_per_char(model, ids):
    """(bits per character, top-1 ids (B, n)) of a runtime char model over ``ids``.

    The text is laid out as ``EVAL_BATCH`` streams cut into windows of ``EVAL_STEPS``, the
    state carried from window to window, as ``train.charlm.evaluate`` does.
    """
    from rnnedge.train.hamlet import stream_windows

    state, nats, count, top = None, 0.0, 0, []
    for x, y in stream_windows(ids, EVAL_BATCH, EVAL_STEPS):
        logits, state = model.run(x, state)  # (B, T, V)
        z = logits.astype(np.float64)
        zmax = z.max(axis=-1, keepdims=True)
        log_norm = np.log(np.exp(z - zmax).sum(axis=-1)) + zmax[..., 0]  # (B, T)
        nats += float((log_norm - np.take_along_axis(z, y[..., None], -1)[..., 0]).sum())
        count += y.size
        top.append(logits.argmax(axis=-1))
    return nats / count / math.log(2), np.concatenate(top, axis=1)


def gate_charlm(reference, candidate, data_dir=None, limit=None, gates=GATES):
    from rnnedge.train.hamlet import CharCorpus, load_text

    corpus = CharCorpus.from_text(load_text(None, data_dir))
    if tuple(reference.vocab) != corpus.vocab:
        raise InputError("the model's vocabulary is not Hamlet's: the charlm gate measures bits "
                         "per character on the Hamlet validation text, so it needs a Hamlet model")
    ids = corpus.val[:limit] if limit else corpus.val
    bpc_fp32, top_fp32 = bits_per_char(reference, ids)
    bpc, top = bits_per_char(candidate, ids)
    rise = bpc / bpc_fp32 - 1
    failures = [] if rise <= gates.max_bpc_rise else [
        f"validation bits per character rose {rise:.2%} ({bpc_fp32:.4f} -> {bpc:.4f}), "
        f"more than the {gates.max_bpc_rise:.2%} allowed"]
    return {"data": "hamlet validation", "chars": int(len(ids)), "bpc_fp32": bpc_fp32, "bpc": bpc,
            "bpc_rise": rise, "top1_agreement": float((top == top_fp32).mean()),
            "max_bpc_rise": gates.max_bpc_rise, "failures": failures, "passed": not failures}


def gate_sentiment(reference, candidate, data_dir=None, limit=None, gates=GATES):
    from rnnedge.train.imdb import load_imdb

    reviews = load_imdb("test", data_dir)
    if limit:  # a stride keeps both classes: the split lists negatives first
        reviews = reviews[::max(1, len(reviews) // limit)][:limit]
    texts, labels = [r.text for r in reviews], np.array([r.label for r in reviews])
    pred_fp32 = reference.classify(texts) >= 0.5
    pred = candidate.classify(texts) >= 0.5
    acc_fp32, acc = float((pred_fp32 == labels).mean()), float((pred == labels).mean())
    drop, agreement = acc_fp32 - acc, float((pred == pred_fp32).mean())
    failures = []
    if round(drop, 12) > gates.max_accuracy_drop:
        failures.append(f"test accuracy dropped {drop * 100:.2f} points ({acc_fp32:.4f} -> "
                        f"{acc:.4f}), more than the {gates.max_accuracy_drop * 100:.2f} allowed")
    if agreement < gates.min_agreement:
        failures.append(f"labels agree with fp32 on {agreement:.2%} of reviews, fewer than the "
                        f"{gates.min_agreement:.2%} required")
    return {"data": "imdb test", "reviews": len(texts), "accuracy_fp32": acc_fp32,
            "accuracy": acc, "accuracy_drop": drop, "agreement": agreement,
            "max_accuracy_drop": gates.max_accuracy_drop, "min_agreement": gates.min_agreement,
            "failures": failures, "passed": not failures}


def summary(report):
    """What ``rnnedge optimize`` prints: the file, what changed, the gate, what stayed fp32."""
    gate, lines = report["gate"], _file_lines(report)
    if report["task"] == "charlm":
        engines = gate["engines"]
        on = ("" if engines["candidate"] == engines["reference"] else
              f" ({engines['reference']} fp32 source -> {engines['candidate']})")
        lines.append(f"gate on {gate['chars']} Hamlet validation characters{on}: "
                     f"{gate['bpc_fp32']:.4f} -> {gate['bpc']:.4f} bits/char "
                     f"({gate['bpc_rise']:+.2%}, at most {gate['max_bpc_rise']:+.2%}), "
                     f"top-1 agreement {gate['top1_agreement']:.2%}")
    else:
        lines.append(f"gate on {gate['reviews']} IMDb test reviews: accuracy "
                     f"{gate['accuracy_fp32']:.4f} -> {gate['accuracy']:.4f} (drop "
                     f"{gate['accuracy_drop'] * 100:.2f} points, at most "
                     f"{gate['max_accuracy_drop'] * 100:.2f}), labels agree on "
                     f"{gate['agreement']:.2%} (at least {gate['min_agreement']:.0%})")
    lines.append("gate passed" if gate["passed"] else
                 "GATE FAILED, written because of --force: " + "; ".join(gate["failures"]))
    if report["fp32_weight_nodes"] and report["variant"].startswith("int8"):
        nodes = ", ".join(f"{n['name']} ({n['op_type']})" for n in report["fp32_weight_nodes"])
        lines.append(f"kept fp32 weights (onnxruntime quantizes no GRU or RNN): {nodes}")
    return "\n".join(lines)


def _file_lines(report):
    """The file written and how it differs from its source; numba int8 changes no weight."""
    if report["variant"] == "numba-int8":
        return [f"wrote {report['out']} (numba-int8): {report['out_bytes'] / 1e6:.2f} MB, the fp32 "
                f"graph of the source ({report['source_bytes'] / 1e6:.2f} MB) with the gate in its "
                f"metadata; the int8 weights exist only in memory",
                "run it with `--engine fast-int8`, which quantizes the weights when it loads the "
                "file; every other engine runs it in fp32"]
    before, after = report["op_types"]["before"], report["op_types"]["after"]
    fewer = ", ".join(f"{op} x{n}" for op, n in before.items() if after.get(op, 0) < n)
    more = ", ".join(f"{op} x{n}" for op, n in after.items() if before.get(op, 0) < n)
    return [f"wrote {report['out']} ({report['variant']}): {report['source_bytes'] / 1e6:.2f} "
            f"MB -> {report['out_bytes'] / 1e6:.2f} MB; nodes {fewer or '-'} -> {more or '-'}"]
