"""``rnnedge verify``: every engine against onnxruntime, PyTorch's golden outputs and the
checkpoint, for every kind of file; every failure collected into one report of ``Diff`` rows.

1. node level: each LSTM/GRU/RNN node on the numba reference (``run_node``) against
   onnxruntime's own tensors at that node;
2. whole graph: every engine (``ort``, ``numba``, ``fast``, ``fast-int8``) on the golden
   bundle's inputs and the kind's real data (``kinds.py``: Hamlet windows, IMDb reviews),
   against onnxruntime, at the tolerance of the precision each computes in;
3. every engine against the golden bundle, the outputs PyTorch computed at export
   (``rnnedge.golden``): what catches an exporter that wrote the spec's math but not the
   module's (a GRU with ``linear_before_reset=0``), which the first two cannot;
4. PyTorch from the source checkpoint, when the caller hands it in (``reference``: the
   command line does so for ``--checkpoint``), against every engine;
5. streaming: with state pairs and a time axis, frame by frame equals whole on each engine;
   a classifier's labels agree between fp32 engines on every real case.

Without a golden bundle (a file rnnedge did not export) inputs are random, from the
signature, and check 3 is reported as skipped. An engine that cannot load or run the file
(an operator or attribute it lacks) is a failed row of its own, ``engine NAME``, unless the
caller allows skips (``--allow-skip``). Torch-free: PyTorch is handed in.
"""

import math

import numpy as np

from rnnedge.runtime.engines import ENGINES
from rnnedge.runtime.errors import UnsupportedError
from rnnedge.runtime.graph_model import is_time_axis
from rnnedge.runtime.parity import compare_outputs
from rnnedge.runtime.tolerances import FP32, Diff

from .kinds import ADAPTERS, agreement
from .makers import load_engines, random_feeds, tolerance

RECURRENT = ("LSTM", "GRU", "RNN")


def verify(model_path, reference=None, data_dir=None, notes=None, engines=ENGINES, seed=0,
           limit=None, allow_skip=False, skipped=None):
    """The parity rows of any model file (the caller decides the exit code); checks left out,
    and why, are appended to ``notes``. ``reference``: PyTorch's ``run(feeds) -> outputs``;
    ``limit``: real cases read (reviews), default the kind's own.

    An engine that cannot load or run the file goes to ``skipped`` (engine -> why) and gives
    a failed row, ``engine NAME``, saying why; with ``allow_skip`` it gives no row."""
    from rnnedge.runtime.files import read_onnx
    from rnnedge.runtime.golden import check_fits, from_props
    from rnnedge.runtime.metadata import read_metadata
    from rnnedge.runtime.quiet import Stages

    stage = Stages("verify")
    notes = [] if notes is None else notes
    skipped = {} if skipped is None else skipped
    proto = read_onnx(model_path)
    meta = read_metadata(proto, model_path)
    models = load_engines(model_path, engines, skipped)
    cores = {name: m.core for name, m in models.items()}
    adapter = ADAPTERS[meta.kind]
    cases = from_props(meta.props)
    check_fits(cases, cores["ort"].signature, model_path)
    feeds = {f"golden case {k}": [c.inputs] for k, c in enumerate(cases)}
    if not cases:
        named = {"layers": meta.config.get("num_layers")}  # a format-1 char model's state axis
        feeds = {f"random case {k}": [f] for k, f in
                 enumerate(random_feeds(cores["ort"].signature, seed, named=named))}
        notes.append("no golden bundle (rnnedge.golden): engines are compared with each other on "
                     "random inputs only; export with rnnedge to check against PyTorch")
    feeds.update(adapter.real_feeds(models["ort"], data_dir, notes, limit))
    diffs = node_level(proto, next(iter(feeds.values()))[0])
    for label, group in feeds.items():
        stage(f"{label} on {', '.join(cores)}")
        outs = run_engines(cores, group, skipped)
        diffs += _against(label, outs, "ort", outs["ort"])
        if label.startswith("golden"):
            diffs += _against(label, outs, "golden (PyTorch)", cases[int(label.split()[-1])].outputs)
        if adapter.label_output and not label.startswith(("golden", "random")):
            diffs += [agreement(f"{label} {name} vs ort", adapter.label_output, out, outs["ort"])
                      for name, out in outs.items() if name not in ("ort", "fast-int8")]
    if reference is not None:
        stage("PyTorch from the checkpoint")
        diffs += against_reference(reference, cores, adapter.reference_feeds(models["ort"]) or feeds,
                                   adapter.label_output)
    stage("streamed against whole sequences")
    for name, core in cores.items():
        diffs += streamed_vs_whole(core, next(iter(feeds.values()))[0], name, notes)
    return ([] if allow_skip else [could_not_run(n, why) for n, why in skipped.items()]) + diffs


def could_not_run(engine, why):
    """The failed row of an engine that cannot load or run the file."""
    return Diff(f"engine {engine}", math.nan, math.nan, (), False, tolerance(engine), "engine",
                f"could not run the file: {why}")


def run_engines(cores, group, skipped):
    """{engine: outputs} over the feeds of ``group``, batch after batch; an engine that
    refuses them (``UnsupportedError`` at run) leaves ``cores`` for ``skipped``."""
    outs = {}
    for name, core in list(cores.items()):
        try:
            outs[name] = _concat([core.run(f) for f in group])
        except UnsupportedError as exc:
            if name == "ort":
                raise
            skipped[name] = str(exc)
            del cores[name]
    return outs


def _against(label, outs, what, expected):
    """Each engine's outputs (but ``what``'s own) against ``expected``, at its tolerance."""
    return [d for name, out in outs.items() if name != what
            for d in compare_outputs(f"{label} {name} vs {what}", out, expected, tolerance(name))]


def against_reference(reference, cores, feeds, label_output=None):
    """Every engine against PyTorch from the checkpoint, on the outputs PyTorch gives; a
    classifier's labels on real cases too (``label_output``)."""
    diffs = []
    for label, group in feeds.items():
        expected = _concat([reference(f) for f in group])
        outs = {name: _concat([core.run(f) for f in group]) for name, core in cores.items()}
        diffs += _against(label, {n: {k: o[k] for k in expected} for n, o in outs.items()},
                          "torch", expected)
        if label_output and not label.startswith(("golden", "random")):
            diffs += [agreement(f"{label} {name} vs torch", label_output, out, expected)
                      for name, out in outs.items() if name != "fast-int8"]
    return diffs


def _concat(outs):
    """One output dict of several batches (batch first); a single batch as it is."""
    if len(outs) == 1:
        return outs[0]
    return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}


def node_level(proto, feed, tol=FP32):
    """Each recurrent node on ``run_node`` against onnxruntime's tensors at that node."""
    import onnx
    import onnxruntime as rt

    from rnnedge.runtime.reference import run_node

    nodes = [n for n in proto.graph.node if n.op_type in RECURRENT]
    if not nodes:
        return []
    constants = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    exposed = onnx.shape_inference.infer_shapes(proto)
    known = {v.name for v in exposed.graph.output} | set(feed)
    typed = {v.name: v for v in list(exposed.graph.value_info)}
    wanted = [n for node in nodes for n in list(node.input) + list(node.output)
              if n and n not in constants and n not in known]
    for name in dict.fromkeys(wanted):
        exposed.graph.output.append(typed.get(name) or onnx.helper.make_empty_tensor_value_info(name))
    session = rt.InferenceSession(exposed.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    tensors = {**feed, **constants, **dict(zip(names, session.run(names, feed)))}
    diffs = []
    for node in nodes:
        got = run_node(node, [tensors[n] if n else None for n in node.input])
        actual = {f"{node.name or node.op_type} {o}": g for o, g in zip(node.output, got) if o}
        expected = {f"{node.name or node.op_type} {o}": tensors[o] for o in node.output if o}
        diffs += compare_outputs(f"node {node.op_type} reference vs ort", actual, expected, tol)
    return diffs


def streamed_vs_whole(model, feed, name, notes):
    """Feed ``feed`` frame by frame through ``stream()``; compare with one call."""
    if not model.states:
        if name == "ort":
            notes.append("streaming not checked: the model has no state pairs (it reads whole "
                         "sequences)")
        return []
    sig = {i["name"]: i["shape"] for i in model.signature["inputs"]}
    time_axes = {n: next((a for a, d in enumerate(dims) if is_time_axis(d)), None)
                 for n, dims in sig.items()}
    if all(a is None for n, a in time_axes.items() if n not in model.states):
        if name == "ort":
            notes.append("streaming not checked: no input axis is named time")
        return []
    T = next(feed[n].shape[a] for n, a in time_axes.items() if a is not None and n not in model.states)
    whole = model.run(feed)
    stream = model.stream(1, {s: feed[s] for s in model.states})  # every row of the feed
    steps = []
    for t in range(T):
        frame = {n: (np.take(v, [t], axis=time_axes[n]) if time_axes[n] is not None else v)
                 for n, v in feed.items() if n not in model.states}
        steps.append(stream.step(frame))
    streamed = {}
    for o in model.signature["outputs"]:
        axis = next((a for a, d in enumerate(o["shape"]) if is_time_axis(d)), None)
        streamed[o["name"]] = (np.concatenate([s[o["name"]] for s in steps], axis=axis)
                               if axis is not None else steps[-1][o["name"]])
    return compare_outputs(f"{name} streamed vs whole", streamed, whole, tolerance(name))


def summarize(diffs):
    """One line per kind of comparison (worst difference, count), then every failed row in full."""
    import re

    groups = {}
    for d in diffs:
        if d.check == "engine":  # its own line, below
            continue
        name = re.sub(r"^(golden|random) case \d+ ", "", d.name)
        words = [w for w in name.split()[:-1] if not re.fullmatch(r"[A-Z]=\d+", w)]
        groups.setdefault(" ".join(words) or d.name, []).append(d)
    lines = [f"{key}: {len(rows)} comparison{'s' * (len(rows) != 1)}, worst max abs {max(r.max_abs for r in rows):.2g} "
             f"{'ok' if all(r.ok for r in rows) else 'FAIL'}" for key, rows in groups.items()]
    engines = [f"{d.name}: {d.message} FAIL" for d in diffs if d.check == "engine"]
    return engines + lines + [str(d) for d in diffs if not d.ok and d.check != "engine"]
