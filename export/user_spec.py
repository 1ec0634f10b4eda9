"""What a user hands to ``export_model``, checked: names, axes, states, lengths, paths, modules.

Every check raises ``InputError`` saying what was wrong and what to do. Two things are
inferred when the user did not say, and the report says so: the lengths input (an int64
(batch,) input whose name contains "len"), and a time length fixed at 1 (no input names a
time axis and one has a literal 1 after its batch axis: a one-step model). The
command-line helpers live here too: loading a module from ``file.py:factory`` plus a
state_dict, and parsing ``feats:float32[batch,time,40]``, ``h=h_new``. This module exports
nothing and runs no model.
"""

import importlib.util
import re
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from rnnedge.runtime.errors import InputError, first_line, write_error

from .gate import IOSpec, axis_kind
from .user_code import running

# The dtypes an input spec may name, each with its width: "float" is float64 to numpy and
# float32 to torch, "int" and "long" int64 or int32 by platform, so they are refused.
DTYPES = ("float32", "float16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool")
AMBIGUOUS = {"float": "float32 (torch's float) or float64 (numpy's)", "int": "int64 or int32",
             "long": "int64 or int32", "uint": "uint8"}
ALIASES = {"double": "float64", "half": "float16"}  # the same width to numpy and torch
INPUT_SPEC = re.compile(r"^(?P<name>[A-Za-z_][\w.]*):(?P<dtype>\w+)\[(?P<dims>[^\]]*)\]"
                        r"(?:=(?P<low>-?\d+)\.\.(?P<high>-?\d+))?$")


def io_spec(example_inputs, input_names, output_names, dynamic_axes, states=None, lengths=None,
            min_time=None):
    """The gate's ``IOSpec`` of the export arguments (tensors), after every check of them;
    ``lengths`` None takes the input ``guess_lengths`` finds, if any."""
    examples = [np.asarray(t.detach().cpu().numpy()) for t in example_inputs]
    inputs, outputs = list(input_names), list(output_names)
    if len(inputs) != len(examples):
        raise InputError(f"input_names has {len(inputs)} names for {len(examples)} example inputs; "
                         f"name every input of forward, in order")
    for label, names in (("input_names", inputs), ("output_names", outputs)):
        if len(set(names)) != len(names) or not names:
            raise InputError(f"{label} must name at least one tensor, each once: {names}")
    axes = _axes(dynamic_axes or {}, inputs, outputs, dict(zip(inputs, examples)))
    states = dict(states or {})
    for key, value in states.items():
        if key not in inputs or value not in outputs:
            raise InputError(f"states maps an input to the output that carries it forward; "
                             f"{key!r}={value!r} needs {key!r} in input_names and {value!r} "
                             f"in output_names")
    if lengths is None:
        lengths = guess_lengths(dict(zip(inputs, examples)), axes, states)
    spec = IOSpec(tuple(inputs), tuple(outputs), dict(zip(inputs, examples)), axes, states, lengths)
    spec = replace(spec, min_time=_min_time(spec, min_time))
    _check_lengths(spec)
    _check_unnamed(spec)
    return spec


def _axes(dynamic_axes, inputs, outputs, examples):
    axes = {}
    for name, named in dynamic_axes.items():
        if name not in inputs and name not in outputs:
            raise InputError(f"dynamic_axes names {name!r}, which is neither an input nor an output")
        if not isinstance(named, dict):
            raise InputError(f"dynamic_axes[{name!r}] must map axis index to a name, "
                             f"e.g. {{0: 'batch', 1: 'time'}}")
        ndim = examples[name].ndim if name in examples else None
        for axis in named:
            if ndim is not None and not 0 <= axis < ndim:
                raise InputError(f"dynamic_axes[{name!r}] names axis {axis}; the example has {ndim}")
        axes[name] = {axis: kind for axis, n in named.items() if (kind := axis_kind(n))}
    return axes


def lengths_input(candidates):
    """The one input of ``[(name, dtype name, [axis kind, ...])]`` that holds true lengths:
    int64, of shape (batch,), its name containing "len" (lengths, seq_len, lens); else None."""
    found = [name for name, dtype, kinds in candidates
             if dtype == "int64" and list(kinds) == ["batch"] and "len" in name.lower()]
    return found[0] if len(found) == 1 else None


def guess_lengths(examples, axes, states):
    """``lengths_input`` of the examples (numpy) and the axis kinds of ``_axes``."""
    return lengths_input([(name, a.dtype.name, [axes.get(name, {}).get(i) for i in range(a.ndim)])
                          for name, a in examples.items() if name not in states])


def one_step_input(spec):
    """When no input names a time axis: an input (not a state) whose axis after its batch
    axis is a literal 1, which fixes the time length at 1 (a decoder step); else None."""
    if spec.size("time") is not None:
        return None
    for name in spec.inputs:
        shape = spec.examples[name].shape
        batch = [axis for axis, kind in spec.axes.get(name, {}).items() if kind == "batch"]
        if name not in spec.states and batch and batch[0] + 1 < len(shape) and shape[batch[0] + 1] == 1:
            return name
    return None


def _min_time(spec, min_time):
    """``min_time`` checked against the example's time length; 1 when not given."""
    time = spec.size("time")
    if min_time is None:
        return 1
    if time is None:
        raise InputError(f"min_time={min_time!r} needs a time axis, and no input names one")
    if not isinstance(min_time, int) or not 1 <= min_time <= time:
        raise InputError(f"min_time must be a whole number from 1 to the example's time length "
                         f"{time}, not {min_time!r}; give a longer example if needed")
    return min_time


def _check_lengths(spec):
    if spec.lengths is None:
        return
    example = spec.examples.get(spec.lengths)
    if example is None or not np.issubdtype(example.dtype, np.integer) or example.ndim != 1:
        raise InputError(f"lengths={spec.lengths!r} must name an integer (batch,) input of "
                         f"input_names holding each row's true length")
    time = spec.size("time")
    if time is None:
        raise InputError("a lengths input needs a time axis: name it in dynamic_axes, "
                         "e.g. {1: 'time'}")
    if example.size and (example.min() < 1 or example.max() > time):
        raise InputError(f"the example's {spec.lengths} holds {example.tolist()}: true lengths lie "
                         f"in [1, {time}] (the example's time length)")


def _check_unnamed(spec):
    """An input whose example has the batch or time size on an axis nobody named."""
    sizes = {kind: spec.size(kind) for kind in ("batch", "time")}
    if sizes["batch"] is None and sizes["time"] is None:
        raise InputError("dynamic_axes names no 'batch' or 'time' axis; name them, e.g. "
                         f"{{{spec.inputs[0]!r}: {{0: 'batch', 1: 'time'}}}}")
    for name in spec.inputs:
        named = spec.axes.get(name, {})
        for kind, n in sizes.items():
            if n is None or n == 1 or kind in named.values():  # a 1 is everywhere (layers, steps)
                continue
            axis = next((a for a, d in enumerate(spec.examples[name].shape) if d == n), None)
            if axis is not None:
                raise InputError(f"input {name!r} has the example's {kind} size {n} on axis "
                                 f"{axis}, which dynamic_axes does not name: add "
                                 f"{{{name!r}: {{{axis}: {kind!r}}}}}, or give the example "
                                 f"another {kind} size if that axis is not {kind}")


def check_out(out, sources=()):
    """``out`` as a Path whose folder exists; not a directory, not one of the user's files."""
    out = Path(out)
    if out.is_dir():
        raise InputError(f"out {out} is a directory; give the path of the .onnx file to write")
    for source in sources:
        source = Path(source)
        same = out.exists() and source.exists() and out.samefile(source)
        if same or out.resolve() == source.resolve():
            raise InputError(f"out {out} is {source}, one of the files the export reads; "
                             f"write the model elsewhere")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(out, exc) from exc
    return out


def load_user_module(spec, weights=None):
    """The nn.Module that ``"path/to/file.py:factory"`` builds, with a state_dict loaded."""
    import torch

    path, _, attr = str(spec).rpartition(":")
    if not path or not attr:
        raise InputError(f"module spec {spec!r} must read path/to/file.py:factory")
    path = Path(path)
    if path.is_dir():
        raise InputError(f"module file {path} is a directory; give path/to/file.py:factory")
    if not path.is_file():
        raise InputError(f"module file {path} does not exist")
    with running(spec, f"importing {path.name}"):
        factory = getattr(_import_file(path), attr, None)
    if factory is None or not callable(factory):
        raise InputError(f"{path} has no callable {attr!r}; name a function or class that "
                         f"returns the nn.Module")
    with running(spec, "building the module"):
        module = factory()
    if not isinstance(module, torch.nn.Module):
        raise InputError(f"{path}:{attr} returned {type(module).__name__}, not a torch.nn.Module")
    if weights is not None:
        _load_weights(module, Path(weights))
    return module.eval()


def _import_file(path):
    name = f"rnnedge_user_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InputError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up by name
    spec.loader.exec_module(module)
    return module


def _load_weights(module, path):
    import torch

    if path.is_dir():
        raise InputError(f"weights file {path} is a directory; give the file of a state_dict")
    if not path.is_file():
        raise InputError(f"weights file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors alike
        raise InputError(f"{path} is not a state_dict torch.load can read safely "
                         f"({type(exc).__name__}: {first_line(exc)}); save model.state_dict()") from exc
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise InputError(f"{path} holds {type(state).__name__}, not a state_dict")
    result = module.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise InputError(f"{path} does not fit the module: missing keys {_few(result.missing_keys)}"
                         f", unexpected keys {_few(result.unexpected_keys)}")


def _few(keys, n=8):
    keys = list(keys)
    return "none" if not keys else ", ".join(keys[:n]) + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def parse_input_spec(text):
    """``"feats:float32[batch,time,40]"`` -> ("feats", "float32", ["batch", "time", 40]).

    An integer input may end with its value range, ``tokens:int64[batch,time]=0..4999``;
    then the result has a fourth item, (low, high).
    """
    match = INPUT_SPEC.match(text.replace(" ", ""))
    if not match:
        raise InputError(f"input spec {text!r} must read name:dtype[dim,...], "
                         f"e.g. feats:float32[batch,time,40]")
    dtype = ALIASES.get(match["dtype"].lower(), match["dtype"].lower())
    if dtype in AMBIGUOUS:
        raise InputError(f"input spec {text!r}: dtype {match['dtype']!r} is ambiguous; write "
                         f"{AMBIGUOUS[dtype]} (accepted: {', '.join(DTYPES)})")
    if dtype not in DTYPES:
        raise InputError(f"input spec {text!r}: unknown dtype {match['dtype']!r}; accepted: "
                         f"{', '.join(DTYPES)}")
    dims = [int(d) if d.isdigit() else d for d in match["dims"].split(",") if d]
    if match["low"] is None:
        return match["name"], dtype, dims
    return match["name"], dtype, dims, (int(match["low"]), int(match["high"]))


def parse_state_spec(text):
    """``"h=h_new"`` -> ("h", "h_new"): a state input and the output that carries it forward."""
    name, _, new = text.partition("=")
    if not name.strip() or not new.strip():
        raise InputError(f"state spec {text!r} must read input=output, e.g. h=h_new")
    return name.strip(), new.strip()


def example_from_specs(specs, batch=2, time=10, lengths=None, seed=0):
    """(example tensors, dynamic_axes of the inputs) from parsed input specs.

    Named dims become axes: "batch" -> ``batch``, a time name -> ``time``; other names are
    refused. Floats are standard normal, integers uniform in their range ([0, 1] without
    one), and the ``lengths`` input holds true lengths (one full) in [1, time].
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    tensors, axes = [], {}
    for name, dtype, dims, *value_range in specs:
        shape = []
        for axis, dim in enumerate(dims):
            if isinstance(dim, int):
                shape.append(dim)
                continue
            kind = axis_kind(dim)
            if kind is None:
                raise InputError(f"input {name}: dim {dim!r} is neither batch nor time "
                                 f"(time, seq, sequence, length, frames); give a number")
            axes.setdefault(name, {})[axis] = dim
            shape.append(batch if kind == "batch" else time)
        tensors.append(_example(name, dtype, shape, value_range, name == lengths, time, generator))
    return tuple(tensors), axes


def _example(name, dtype, shape, value_range, is_lengths, time, generator):
    import torch

    torch_dtype = getattr(torch, dtype, None)
    if not isinstance(torch_dtype, torch.dtype):
        raise InputError(f"input {name}: dtype {dtype} has no torch equivalent")
    if is_lengths:
        values = torch.randint(1, time + 1, shape, generator=generator)
        values[..., 0] = time
        return values.to(torch_dtype)
    if torch_dtype.is_floating_point:
        return torch.randn(shape, generator=generator).to(torch_dtype)
    low, high = value_range[0] if value_range else (0, 1)
    return torch.randint(low, high + 1, shape, generator=generator).to(torch_dtype)
