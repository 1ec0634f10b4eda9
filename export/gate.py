"""The parity gate of a user's export: onnxruntime against the PyTorch module, before the file exists.

As optimum's ``validate_model_outputs``: output names both ways, then dtypes, then
shapes, then values, at (batch, time) shapes the export never saw (the shortest time the
module takes, a time >= 3x the example's, batch 1, a larger batch), every failure
collected into one report. The shortest time is 1 unless the module raises there
(``shortest_time`` runs it at 1, 2, 4, ... first). Inputs are random with a fixed seed and
never zero; states are normal * 0.5; a lengths input gets padded batches of mixed lengths
in [1, time]. A failure raises ``ParityError`` naming the output, the shape, the max
difference and the likely cause (``refusal.py``). One defect has a safe rewrite: a GRU
node with ``linear_before_reset=0`` where the module uses PyTorch's GRU (which is ONNX
GRU with ``linear_before_reset=1``). This module runs the module and onnxruntime; it
writes no file.
"""

import copy
from dataclasses import dataclass, field

import numpy as np

from rnnedge.runtime.errors import InputError, ParityError
from rnnedge.runtime.golden import Case
from rnnedge.runtime.graph_model import axis_role
from rnnedge.runtime.tolerances import FP32, compare

from .refusal import failure_message
from .user_code import ModuleRaised, forward

GRU_LAYERS = ("GRU", "GRUCell")
RECURRENT_LAYERS = ("LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell")
GOLDEN_CASES = 3


def axis_kind(name):
    """"batch", "time" or None for an axis name of ``dynamic_axes`` (the runtime's one rule)."""
    return axis_role(str(name))


@dataclass(frozen=True)
class IOSpec:
    """What the gate needs to know of a model's inputs and outputs (built by ``user_model``)."""

    inputs: tuple  # names, in forward's order
    outputs: tuple
    examples: dict  # input name -> numpy example
    axes: dict  # input or output name -> {axis: "batch" | "time"}
    states: dict = field(default_factory=dict)
    lengths: str | None = None
    min_time: int = 1  # the shortest time length the gate runs

    def size(self, kind):
        """The example's batch or time size; None when no input has such an axis."""
        for name in self.inputs:
            for axis, k in self.axes.get(name, {}).items():
                if k == kind:
                    return self.examples[name].shape[axis]
        return None


@dataclass(frozen=True)
class Failure:
    batch: int | None  # None for a failure of the whole graph (an output name)
    time: int | None
    output: str
    kind: str  # "name", "run", "dtype", "shape" or "value"
    text: str
    max_abs: float | None = None
    shapes: tuple = ()  # (onnxruntime's, PyTorch's) for a shape failure


@dataclass
class Outcome:
    """One pass over the shapes: what was run, checked, and what failed."""

    shapes: list = field(default_factory=list)  # [(batch, time)] run
    checked: list = field(default_factory=list)  # [{"shapes", "max_abs", "max_rel"}]
    failures: list = field(default_factory=list)  # [Failure]

    @property
    def max_abs(self):
        return max((f.max_abs for f in self.failures if f.max_abs is not None), default=None)


@dataclass(frozen=True)
class Passed:
    model: object  # the onnx ModelProto, rewritten where a rewrite was applied
    checked: list
    rewrites: list
    golden: list  # [Case] of the smallest checked shapes
    shapes: list = field(default_factory=list)  # [(batch, time)] checked


def gate_shapes(batch, time, min_time=1):
    """(batch, time) shapes unlike the example's: the shortest time (``min_time``), >= 3x
    time, batch 1, a larger batch. A missing axis (None) keeps the example's size."""
    b, t, m = batch or 1, time or 1, min_time
    wanted = [(1, m), (b + 3, m), (1, t), (b, 2 * t + 3), (b + 3, 3 * t + 1),
              (b + 1, max(m, t // 2 + 1)), (1, 3 * t + 2)]
    shapes = []
    for shape in wanted:
        shape = (shape[0] if batch else b, shape[1] if time else t)
        if shape != (b, t) and shape not in shapes:
            shapes.append(shape)
    return shapes


def make_feeds(spec, batch, time, rng):
    """Random feeds at (batch, time): normal scaled like the example, ints in its range."""
    feeds = {}
    for name in spec.inputs:
        example = spec.examples[name]
        shape = list(example.shape)
        for axis, kind in spec.axes.get(name, {}).items():
            shape[axis] = batch if kind == "batch" else time
        feeds[name] = _random_like(example, shape, rng, name in spec.states)
    if spec.lengths:
        lengths = rng.integers(1, time + 1, batch)  # mixed, one full length per batch
        lengths[0] = time
        feeds[spec.lengths] = lengths.astype(spec.examples[spec.lengths].dtype)
    return feeds


def _random_like(example, shape, rng, is_state):
    if example.dtype == np.bool_:
        return rng.random(shape) < 0.5
    if np.issubdtype(example.dtype, np.integer):
        low, high = (int(example.min()), int(example.max())) if example.size else (0, 1)
        return rng.integers(low, high + 1, shape).astype(example.dtype)
    std = float(np.std(example)) if example.size > 1 else 1.0
    scale = 0.5 if is_state else (std if np.isfinite(std) and std > 0 else 1.0)
    return (scale * rng.standard_normal(shape)).astype(example.dtype)


def run_module(module, spec, feeds):
    """The module's outputs for numpy feeds, as {output name: numpy}."""
    import torch

    arrays = [feeds[n] for n in spec.inputs]
    with torch.no_grad(), forward(spec.inputs, arrays, lambda: hints(spec)):
        result = module(*(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays))
    flat = _flatten(result)
    if len(flat) != len(spec.outputs):
        raise InputError(f"the module returns {len(flat)} tensors but the outputs named are "
                         f"{len(spec.outputs)} ({', '.join(spec.outputs)}); name every output, "
                         f"in forward's order (--output NAME, once each)")
    return {name: t.detach().numpy() for name, t in zip(spec.outputs, flat)}


def hints(spec):
    """What to try when the module raised on the gate's inputs, one line each."""
    lines = []
    for name, example in spec.examples.items():
        if name != spec.lengths and example.ndim == 1 and np.issubdtype(example.dtype, np.integer):
            lines.append(f"if {name!r} holds each row's true length, pass lengths={name!r} "
                         f"(--lengths {name}): the gate then feeds lengths in [1, time]")
    if spec.size("time") == 1:
        lines.append("a one-step model (a decoder step) fixes its time length at 1: name no time "
                     "axis and give the example a time length of 1 (--input tokens:int64[batch,1])")
    return lines


def shortest_time(module, spec, seed=1):
    """(time, ``ModuleRaised`` or None): the shortest of 1, 2, 4, ... and the example's time
    length at which the module runs in PyTorch, and what it raised below that."""
    example, batch = spec.size("time"), spec.size("batch") or 1
    rng, first = np.random.default_rng(seed), None
    for time in [t for t in (2 ** k for k in range(example.bit_length())) if t < example] + [example]:
        try:
            run_module(module, spec, make_feeds(spec, batch, time, rng))
        except ModuleRaised as exc:
            first = first or exc
            if time == example:
                raise
            continue
        return time, first


def _flatten(result):
    if isinstance(result, (tuple, list)):
        return [t for item in result for t in _flatten(item)]
    if isinstance(result, dict):
        return [t for item in result.values() for t in _flatten(item)]
    return [result]


def session(model):
    """An onnxruntime CPU session on one thread for an in-memory ModelProto."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 4  # the gate reports run failures itself
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def run_cases(model, spec, cases, tol=FP32):
    """Compare onnxruntime with the expected outputs of each (batch, time, feeds, expected)."""
    outcome = Outcome()
    sess = session(model)
    names = [o.name for o in sess.get_outputs()]
    for name in sorted(set(spec.outputs) - set(names)):
        outcome.failures.append(Failure(None, None, name, "name", "missing from the ONNX graph"))
    for name in sorted(set(names) - set(spec.outputs)):
        outcome.failures.append(Failure(None, None, name, "name", "in the ONNX graph, not in output_names"))
    if outcome.failures:
        return outcome
    for batch, time, feeds, expected in cases:
        _compare_case(sess, names, spec, batch, time, feeds, expected, tol, outcome)
    return outcome


def _compare_case(sess, names, spec, batch, time, feeds, expected, tol, outcome):
    outcome.shapes.append((batch, time))
    try:
        actual = dict(zip(names, sess.run(names, feeds)))
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidArgument types
        text = " ".join(str(exc).split())[:240]
        outcome.failures.append(Failure(batch, time, "*", "run", f"onnxruntime failed: {text}"))
        return
    worst_abs = worst_rel = 0.0
    for name in spec.outputs:
        got, want = np.asarray(actual[name]), expected[name]
        if got.dtype != want.dtype:
            outcome.failures.append(Failure(batch, time, name, "dtype",
                                            f"dtype {got.dtype}, PyTorch {want.dtype}"))
        elif got.shape != want.shape:
            outcome.failures.append(Failure(batch, time, name, "shape", f"shape {got.shape}, "
                                            f"PyTorch {want.shape}", shapes=(got.shape, want.shape)))
        else:
            diff = compare(name, got, want, tol)
            worst_abs, worst_rel = max(worst_abs, diff.max_abs), max(worst_rel, diff.max_rel)
            if not diff.ok:
                outcome.failures.append(Failure(batch, time, name, "value", f"shape {got.shape}: {diff}",
                                                diff.max_abs))
    outcome.checked.append({"shapes": {n: list(feeds[n].shape) for n in spec.inputs},
                            "max_abs": worst_abs, "max_rel": worst_rel})


def lbr0_grus(model):
    """Names of GRU nodes with linear_before_reset=0 (ONNX's default when absent)."""
    import onnx

    def lbr(node):
        return next((onnx.helper.get_attribute_value(a) for a in node.attribute
                     if a.name == "linear_before_reset"), 0)

    return [n.name or n.output[0] for n in model.graph.node if n.op_type == "GRU" and lbr(n) == 0]


def set_lbr1(model):
    """A copy of ``model`` with linear_before_reset=1 on every GRU node."""
    import onnx

    fixed = copy.deepcopy(model)
    for node in fixed.graph.node:
        if node.op_type == "GRU":
            kept = [a for a in node.attribute if a.name != "linear_before_reset"]
            del node.attribute[:]
            node.attribute.extend(kept + [onnx.helper.make_attribute("linear_before_reset", 1)])
    return fixed


def layer_names(module):
    """Class names of the module's layers (a scripted layer reports its original name)."""
    return {getattr(m, "original_name", type(m).__name__) for m in module.modules()}


def module_cases(module, spec, seed=0):
    """[(batch, time, feeds, PyTorch's outputs)] at every gate shape: the module runs on them
    before any export, so that what it raises is named as its own."""
    rng = np.random.default_rng(seed)
    found = []
    for batch, time in gate_shapes(spec.size("batch"), spec.size("time"), spec.min_time):
        feeds = make_feeds(spec, batch, time, rng)
        found.append((batch, time, feeds, run_module(module, spec, feeds)))
    return found


def check(model, module, spec, exporter, tol=FP32, seed=0, expected=None):
    """``Passed`` when onnxruntime matches ``module`` at every gate shape; else ``ParityError``.
    ``expected``: the ``module_cases`` of ``module``, when they were made already."""
    cases = expected or module_cases(module, spec, seed)
    outcome, rewrites = run_cases(model, spec, cases, tol), []
    lbr0 = lbr0_grus(model) if outcome.failures and layer_names(module) & set(GRU_LAYERS) else []
    if lbr0:
        was = outcome.max_abs
        model = set_lbr1(model)
        outcome = run_cases(model, spec, cases, tol)
        rewrites.append(f"linear_before_reset 0 -> 1 on GRU node(s) {', '.join(lbr0)}: PyTorch's "
                        f"GRU is ONNX GRU with linear_before_reset=1"
                        + (f" (max abs diff before the rewrite {was:.3g})" if was is not None else ""))
    if outcome.failures:
        note = f" (after {rewrites[0]})" if rewrites else ""
        error = ParityError(failure_message(outcome, spec, model, exporter, tol, note))
        error.outcome = outcome
        raise error
    small = sorted(cases, key=lambda c: (c[0] * c[1], c[1]))[:GOLDEN_CASES]
    golden = [Case(dict(feeds), dict(expected)) for _, _, feeds, expected in small]
    return Passed(model, outcome.checked, rewrites, golden, outcome.shapes)
