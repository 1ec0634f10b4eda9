"""The parity gate of a user's export: onnxruntime against the PyTorch module, before the file exists.

As optimum's ``validate_model_outputs``: output names both ways, then dtypes, then
shapes, then values, at (batch, time) shapes the export never saw (time 1, a time >= 3x
the example's, batch 1, a larger batch), every failure collected into one report.
Inputs are random with a fixed seed and never zero; states are normal * 0.5; a lengths
input gets padded batches of mixed lengths. A failure raises ``ParityError`` naming the
output, the shape, the max difference and the likely cause (a frozen time or batch
axis). One defect has a safe rewrite: a GRU node with ``linear_before_reset=0`` where
the module uses PyTorch's GRU (which is ONNX GRU with ``linear_before_reset=1``).
This module runs the module and onnxruntime; it writes no file.
"""

import copy
from dataclasses import dataclass, field

import numpy as np

from rnnedge.runtime.errors import InputError, ParityError, first_line
from rnnedge.runtime.golden import Case
from rnnedge.runtime.graph_model import axis_role
from rnnedge.runtime.tolerances import FP32, compare

GRU_LAYERS = ("GRU", "GRUCell")
RECURRENT_LAYERS = ("LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell")
GOLDEN_CASES = 3
FROZEN_TIME = ("the time axis was frozen at {n}: a Python loop over time was traced; "
               "use nn.LSTM, or torch.jit.script the loop")
FROZEN_BATCH = ("the batch axis was frozen at {n}: a batch size was traced as a constant "
                "(a literal size in torch.zeros/reshape/view); size tensors from the input, "
                "e.g. x.new_zeros(x.shape[0], hidden)")


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


def gate_shapes(batch, time):
    """(batch, time) shapes unlike the example's: time 1, >= 3x time, batch 1, a larger batch."""
    b, t = batch or 1, time or 1
    wanted = [(1, 1), (b + 3, 1), (1, t), (b, 2 * t + 3), (b + 3, 3 * t + 1), (b + 1, t // 2 + 1),
              (1, 3 * t + 2)]
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

    try:
        with torch.no_grad():
            result = module(*(torch.from_numpy(np.ascontiguousarray(feeds[n]))
                              for n in spec.inputs))
    except Exception as exc:  # the module's own error, on inputs the gate made: say which
        shapes = ", ".join(f"{n} {feeds[n].dtype}{list(feeds[n].shape)}" for n in spec.inputs)
        raise InputError(f"the module raised {type(exc).__name__} on the gate's inputs {shapes}: "
                         f"{first_line(exc)}; the gate runs several batch and time sizes, time 1 "
                         f"among them") from exc
    flat = _flatten(result)
    if len(flat) != len(spec.outputs):
        raise InputError(f"the module returns {len(flat)} tensors but the outputs named are "
                         f"{len(spec.outputs)} ({', '.join(spec.outputs)}); name every output, "
                         f"in forward's order (--output NAME, once each)")
    return {name: t.detach().numpy() for name, t in zip(spec.outputs, flat)}


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


def frozen_inputs(model, spec):
    """{kind: graph input name} of inputs whose batch/time axis is a number, not a name."""
    frozen = {}
    for value in model.graph.input:
        dims = value.type.tensor_type.shape.dim
        for axis, kind in spec.axes.get(value.name, {}).items():
            if axis < len(dims) and not dims[axis].dim_param and dims[axis].dim_value > 0:
                frozen.setdefault(kind, value.name)
    return frozen


def diagnose(outcome, spec, model):
    """Likely causes of the failures: frozen axes first, then a generic hint."""
    causes, fixed = [], frozen_inputs(model, spec)
    for kind, template in (("time", FROZEN_TIME), ("batch", FROZEN_BATCH)):
        n = spec.size(kind)
        if n is None:
            continue
        if kind in fixed:
            causes.append(template.format(n=n) + f" (the graph input {fixed[kind]!r} has a fixed "
                          f"{kind} of {n} although dynamic_axes names it)")
        elif _stuck_shape(outcome, spec, kind, n) or _fails_off(outcome, kind, n):
            causes.append(template.format(n=n))
    if not causes and any(f.kind == "value" for f in outcome.failures):
        causes.append("values differ beyond the tolerance: an operator was translated "
                      "differently, or the module behaves differently in eval mode")
    return causes or ["the graph does not follow the module's signature"]


def _stuck_shape(outcome, spec, kind, n):
    """An output's batch/time dim stayed at the example's size where PyTorch's moved."""
    for f in outcome.failures:
        if f.kind == "shape":
            got, want = f.shapes
            for axis, k in spec.axes.get(f.output, {}).items():
                if k == kind and axis < len(got) and got[axis] == n != want[axis]:
                    return True
    return False


def _fails_off(outcome, kind, n):
    """Every failing shape differs from the example in this axis, and a shape at it passed."""
    index = 0 if kind == "batch" else 1
    failing = {(f.batch, f.time) for f in outcome.failures if f.batch is not None}
    passed = [s for s in outcome.shapes if s not in failing]
    return (bool(failing) and any(s[index] == n for s in passed)
            and all(s[index] != n for s in failing))


def failure_message(outcome, spec, model, exporter, tol, note=""):
    lines = [f"the {exporter} export does not match PyTorch ({tol.name}, "
             f"{len(outcome.failures)} failure(s)){note}:"]
    for f in outcome.failures[:12]:
        where = f" at batch={f.batch} time={f.time}" if f.batch is not None else ""
        lines.append(f"  - output {f.output!r}{where}: {f.text}")
    if len(outcome.failures) > 12:
        lines.append(f"  - ... and {len(outcome.failures) - 12} more")
    worst = outcome.max_abs
    lines.append(f"max abs diff {worst:.3g}" if worst is not None
                 else "max abs diff: n/a (no output had comparable values)")
    lines += [f"likely cause: {cause}" for cause in diagnose(outcome, spec, model)]
    return "\n".join(lines)


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


def check(model, module, spec, exporter, tol=FP32, seed=0):
    """``Passed`` when onnxruntime matches ``module`` at every gate shape; else ``ParityError``."""
    rng = np.random.default_rng(seed)
    cases = []
    for batch, time in gate_shapes(spec.size("batch"), spec.size("time")):
        feeds = make_feeds(spec, batch, time, rng)
        cases.append((batch, time, feeds, run_module(module, spec, feeds)))
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
    return Passed(model, outcome.checked, rewrites, golden)
