"""What a refused export tells the user: the parity report's likely causes, and the exporters' own refusals.

The gate's failures become one ``ParityError`` text (``failure_message``): each failing
output and shape, the max difference, then the likely cause (a time or batch axis frozen
by tracing). When no exporter passes, ``refused``/``no_exporter`` combine the exporters'
results so that the real cause comes first: an exporter that says it does not support a
layer ("Unsupported: ...") is named before another exporter's parity failures, which
follow from it. This module builds messages; it runs nothing.
"""

from rnnedge.runtime.errors import InputError, ParityError

FROZEN_TIME = ("the time axis was frozen at {n}: a Python loop over time was traced; "
               "use nn.LSTM, or torch.jit.script the loop")
FROZEN_BATCH = ("the batch axis was frozen at {n}: a batch size was traced as a constant "
                "(a literal size in torch.zeros/reshape/view); size tensors from the input, "
                "e.g. x.new_zeros(x.shape[0], hidden)")
# An exporter's refusal, recognised in its text -> the cause in the user's words.
KNOWN_REFUSALS = (
    ("LSTMs with projections", "LSTMs with projections (proj_size) are not supported by torch "
     "{torch}'s ONNX exporters (ONNX LSTM has no projection; the TorchScript exporter refuses "
     "them, the dynamo export computes something else): use proj_size=0 and an nn.Linear on "
     "the LSTM's output"),
)


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


def exporter_line(exc):
    """The first line of an exporter's error, past torch's "## Exception summary" header."""
    text = str(exc).strip()
    for marker in ("## Exception summary", "Exception summary"):
        if marker in text:
            text = text.split(marker, 1)[1].strip()
    return (text.splitlines() or [""])[0][:300]


def unsupported(failed):
    """The cause, in the user's words, of the first exporter that refused a feature of the
    module ("Unsupported: ..."); None when no exporter said so. ``failed``: {name: text}."""
    import torch

    for name, text in failed.items():
        if "unsupported" not in text.lower() and "not supported" not in text.lower():
            continue
        for marker, cause in KNOWN_REFUSALS:
            if marker in text:
                return cause.format(torch=".".join(torch.__version__.split(".")[:2]))
        return f"the {name} exporter does not support the module: {text}"
    return None


def refused(refusal, skipped, failed):
    """The ``ParityError`` when every exporter failed or was refused by the gate.

    ``refusal``: the gate's first refusal; ``skipped``: {exporter: why it was not used};
    ``failed``: {exporter: its error's text} of those that raised.
    """
    cause, text = unsupported(failed), str(refusal)
    others = "; ".join(f"{k} {v}" for k, v in skipped.items() if f"the {k} export" not in text)
    lines = ([cause] if cause else []) + [text] + ([f"the other exporter: {others}"] if others else [])
    error = ParityError("\n".join(lines))
    error.outcome = refusal.outcome
    return error


def no_exporter(skipped, failed):
    """The ``InputError`` when every exporter raised."""
    cause = unsupported(failed)
    text = "no exporter could export the module: " + "; ".join(f"{k} {v}" for k, v in skipped.items())
    return InputError(f"{cause}\n{text}" if cause else text)
