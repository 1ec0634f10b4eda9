"""Your own recurrent model in: a PyTorch module -> one checked, self-describing ONNX file.

``export_model`` exports through ``torch.onnx.export`` (TorchScript or dynamo, falling
back to the other where one fails), makes the file self-contained, runs the parity gate
of ``gate.py`` against the module, writes the ``rnnedge.*`` metadata (signature, states,
lengths, golden bundle) and only then renames the file into place: a refused export
leaves nothing behind. Which exporter suits an RNN on torch 2.13 (measured): TorchScript
writes native ONNX ``LSTM``/``GRU``/``RNN`` nodes with a dynamic time axis in ~0.1 s;
``torch.export`` decomposes ``aten.lstm``/``gru``/``rnn`` step by step and so specializes
the time axis to the example's length (the gate refuses such a file), and it rejects
packed sequences and ScriptModules. So recurrent modules try TorchScript first, others
dynamo first. The exporters' warnings and chatter (Python warnings, and torch's C++ warnings,
which go to file descriptor 2 directly) are kept off the terminal (``exporter_output``) and
handed back in ``ExportReport.exporter_output``. This module does not build graphs by hand
(``graph.py`` does, for rnnedge's own models).
"""

import contextlib
import json
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from rnnedge.runtime.atomic import temp_dir, writing
from rnnedge.runtime.errors import InputError, ModelFileError, ParityError
from rnnedge.runtime.tolerances import FP32

from . import gate

EXPORTERS = ("torchscript", "dynamo")
MIN_OPSET = {"torchscript": 17, "dynamo": 18}
PROTOBUF_LIMIT = 2**31 - 1


@dataclass
class ExportReport:
    path: Path
    exporter: str  # "torchscript" | "dynamo"
    opset: int
    skipped: dict = field(default_factory=dict)  # other exporter -> why it did not write the file
    rewrites: list = field(default_factory=list)
    checked: list = field(default_factory=list)  # [{"shapes", "max_abs", "max_rel"}]
    golden_shapes: list = field(default_factory=list)  # input shapes of the golden cases
    golden: list = field(default_factory=list, repr=False)  # [runtime.golden.Case]
    exporter_output: list = field(default_factory=list, repr=False)  # lines kept off the terminal

    @property
    def max_abs(self):
        return max((c["max_abs"] for c in self.checked), default=0.0)


def export_model(module, example_inputs, out, *, input_names, output_names, dynamic_axes,
                 states=None, lengths=None, metadata=None, opset=None, exporter="auto", tol=FP32,
                 require_recurrent=True, sources=(), kind=None, check=None):
    """Export ``module`` to ``out`` (one self-contained ONNX file) once it passes the parity gate.

    ``sources`` names files the export must not overwrite (the module's code, its weights).
    ``kind``: rnnedge's own kinds exported through this gate (a series classifier) hand in
    ``{"kind", "config", "vocab", "metrics", "provenance"}`` for the file's schema; None is a
    user's module. ``check(path)``: a last check of the written file, before it is published.
    """
    from .user_spec import io_spec, check_out

    spec = io_spec(example_inputs, input_names, output_names, dynamic_axes, states, lengths)
    user = _user_metadata(metadata)
    out = check_out(out, sources)
    if require_recurrent and not gate.layer_names(module) & set(gate.RECURRENT_LAYERS):
        raise InputError(f"{type(module).__name__} has no nn.LSTM/GRU/RNN layer or cell: rnnedge "
                         f"is for recurrent models; pass require_recurrent=False to export it anyway")
    if opset is not None and opset < MIN_OPSET["torchscript"]:
        raise InputError(f"opset must be >= {MIN_OPSET['torchscript']} (ONNX LSTM/GRU/RNN as "
                         f"rnnedge's runtime reads them), not {opset}")
    if require_recurrent and spec.size("time") is None:
        raise InputError(f"dynamic_axes names no time axis; a recurrent model's sequence input has "
                         f"one: name it, e.g. {{{spec.inputs[0]!r}: {{0: 'batch', 1: 'time'}}}}")
    order = _order(module, exporter)
    training = module.training
    module.eval()
    try:
        with temp_dir(out) as tmpdir:
            with exporter_output() as noise:
                report, model = _export_checked(module, example_inputs, spec, tmpdir, opset,
                                                order, tol, dynamic_axes)
            report.path, report.exporter_output = out, list(noise)
            set_props(model, _props(module, spec, report, model, user, tol, kind or {}))
            _write(model, out, check)
    finally:
        module.train(training)
    return report


def _order(module, exporter):
    if exporter in EXPORTERS:
        return [exporter]
    if exporter != "auto":
        raise InputError(f"exporter must be auto, {' or '.join(EXPORTERS)}, not {exporter!r}")
    import torch

    scripted = isinstance(module, torch.jit.ScriptModule)
    recurrent = gate.layer_names(module) & set(gate.RECURRENT_LAYERS)
    return list(EXPORTERS) if scripted or recurrent else list(EXPORTERS[::-1])


def _export_checked(module, example_inputs, spec, tmpdir, opset, order, tol, dynamic_axes):
    """(ExportReport, passed ModelProto) from the first exporter whose file passes the gate."""
    skipped, refusal = {}, None
    for name in order:
        try:
            model, used_opset = run_exporter(name, module, example_inputs, spec, tmpdir / name,
                                             opset, dynamic_axes)
            passed = gate.check(model, module, spec, name, tol)
        except ParityError as exc:
            causes = [line for line in str(exc).splitlines() if line.startswith("likely cause")]
            skipped[name] = f"refused by the parity gate ({'; '.join(causes) or _first_line(exc)})"
            refusal = refusal or exc
            continue
        except (ModelFileError, InputError, KeyboardInterrupt):  # the file's or the user's
            raise
        except Exception as exc:  # exporters raise many types (TorchExportError, RuntimeError...)
            skipped[name] = f"failed: {type(exc).__name__}: {_first_line(exc)}"
            continue
        for other in EXPORTERS:
            skipped.setdefault(other, f"not tried: {name} was tried first and passed")
        del skipped[name]
        shapes = [{n: list(a.shape) for n, a in c.inputs.items()} for c in passed.golden]
        return ExportReport(None, name, used_opset, skipped, passed.rewrites, passed.checked,
                            shapes, passed.golden), passed.model
    if refusal is not None:
        others = "; ".join(f"{k} {v}" for k, v in skipped.items() if f"the {k} export" not in str(refusal))
        error = ParityError(str(refusal) + (f"\nthe other exporter: {others}" if others else ""))
        error.outcome = refusal.outcome
        raise error from refusal
    raise InputError("no exporter could export the module: "
                     + "; ".join(f"{k} {v}" for k, v in skipped.items()))


def _first_line(exc):
    text = str(exc).strip()
    for marker in ("## Exception summary", "Exception summary"):
        if marker in text:
            text = text.split(marker, 1)[1].strip()
    return (text.splitlines() or [""])[0][:300]


def run_exporter(name, module, example_inputs, spec, workdir, opset, dynamic_axes):
    """(self-contained ModelProto, opset) of one exporter run; raises what the exporter raises."""
    import torch

    workdir.mkdir()
    path = workdir / "model.onnx"
    opset = max(opset or MIN_OPSET[name], MIN_OPSET[name])
    common = dict(input_names=list(spec.inputs), output_names=list(spec.outputs), opset_version=opset)
    # The exporters warn about what the gate checks anyway (traced control flow, batch sizes
    # other than the example's); export_model keeps their warnings for --verbose.
    if name == "torchscript":
        torch.onnx.export(module, tuple(example_inputs), str(path), dynamo=False,
                          dynamic_axes=dynamic_axes, **common)
    else:
        torch.onnx.export(module, tuple(example_inputs), str(path), dynamo=True, verbose=False,
                          dynamic_shapes=dynamic_shapes(spec, dynamic_axes), **common)
    model = self_contained(path)
    name_axes(model, dynamic_axes)
    return model, opset


_CAPTURING = []  # the lines of the capture in progress, if any (``exporter_output``)


@contextlib.contextmanager
def exporter_output():
    """A list that receives, when the block ends, the Python warnings raised in it (each once)
    and the lines written to file descriptors 1 and 2 (torch's C++ warnings go there, past
    ``sys.stderr``), none of which reach the terminal. A block inside another one yields the
    outer block's list, filled when the outer block ends."""
    if _CAPTURING:
        yield _CAPTURING[-1]
        return
    lines = []
    _CAPTURING.append(lines)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    try:
        with tempfile.TemporaryFile() as sink, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for fd in saved:
                os.dup2(sink.fileno(), fd)
            try:
                yield lines
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                for fd, copy in saved.items():
                    os.dup2(copy, fd)
                lines.extend(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))
                sink.seek(0)
                lines.extend(line for line in sink.read().decode(errors="replace").splitlines()
                             if line.strip())
    finally:
        for copy in saved.values():
            os.close(copy)
        _CAPTURING.pop()


def dynamic_shapes(spec, dynamic_axes):
    """torch.export's dynamic_shapes (a tuple in forward's order) from ``dynamic_axes``."""
    from torch.export import Dim

    dims = {}
    return tuple({axis: dims.setdefault(str(n), Dim(str(n), min=1))
                  for axis, n in dynamic_axes.get(name, {}).items()} or None
                 for name in spec.inputs)


def self_contained(path):
    """The ModelProto at ``path`` with any external data loaded inline; refuses above 2 GB."""
    import onnx

    model = onnx.load(str(path), load_external_data=True)
    size = model.ByteSize()
    if size > PROTOBUF_LIMIT:
        raise ModelFileError(f"the exported model is {size / 2**30:.2f} GiB, above protobuf's 2 GB "
                             f"limit for one self-contained ONNX file; rnnedge writes single files "
                             f"only, so shrink the model (fewer or smaller layers)")
    return model


def name_axes(model, dynamic_axes):
    """Give graph inputs' and outputs' dynamic dims the names of ``dynamic_axes``.

    Only dims that are already symbolic are renamed: a dim the exporter fixed stays a
    number, so the gate sees a frozen axis instead of a graph that merely claims one.
    """
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        for axis, name in dynamic_axes.get(value.name, {}).items():
            if axis < len(dims) and (dims[axis].dim_param or not dims[axis].HasField("dim_value")):
                dims[axis].dim_param = str(name)


def signature(model):
    """{"inputs"/"outputs": [{"name", "dtype", "shape"}]} of the graph, dynamic dims by name."""
    import onnx

    def describe(v):
        t = v.type.tensor_type
        return {"name": v.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name,
                "shape": [d.dim_param or d.dim_value for d in t.shape.dim]}

    initializers = {i.name for i in model.graph.initializer}
    return {"inputs": [describe(v) for v in model.graph.input if v.name not in initializers],
            "outputs": [describe(v) for v in model.graph.output]}


def _user_metadata(metadata):
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, dict) or not all(isinstance(k, str) for k in metadata):
        raise InputError("metadata must be a dict with string keys")
    try:
        return json.dumps(metadata, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"metadata must be JSON-serialisable: {exc}") from exc


def _props(module, spec, report, model, user, tol, kind):
    from . import metadata

    export = {"exporter": report.exporter, "opset": report.opset, "rewrites": report.rewrites,
              "tolerance": tol.name, "checked": report.checked,
              "module": getattr(module, "original_name", type(module).__name__)}
    return metadata.props(kind.get("kind", "user"), signature=signature(model),
                          states=spec.states, golden=report.golden, export=export,
                          lengths=spec.lengths, user=user, config=kind.get("config"),
                          vocab=kind.get("vocab"), metrics=kind.get("metrics"),
                          provenance=kind.get("provenance"))


def set_props(model, props):
    """Replace the model's ``rnnedge.*`` metadata props with ``props``; keep the others."""
    kept = [p for p in model.metadata_props if not p.key.startswith("rnnedge.")]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def _write(model, out, check=None):
    """Check the model, save it as one file beside ``out``, run ``check(path)`` on that file
    (it raises to refuse it) and only then rename it to ``out``."""
    import onnx

    onnx.checker.check_model(model, full_check=True)
    with writing(out) as tmp:
        onnx.save(model, str(tmp))
        if check is not None:
            check(tmp)


def export_from_specs(model, out, *, weights=None, inputs=(), outputs=(), states=(), lengths=None,
                      metadata=None, exporter="auto", batch=2, time=10):
    """``rnnedge export --model``: the user's module from its file, examples from the specs.

    ``model`` is ``"path/to/file.py:factory"``; ``inputs`` are input specs
    (``parse_input_spec``), ``outputs`` the output names, ``states`` ``"in=out"`` pairs,
    ``metadata`` a dict or the path of a JSON file. Returns the ``ExportReport``.
    """
    from .user_spec import example_from_specs, load_user_module, parse_input_spec, parse_state_spec

    if not inputs or not outputs:
        raise InputError("--model needs at least one --input NAME:DTYPE[DIMS] and one --output NAME")
    specs = [parse_input_spec(text) for text in inputs]
    module = load_user_module(model, weights)
    example, axes = example_from_specs(specs, batch=batch, time=time, lengths=lengths)
    pairs = dict(parse_state_spec(text) for text in states)
    if isinstance(metadata, (str, Path)):
        try:
            metadata = json.loads(Path(metadata).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"--metadata {metadata}: not a readable JSON file ({exc})") from exc
    sources = [Path(model.rpartition(":")[0])] + ([Path(weights)] if weights else [])
    return export_model(module, example, out, input_names=[s[0] for s in specs],
                        output_names=list(outputs), dynamic_axes=axes, states=pairs or None,
                        lengths=lengths, metadata=metadata, exporter=exporter, sources=sources)
