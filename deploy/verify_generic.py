"""``rnnedge verify`` for any recurrent ONNX file: nodes, whole graph, golden bundle, streaming.

Four checks, every failure collected into one report of ``Diff`` rows:

1. node level: each LSTM/GRU/RNN node on the numba reference (``run_node``) against
   onnxruntime's own intermediate tensors at that node (inputs and outputs read from an
   onnxruntime session of the same graph with those tensors exposed as outputs);
2. the whole graph on numba (and on the fused ``fast`` kernels where they run) against
   onnxruntime;
3. every engine against the golden bundle, the outputs PyTorch computed at export
   (``rnnedge.golden``): what catches an exporter that wrote the spec's math but not the
   module's (a GRU with ``linear_before_reset=0``), which the first two cannot;
4. streaming: with state pairs and a time axis, frame by frame equals whole.

Without a golden bundle (a file rnnedge did not export) inputs are random, from the
signature, and check 3 is reported as skipped.
"""

import numpy as np

from rnnedge.runtime.errors import InputError, UnsupportedError
from rnnedge.runtime.parity import compare_outputs
from rnnedge.runtime.tolerances import FP32

TIME_NAMES = ("time", "seq", "sequence", "length", "frames", "steps")
RECURRENT = ("LSTM", "GRU", "RNN")


def is_time_axis(dim):
    return isinstance(dim, str) and any(t in dim.lower() for t in TIME_NAMES)


def verify_generic(model_path, tol=FP32, seed=0, reference=None):
    """(diffs, notes): the parity rows and what was skipped, and why. ``reference``: PyTorch
    from a series checkpoint (``verify_series``), run beside the same loaded engines."""
    from rnnedge.runtime.files import read_onnx
    from rnnedge.runtime.golden import from_props
    from rnnedge.runtime.metadata import props_of

    proto = read_onnx(model_path)
    cases = from_props(props_of(proto))
    skipped = {}
    engines = load_engines(model_path, ("ort", "numba", "fast"), skipped)
    ort, notes = engines["ort"], [f"engine {name} skipped: {why}" for name, why in skipped.items()]
    feeds = [c.inputs for c in cases] or random_feeds(ort.signature, seed)
    if not cases:
        notes.append("no golden bundle (rnnedge.golden): engines are compared with each other on "
                     "random inputs only; export with rnnedge to check against PyTorch")
    diffs = node_level(proto, feeds[0], tol)
    for k, feed in enumerate(feeds):
        ref = ort.run(feed)
        for name, m in engines.items():
            if name != "ort":
                diffs += compare_outputs(f"case {k} {name} vs ort", m.run(feed), ref, tol)
        if cases:
            for name, m in engines.items():
                out = ref if name == "ort" else m.run(feed)
                diffs += compare_outputs(f"case {k} {name} vs golden (PyTorch)", out,
                                         cases[k].outputs, tol)
    for name, m in engines.items():
        diffs += streamed_vs_whole(m, feeds[0], name, tol, notes)
    if reference is not None:
        from .verify_series import against_checkpoint

        diffs += against_checkpoint(reference, engines, tol)
    return diffs, notes


def load_engines(model_path, engines, skipped):
    """{engine: loaded model} of each engine that can run the file; the others go to
    ``skipped`` (engine -> why). onnxruntime runs any file: its errors are the file's."""
    from rnnedge.runtime.model import load

    loaded = {}
    for name in engines:
        try:
            loaded[name] = load(model_path, engine=name)
        except UnsupportedError as exc:
            if name == "ort":
                raise
            skipped[name] = str(exc)
    return loaded


def random_feeds(signature, seed=0, shapes=((1, 5), (3, 11))):
    """Random inputs for a file without a golden bundle: floats N(0, 1), small integer ids."""
    rng = np.random.default_rng(seed)
    feeds = []
    for batch, time in shapes:
        feed = {}
        for spec in signature["inputs"]:
            dims = [batch if isinstance(d, str) and "batch" in d.lower() else
                    time if is_time_axis(d) else d if isinstance(d, int) and d > 0 else
                    None for d in spec["shape"]]
            if None in dims:
                raise InputError(f"input {spec['name']} has axes {spec['shape']} that are neither "
                                 f"fixed nor named batch or time: give a golden bundle (export "
                                 f"with rnnedge) to verify this file")
            dtype = np.dtype(spec["type"])
            if dtype.kind == "f":
                feed[spec["name"]] = rng.standard_normal(dims).astype(dtype)
            elif len(dims) == 1 and dims[0] == batch:  # lengths
                feed[spec["name"]] = rng.integers(1, time + 1, dims).astype(dtype)
            else:
                feed[spec["name"]] = rng.integers(0, 2, dims).astype(dtype)
        feeds.append(feed)
    return feeds


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


def streamed_vs_whole(model, feed, name, tol, notes):
    """Feed the first batch row frame by frame through ``stream()``; compare with one call."""
    if not getattr(model, "states", None):
        if name == "ort":
            notes.append("streaming not checked: the model has no state pairs")
        return []
    sig = {i["name"]: i["shape"] for i in model.signature["inputs"]}
    time_axes = {n: next((a for a, d in enumerate(dims) if is_time_axis(d)), None) for n, dims in sig.items()}
    if all(a is None for n, a in time_axes.items() if n not in model.states):
        if name == "ort":
            notes.append("streaming not checked: no input axis is named time")
        return []
    T = next(feed[n].shape[a] for n, a in time_axes.items() if a is not None and n not in model.states)
    whole = model.run(feed)
    stream = model.stream()
    stream.reset({s: feed[s] for s in model.states})
    steps = []
    for t in range(T):
        frame = {n: (np.take(v, [t], axis=time_axes[n]) if time_axes[n] is not None else v)
                 for n, v in feed.items() if n not in model.states}
        steps.append(stream.step(frame))
    out_sig = {o["name"]: o["shape"] for o in model.signature["outputs"]}
    streamed = {}
    for o, dims in out_sig.items():
        axis = next((a for a, d in enumerate(dims) if is_time_axis(d)), None)
        streamed[o] = (np.concatenate([s[o] for s in steps], axis=axis) if axis is not None
                       else steps[-1][o])
    return compare_outputs(f"{name} streamed vs whole", streamed, whole, tol)
