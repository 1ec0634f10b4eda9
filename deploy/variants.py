"""The variants ``rnnedge optimize`` builds from an fp32 export, how they are saved, and the
precision each one computes in.

* int8: onnxruntime's dynamic quantization. LSTM becomes ``DynamicQuantizeLSTM`` (int8 W and R,
  activations quantized on each call), the output MatMul becomes ``MatMulInteger`` and the
  embedding table is stored in 8 bits. onnxruntime quantizes no GRU or RNN operator (its
  ``IntegerOpsRegistry`` has LSTM, MatMul, Gather, Conv, Attention): those nodes keep fp32
  weights (``fp32_weight_nodes`` names them; ``int8_nodes`` counts the ones it quantized).
* fp16: every float initializer stored in fp16 and cast back to float32 by a node at the head of
  the graph. onnxruntime folds those casts when it creates a session, so the graph computes in
  float32 on fp16-rounded weights: half the file, the same speed. A graph that computes in fp16 is
  no option on the CPU: onnxruntime has no fp16 LSTM kernel there (it would wrap each node in
  casts), and onnxruntime 1.32 crashes (SIGSEGV, in NchwcTransformer) creating a session on such
  a graph at its default optimization level.
* numba int8: the fp32 graph unchanged, for the numba int8 engine (``fast-int8``), which
  quantizes the weights when it loads the file (``runtime/ops/panels.py``): a gate-only variant,
  whose ``rnnedge.variant_engine`` says which engine it was gated on (``gated_engine``).
* ORT format: the graph optimized offline at the portable level and saved as onnxruntime's
  flatbuffer file for minimal builds.

Not here: which combinations may be asked for, the gates, the report (``optimize.py``,
``gates.py``).
"""

import contextlib
import json
import logging
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from rnnedge.runtime.atomic import writing
from rnnedge.runtime.errors import GateError, InputError

# Chosen to hold on every CPU the file may run on. onnxruntime stores LSTM weights as int8
# whatever weight_type says (it decides the embedding and the output layer) and multiplies them
# with uint8 activations. On x86 CPUs without VNNI (AVX2 only) its kernel adds each pair of
# u8 x s8 products in int16 (vpmaddubsw), which saturates above 32767: 255 * 127 * 2 does,
# 255 * 64 * 2 does not. reduce_range keeps every weight within +-64, so no CPU saturates;
# per_channel (a scale per gate row and output column) puts each row at the edge of the range,
# so without reduce_range it is the setting that saturates most. On an AVX2 CPU, a 2x256 char
# model (3.88 bits/char) agreed with fp32 on top-1 99.67 % with these settings, 95.2 % per
# channel without reduce_range (99.72 % per tensor, which still saturates its widest row, 99.23 %
# per tensor with reduce_range); on the 2x32 test model 99.5 % against 65.9 %. QUInt8 would only
# change the embedding and the output layer, so onnxruntime's default QInt8 stays.
INT8_SETTINGS = {"weight_type": "QInt8", "per_channel": True, "reduce_range": True}
# ORT_ENABLE_ALL would add layout rewrites that hold only on the machine that made them.
ORT_FORMAT_LEVEL = "ORT_ENABLE_EXTENDED"
# What the fast-int8 engine does at load (``panels.quantize_rows``), for every kind of file.
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
# The precision onnxruntime computes each part of a variant's name (``rnnedge.variant``, parts
# joined by "+") in: a numba-int8 file is the fp32 graph, and so is the ORT format of one.
ORT_PRECISION = {"int8": "int8", "fp16": "fp16", "numba-int8": "fp32", "ort": "fp32"}
LOOSER = ("fp32", "fp16", "int8")  # from the strictest tolerance to the loosest
# What onnxruntime's dynamic quantization writes for each operator it quantizes (and what its
# graph optimizer fuses those into, in an ORT-format file), by the operator it replaces.
INT8_OPS = {"DynamicQuantizeLSTM": "LSTM", "MatMulInteger": "MatMul",
            "DynamicQuantizeMatMul": "MatMul", "MatMulIntegerToFloat": "MatMul",
            "ConvInteger": "Conv", "QAttention": "Attention"}
RECURRENT_OPS = ("LSTM", "GRU", "RNN")


def precision(variant):
    """"fp32", "fp16" or "int8": what onnxruntime computes the variant named ``variant`` in."""
    parts = variant.split("+")
    unknown = [p for p in parts if p not in ORT_PRECISION]
    if unknown:
        raise InputError(f"unknown variant {variant!r} in the file's rnnedge.variant; "
                         f"rnnedge optimize writes {', '.join(ORT_PRECISION)} (joined by +)")
    return max((ORT_PRECISION[p] for p in parts), key=LOOSER.index)


def gated_engine(props):
    """The engine a variant was gated on, from a file's metadata ``props``: "ort", or
    "fast-int8" for a numba int8 file (files written before ``rnnedge.variant_engine``
    existed say so by their ``rnnedge.variant`` alone); None for a file that is no variant."""
    variant = props.get("rnnedge.variant")
    if variant is None:
        return None
    return props.get("rnnedge.variant_engine") or (
        NUMBA_INT8_SETTINGS["engine"] if "numba-int8" in variant.split("+") else "ort")


def build(proto, int8, fp16, numba_int8):
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


def save(model, path, ort_format):
    """Write ``model`` as ONNX (fully checked), or optimized offline into the ORT format."""
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


def set_props(model, extra):
    """Add (or replace) ``extra`` metadata properties of ``model``, keeping the others."""
    from onnx import helper

    helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, **extra})


def op_types(model):
    return dict(sorted(Counter(n.op_type for n in model.graph.node).items()))


def initializer_bytes(model):
    from onnx import numpy_helper

    return int(sum(numpy_helper.to_array(t).nbytes for t in model.graph.initializer))


def int8_nodes(model):
    """{operator: count} of the nodes of a quantized ``model`` that hold int8 weights, by the
    operator each replaced (``INT8_OPS``), with each Gather of an 8-bit table (an embedding)."""
    from onnx import TensorProto

    tables = {t.name for t in model.graph.initializer
              if t.data_type in (TensorProto.INT8, TensorProto.UINT8)}
    ops = [INT8_OPS[n.op_type] for n in model.graph.node if n.op_type in INT8_OPS]
    ops += ["Gather" for n in model.graph.node if n.op_type == "Gather" and n.input[0] in tables]
    return dict(sorted(Counter(ops).items(), key=lambda kv: (kv[0] not in RECURRENT_OPS, kv[0])))


def fp32_weight_nodes(model):
    """[{name, op_type}] of nodes reading a float32 weight matrix: an initializer with two or
    more dimensions above 1 (biases (D, 8H) and per-row scales (D, 4H) are not matrices)."""
    from onnx import TensorProto

    weights = {t.name for t in model.graph.initializer
               if t.data_type == TensorProto.FLOAT and sum(d > 1 for d in t.dims) >= 2}
    return [{"name": n.name, "op_type": n.op_type} for n in model.graph.node
            if weights.intersection(n.input)]


def write_gated(variant, out, ort_format, force, gate, what):
    """``gate(path)`` of ``variant`` saved beside ``out``, renamed to ``out`` if it passes."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with writing(out) as tmp:
        save(variant, tmp, ort_format)
        report = gate(tmp)
        if not report["passed"] and not force:
            raise GateError(f"{what} fails its gate: "
                            f"{'; '.join(report['failures'])}; nothing was written "
                            f"(--force writes it anyway)")
        # the file evaluated differs from the one written by this one metadata string
        set_props(variant, {"rnnedge.variant_gate": json.dumps(report, sort_keys=True)})
        save(variant, tmp, ort_format)
    return report
