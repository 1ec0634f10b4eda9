"""Your own recurrent model in: a PyTorch module -> one checked, self-describing ONNX file.

``export_model`` exports through ``torch.onnx.export`` (TorchScript or dynamo, falling
back to the other where one fails), makes the file self-contained, runs the parity gate
of ``gate.py`` against the module, writes the ``rnnedge.*`` metadata (signature, states,
lengths, golden bundle) and only then renames the file into place: a refused export
leaves nothing behind. Which exporter suits an RNN on torch 2.13 (measured): TorchScript
writes native ONNX ``LSTM``/``GRU``/``RNN`` nodes with a dynamic time axis in ~0.1 s;
``torch.export`` decomposes ``aten.lstm``/``gru``/``rnn`` step by step and so specializes
the time axis to the example's length (the gate refuses such a file), and it rejects
packed sequences and ScriptModules. So recurrent modules try TorchScript first (with the
GRUCell/RNNCell symbolics of ``scripted_cells.py``), others dynamo first. Before either
runs, the module runs once on the example, so that its own errors are named as its own
(``user_code.py``); dict and tuple inputs and outputs are flattened (``nested.py``); and
the shortest time length it takes is found (``gate.shortest_time``). What was inferred
(the lengths input, the time axis) is said in ``ExportReport.notes``. The exporters'
warnings and chatter are kept off the terminal (``capture.py``) and handed back in
``ExportReport.exporter_output``. This module does not build graphs by hand (``graph.py``
does, for rnnedge's own models).
"""

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from rnnedge.runtime.atomic import temp_dir, writing
from rnnedge.runtime.errors import InputError, ModelFileError, ParityError, first_line
from rnnedge.runtime.tolerances import FP32

from . import gate, nested
from .capture import exporter_output
from .refusal import exporter_line, no_exporter, refused
from .scripted_cells import scripted_cells
from .user_code import UserExit, forward

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
    shapes: list = field(default_factory=list)  # [(batch, time)] the gate ran; time None if fixed
    min_time: int | None = None  # the shortest time length the gate ran; None: time is fixed
    notes: list = field(default_factory=list)  # what was inferred, each a sentence

    @property
    def max_abs(self):
        return max((c["max_abs"] for c in self.checked), default=0.0)


def export_model(module, example_inputs, out, *, input_names, output_names, dynamic_axes,
                 states=None, lengths=None, min_time=None, metadata=None, opset=None,
                 exporter="auto", tol=FP32, require_recurrent=True, sources=(), kind=None,
                 check=None):
    """Export ``module`` to ``out`` (one self-contained ONNX file) once it passes the parity gate.

    ``example_inputs``: forward's arguments, tensors or tuples/lists/dicts of tensors; each
    tensor is one ONNX input, named by ``input_names`` in order (dict entries by their keys;
    a returned dict's entries are named by their keys in ``output_names`` too).
    ``lengths``: the input holding each row's true length; None takes the one int64 (batch,)
    input whose name contains "len", and the report says so. ``min_time``: the shortest
    time length the module takes (a front end such as ``MaxPool1d(2)`` needs 2); None finds
    it by running the module at 1, 2, 4, ... steps. A one-step model (a decoder step: token
    (B, 1) and state in, logits and state out) names no time axis and gives the example a
    time length of 1; the gate then varies batch only. ``require_recurrent=False`` exports a
    module with no recurrent layer or cell, or with no time axis at all.
    ``sources`` names files the export must not overwrite (the module's code, its weights).
    ``kind``: rnnedge's own kinds exported through this gate (a series classifier) hand in
    ``{"kind", "config", "vocab", "metrics", "provenance"}`` for the file's schema; None is a
    user's module. ``check(path)``: a last check of the written file, before it is published.
    """
    from .user_spec import check_out, io_spec

    flat = nested.flat_inputs(example_inputs, input_names)
    spec = io_spec(flat, input_names, output_names, dynamic_axes, states, lengths, min_time)
    user = _user_metadata(metadata)
    out = check_out(out, sources)
    if require_recurrent and not gate.layer_names(module) & set(gate.RECURRENT_LAYERS):
        raise InputError(f"{type(module).__name__} has no nn.LSTM/GRU/RNN layer or cell: rnnedge "
                         f"is for recurrent models; pass require_recurrent=False to export it anyway")
    if opset is not None and opset < MIN_OPSET["torchscript"]:
        raise InputError(f"opset must be >= {MIN_OPSET['torchscript']} (ONNX LSTM/GRU/RNN as "
                         f"rnnedge's runtime reads them), not {opset}")
    notes = _lengths_note(spec, lengths) + _fixed_time_note(spec, require_recurrent)
    order = _order(module, exporter)
    training = module.training
    module.eval()
    try:
        with temp_dir(out) as tmpdir:
            with exporter_output() as noise:  # PyTorch warns in forward too (oneDNN, packing)
                runnable = _runnable(module, example_inputs, spec)
                spec, time_notes = _shortest_time(runnable, spec, min_time)
                expected = gate.module_cases(runnable, spec)
                report, model = _export_checked(runnable, flat, spec, tmpdir, opset, order, tol,
                                                dynamic_axes, expected)
            report.path, report.exporter_output = out, list(noise)
            report.notes = notes + time_notes
            report.min_time = spec.min_time if spec.size("time") else None
            set_props(model, _props(module, spec, report, model, user, tol, kind or {}))
            _write(model, out, check)
    finally:
        module.train(training)
    return report


def _lengths_note(spec, lengths):
    if lengths is not None or spec.lengths is None:
        return []
    return [f"lengths: taken from the input named {spec.lengths} (an int64 (batch,) input); "
            f"pass lengths=... to choose another"]


def _fixed_time_note(spec, require_recurrent):
    """The note of a time length fixed at 1; refuses a recurrent model with no time axis."""
    from .user_spec import one_step_input

    if spec.size("time") is not None:
        return []
    fixed = one_step_input(spec)
    if fixed:
        return [f"time: fixed at 1 (no input names a time axis and {fixed!r} has a 1 after its "
                f"batch axis: a one-step model), so the gate varied batch only"]
    if not require_recurrent:
        return []
    raise InputError(f"dynamic_axes names no time axis; a recurrent model's sequence input has "
                     f"one: name it, e.g. {{{spec.inputs[0]!r}: {{0: 'batch', 1: 'time'}}}}; a "
                     f"one-step model (a decoder step) instead gives its step input a time length "
                     f"of 1 after the batch axis (--input tokens:int64[batch,1])")


def _runnable(module, example_inputs, spec):
    """The module as exporters take it, flat tensors in and out (``nested.py``), once it has
    run on the example: an error there is the module's, not an exporter's."""
    import torch

    with torch.no_grad(), forward(spec.inputs, [spec.examples[n] for n in spec.inputs],
                                  lambda: gate.hints(spec)):
        result = module(*example_inputs)
    if nested.is_flat(example_inputs, result):
        return module
    nested.check_output_names(result, spec.outputs)
    return nested.flat_module(module, example_inputs).eval()


def _shortest_time(module, spec, min_time):
    """(spec with its ``min_time``, notes): ``min_time`` as given (already in ``spec``), else
    the shortest time the module runs at (``gate.shortest_time``)."""
    if spec.size("time") is None:
        return spec, []
    if min_time is not None:  # io_spec checked it
        return spec, [f"time: min_time={min_time} given, so the gate ran time lengths of "
                      f"{min_time} and more"]
    shortest, raised = gate.shortest_time(module, spec)
    if raised is None:
        return spec, []
    cause = f"{type(raised.cause).__name__}: {first_line(raised.cause)[:200]}"
    return replace(spec, min_time=shortest), [
        f"time: the module raised at time 1 ({cause}) and runs at {shortest}, so the gate ran "
        f"time lengths of {shortest} and more; pass min_time=... (--min-time) to set it",
        *gate.hints(spec)]


def _order(module, exporter):
    if exporter in EXPORTERS:
        return [exporter]
    if exporter != "auto":
        raise InputError(f"exporter must be auto, {' or '.join(EXPORTERS)}, not {exporter!r}")
    import torch

    scripted = isinstance(module, torch.jit.ScriptModule)
    recurrent = gate.layer_names(module) & set(gate.RECURRENT_LAYERS)
    return list(EXPORTERS) if scripted or recurrent else list(EXPORTERS[::-1])


def _export_checked(module, example_inputs, spec, tmpdir, opset, order, tol, dynamic_axes,
                    expected):
    """(ExportReport, passed ModelProto) from the first exporter whose file passes the gate
    (``expected``: ``gate.module_cases``)."""
    skipped, failed, refusal = {}, {}, None
    for name in order:
        try:
            model, used_opset = run_exporter(name, module, example_inputs, spec, tmpdir / name,
                                             opset, dynamic_axes)
            passed = gate.check(model, module, spec, name, tol, expected=expected)
        except ParityError as exc:
            causes = [line for line in str(exc).splitlines() if line.startswith("likely cause")]
            skipped[name] = f"refused by the parity gate ({'; '.join(causes) or exporter_line(exc)})"
            refusal = refusal or exc
            continue
        except (ModelFileError, InputError, KeyboardInterrupt):  # the file's or the user's
            raise
        except SystemExit as exc:  # the module's forward exited while an exporter ran it
            raise UserExit("your module", exc.code, f"the {name} exporter ran its forward") from None
        except Exception as exc:  # exporters raise many types (TorchExportError, RuntimeError...)
            failed[name] = f"{type(exc).__name__}: {exporter_line(exc)}"
            skipped[name] = f"failed: {failed[name]}"
            continue
        for other in EXPORTERS:
            skipped.setdefault(other, f"not tried: {name} was tried first and passed")
        del skipped[name]
        golden = [{n: list(a.shape) for n, a in c.inputs.items()} for c in passed.golden]
        shapes = [(b, t if spec.size("time") else None) for b, t in passed.shapes]
        return ExportReport(None, name, used_opset, skipped, passed.rewrites, passed.checked,
                            golden, passed.golden, shapes=shapes), passed.model
    if refusal is not None:
        raise refused(refusal, skipped, failed) from refusal
    raise no_exporter(skipped, failed)


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
        with scripted_cells(opset):
            torch.onnx.export(module, tuple(example_inputs), str(path), dynamo=False,
                              dynamic_axes=dynamic_axes, **common)
    else:
        torch.onnx.export(module, tuple(example_inputs), str(path), dynamo=True, verbose=False,
                          dynamic_shapes=dynamic_shapes(spec, dynamic_axes, module), **common)
    model = self_contained(path)
    name_axes(model, dynamic_axes)
    return model, opset


def dynamic_shapes(spec, dynamic_axes, module=None):
    """torch.export's dynamic_shapes (a tuple in forward's order) from ``dynamic_axes``; one
    level deeper for a ``forward(*tensors)`` (the flattening wrapper of ``nested.py``)."""
    import inspect

    from torch.export import Dim

    dims = {}
    shapes = tuple({axis: dims.setdefault(str(n), Dim(str(n), min=1))
                    for axis, n in dynamic_axes.get(name, {}).items()} or None
                   for name in spec.inputs)
    params = list(inspect.signature(module.forward).parameters.values()) if module else []
    return (shapes,) if [p.kind for p in params] == [inspect.Parameter.VAR_POSITIONAL] else shapes


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
              "tolerance": tol.name, "checked": report.checked, "min_time": report.min_time,
              "notes": report.notes, "module": getattr(module, "original_name", type(module).__name__)}
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
