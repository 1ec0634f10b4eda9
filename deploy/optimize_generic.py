"""``rnnedge optimize`` for any recurrent ONNX file: int8 variants behind a gate.

* ``--int8``: onnxruntime's dynamic quantization (``variants.quantize_int8``): LSTM nodes
  become ``DynamicQuantizeLSTM`` and MatMul/Gemm heads int8; onnxruntime quantizes no GRU or
  RNN node, and the report names those kept in fp32.
* ``--numba-int8``: the fp32 graph unchanged, gated as the numba ``fast-int8`` engine runs it
  (every LSTM, GRU and RNN node on int8 weights with per-row scales, quantized at load): the
  int8 path for GRU and RNN models.

The gate (``gate_generic.py``) runs source and variant on the golden bundle's inputs or the
user's ``--inputs`` file, on output agreement; a series classifier without ``--inputs`` is
gated on its accuracy on labelled frames instead (``gate_series.py``: ``--data``, default the
Japanese Vowels test split). Writing goes through ``variants.write_gated`` (atomic, only when
it passes unless ``force``).
"""

import json
from pathlib import Path

from rnnedge.runtime.errors import InputError, UnsupportedError
from rnnedge.runtime.files import sha256

from .gate_generic import GENERIC_GATES, gate_generic, read_inputs
from .evaluate import labelled_frames
from .gate_series import SERIES_GATES, gate_series
from .variants import (NUMBA_INT8_SETTINGS, build, fp32_weight_nodes, initializer_bytes, op_types,
                       set_props, write_gated)


def optimize_generic(source, out, proto, props, int8=False, fp16=False, ort_format=False,
                     numba_int8=False, force=False, inputs=None, gates=None, data=None,
                     data_dir=None, limit=None):
    """The variant of a generic file, written when it passes its gate; the report."""
    from rnnedge.runtime.golden import from_props
    from rnnedge.runtime.model import load

    if fp16 or ort_format:
        raise UnsupportedError("--fp16 and --ort-format are for rnnedge's own models; for your "
                               "own model use --int8 (onnxruntime) or --numba-int8")
    reference = load(source, engine="ort")
    by_accuracy = reference.task == "series" and inputs is None
    if data is not None and not by_accuracy:
        raise InputError("--data gates a series classifier on labelled frames; this file is not "
                         "one, or --inputs was given too")
    if by_accuracy:
        cases, judge = labelled_frames(reference, data, "test", data_dir, limit), gate_series
        gates = gates or SERIES_GATES
    else:
        cases = (read_inputs(inputs, reference.signature) if inputs
                 else [c.inputs for c in from_props(props)])
        judge, gates = gate_generic, gates or GENERIC_GATES
    if not cases:
        raise InputError(f"{source} has no golden bundle to gate on; give --inputs FILE.npz with "
                         f"real inputs ({', '.join(i['name'] for i in reference.signature['inputs'])})")
    variant, settings = build(proto, int8, False, numba_int8)
    name = "int8" if int8 else "numba-int8"
    report = {"source": str(source), "out": str(out), "variant": name, "task": "generic",
              "settings": settings, "source_bytes": Path(source).stat().st_size,
              "initializer_bytes": {"before": initializer_bytes(proto),
                                    "after": initializer_bytes(variant)},
              "op_types": {"before": op_types(proto), "after": op_types(variant)},
              "fp32_weight_nodes": fp32_weight_nodes(variant),
              "gate_inputs": (str(inputs) if inputs else cases[2] if by_accuracy
                              else "golden bundle")}
    set_props(variant, {"rnnedge.variant": name, "rnnedge.variant_of": sha256(source),
                        "rnnedge.variant_settings": json.dumps(settings, sort_keys=True)})
    engine = NUMBA_INT8_SETTINGS["engine"] if numba_int8 else "ort"

    def gate(path):
        return {**judge(reference, load(path, engine=engine), cases, gates),
                "engines": {"reference": "ort", "candidate": engine}}

    report["gate"] = write_gated(variant, Path(out), False, force, gate,
                                 f"the {name} variant of {source}")
    report["out_bytes"] = Path(out).stat().st_size
    return report


def summary_lines(gate):
    """The gate's lines of ``rnnedge optimize``'s summary."""
    if "drop_points" in gate:
        from .gate_series import summary_lines as series_lines

        return series_lines(gate)
    rows = []
    for name, o in gate["outputs"].items():
        agree = (f", argmax agrees on {o['argmax_agreement']:.2%}" if "argmax_agreement" in o else "")
        rows.append(f"  {name}: max abs {o['max_abs']:.3g} ({o['range_error']:.2%} of its range){agree}")
    on = gate["engines"]["candidate"]
    return [f"gate on {gate['cases']} input case(s), fp32 ort -> {on} (at most "
            f"{gate['max_range_error']:.0%} of each output's range, argmax agreement at least "
            f"{gate['min_argmax_agreement']:.0%}):"] + rows
