"""Loading any ONNX file into its model object, and describing a file.

``load(path, engine="ort"|"numba"|"fast"|"fast-int8", threads=1)`` returns a ``CharModel``,
``SentimentModel`` or ``SeriesModel`` by the file's rnnedge metadata, and a ``GraphModel``
for any other file; ``describe`` is what ``rnnedge info`` shows. Files are read by ``files.py``, metadata by ``metadata.py``,
engines made by ``engines.py``.
"""

import json
from pathlib import Path

from .engines import make_engine
from .errors import ModelFileError
from .files import is_ort_format, read_onnx, read_ort_format, read_with_session
from .graph_model import GraphModel
from .metadata import is_rnnedge, metadata_from_props, props_of


def signature(model):
    """Graph inputs and outputs as (name, element type, dims) with dynamic axes by name."""
    import onnx

    def describe(v):
        t = v.type.tensor_type
        dims = [d.dim_param or d.dim_value for d in t.shape.dim]
        return {"name": v.name, "type": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name,
                "shape": dims}

    return {"inputs": [describe(v) for v in model.graph.input],
            "outputs": [describe(v) for v in model.graph.output]}


ORT_TYPES = {"float": "float32", "double": "float64"}  # onnxruntime's names that numpy's differ from


def session_signature(session):
    """``signature`` read from an onnxruntime session: "tensor(float)" -> "float32", and so on."""

    def describe(v):
        element = v.type.removeprefix("tensor(").removesuffix(")")
        return {"name": v.name, "type": ORT_TYPES.get(element, element), "shape": list(v.shape)}

    return {"inputs": [describe(v) for v in session.get_inputs()],
            "outputs": [describe(v) for v in session.get_outputs()]}


def open_file(path, engine="ort", threads=1):
    """(source, metadata props, engine, signature) of any model file: the source is the
    ``onnx.ModelProto`` the engine was built from, or what the ort engine read (a path, or
    the bytes of an ORT-format file)."""
    if engine == "ort":
        model, props, built = read_with_session(path, threads)
        return model, props, built, session_signature(built.session)
    if Path(path).is_file() and is_ort_format(path):
        model, props, built = read_ort_format(path, engine, threads)
        return model, props, built, session_signature(built.session)
    model = read_onnx(path)
    props = props_of(model)
    task = props.get("rnnedge.task")
    return model, props, make_engine(engine, model, threads, task), signature(model)


def declared_signature(props, graph_signature):
    """The signature with the axis names the exporter was given (``rnnedge.signature``), if any."""
    if "rnnedge.signature" not in props:
        return graph_signature
    declared = json.loads(props["rnnedge.signature"])
    as_runtime = lambda v: {"name": v["name"], "type": v.get("dtype", v.get("type")), "shape": v["shape"]}
    return {side: [as_runtime(v) for v in declared[side]] for side in ("inputs", "outputs")}


CHARLM_STATES = {True: {"h0": "hn", "c0": "cn"}, False: {"h0": "hn"}}  # by "is an LSTM"


def load(path, engine="ort", threads=1):
    """Load any ONNX model; rnnedge's own tasks get their task layer, anything else a ``GraphModel``.

    ``engine``: ort, numba (the reference interpreter), fast or fast-int8 (the fused numba
    kernels: the whole-model engine for char models, fused recurrent nodes otherwise).
    """
    model, props, built, sig = open_file(path, engine, threads)
    meta = metadata_from_props(props, path) if is_rnnedge(props) else None
    task = meta.task if meta else "generic"
    if meta and not isinstance(model, (bytes, str)):  # the ort engine reads no proto
        check_config(meta, model, path)
    sig = declared_signature(props, sig)
    if task == "charlm":
        from .charlm import CharModel

        lstm = meta.config.get("cell") == "lstm"
        return CharModel(model, meta, GraphModel(built, sig, CHARLM_STATES[lstm], meta, path), path)
    if task == "sentiment":
        from .sentiment import SentimentModel

        return SentimentModel(model, meta, GraphModel(built, sig, {}, meta, path), path)
    if task != "generic":
        raise ModelFileError(f"{path} has task {task!r}, which this runtime does not know")
    from .series import SeriesModel, is_series

    if meta is not None and is_series(props):  # a generic export with "task": "series"
        return SeriesModel(built, sig, meta, path)
    states = json.loads(props["rnnedge.states"]) if "rnnedge.states" in props else None
    return GraphModel(built, sig, states, meta, path)


def describe(path):
    """What ``rnnedge info`` shows of any model file: signature, recurrent nodes, metadata, size.

    An ORT-format file is described from its onnxruntime session, which does not expose the
    opsets or nodes of the graph: ``opset`` and ``recurrent_nodes`` are then None.
    """
    if Path(path).is_file() and is_ort_format(path):
        _, props, built = read_ort_format(path)
        file_format, opset, sig, nodes = "ort", None, session_signature(built.session), None
    else:
        model = read_onnx(path)
        props, file_format, sig = props_of(model), "onnx", signature(model)
        opset = {o.domain or "ai.onnx": o.version for o in model.opset_import}
        nodes = recurrent_nodes(model)
    report = {"path": str(path), "file_format": file_format, "opset": opset,
              "file_bytes": Path(path).stat().st_size, "signature": sig, "recurrent_nodes": nodes}
    if not is_rnnedge(props):
        from .graph_model import infer_states

        return {**report, "task": None, "rnnedge_metadata": False, "states": infer_states(sig),
                "states_source": "inferred", "metadata": props}
    meta = metadata_from_props(props, path)
    if file_format == "onnx":
        check_config(meta, model, path)
    if meta.task == "generic":
        loads = lambda key, default: json.loads(props[key]) if key in props else default
        return {**report, "task": "generic", "rnnedge_metadata": True,
                "states": loads("rnnedge.states", {}), "states_source": "metadata",
                "lengths": loads("rnnedge.lengths", None), "user": loads("rnnedge.user", {}),
                "export": loads("rnnedge.export", {}), "versions": loads("rnnedge.versions", {}),
                "golden_cases": golden_count(props)}
    vocab = meta.vocab if meta.task == "charlm" else meta.vocab.get("vocab", [])
    return {**report, "task": meta.task, "rnnedge_metadata": True,
            "format": meta.props["rnnedge.format"], "variant": meta.props.get("rnnedge.variant"),
            "config": meta.config, "metrics": meta.metrics, "vocab_size": len(vocab),
            "checkpoint_sha256": meta.props.get("rnnedge.checkpoint_sha256"),
            "versions": json.loads(meta.props.get("rnnedge.versions", "{}"))}


def check_config(meta, model, path):
    """The metadata's config must describe the graph's recurrent nodes: cell, hidden size, layers.

    A file altered after export would otherwise run with states of the wrong shape, or show
    ``rnnedge info`` a model it is not.
    """
    nodes, config = recurrent_nodes(model), meta.config
    if meta.task not in ("charlm", "sentiment") or not nodes:
        return
    have = {"cell": sorted({n["cell"].lower() for n in nodes}),
            "hidden_size": sorted({n["hidden_size"] for n in nodes}), "num_layers": len(nodes)}
    wrong = [f"{key} {config.get(key)!r} but the graph has {value[0] if isinstance(value, list) and len(value) == 1 else value!r}"
             for key, value in have.items()
             if (value != [config.get(key)] if isinstance(value, list) else value != config.get(key))]
    if wrong:
        raise ModelFileError(f"{path}: its metadata config says {'; '.join(wrong)}; the file was "
                             f"altered after export: export it again")


def golden_count(props):
    from .golden import from_props

    return len(from_props(props))


def recurrent_nodes(model):
    """Each LSTM/GRU/RNN node: cell, direction, hidden and input size, and its other attributes."""
    from onnx import helper

    rows = []
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type not in ("LSTM", "GRU", "RNN"):
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        attrs = {k: v.decode() if isinstance(v, bytes) else
                 [x.decode() if isinstance(x, bytes) else x for x in v] if isinstance(v, list) else v
                 for k, v in attrs.items()}
        w = weights.get(node.input[1])
        rows.append({"name": node.name, "cell": node.op_type,
                     "direction": attrs.pop("direction", "forward"),
                     "hidden_size": attrs.pop("hidden_size", None),
                     "input_size": w[2] if w else None,
                     "sequence_lens": len(node.input) > 4 and bool(node.input[4]), **attrs})
    return rows
