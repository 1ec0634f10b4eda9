"""Loading any ONNX file into its model object, and describing a file.

``load(path, engine="ort"|"numba"|"fast"|"fast-int8", threads=1)`` returns the task layer
that the file's ``rnnedge.kind`` names (``TASK_LAYERS``: ``CharModel``, ``SentimentModel``,
``SeriesModel``) over the one ``GraphModel``, or the ``GraphModel`` itself for a user's
file; ``describe`` is what ``rnnedge info`` shows. Files are read by ``files.py``, metadata
by ``metadata.py``, engines made by ``engines.py``.
"""

from pathlib import Path

from .engines import make_engine
from .errors import ModelFileError
from .files import is_ort_format, read_onnx, read_ort_format, read_with_session
from .graph_model import GraphModel
from .metadata import parse, props_of


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
    return model, props, make_engine(engine, model, threads, parse(props, path)), signature(model)


def _graph(source, built, sig, meta, path):
    return GraphModel(built, sig, meta.states, meta, path)


def _char(source, built, sig, meta, path):
    from .charlm import CharModel

    return CharModel(source, meta, _graph(source, built, sig, meta, path), path)


def _reviews(source, built, sig, meta, path):
    from .sentiment import SentimentModel

    return SentimentModel(source, meta, _graph(source, built, sig, meta, path), path)


def _series(source, built, sig, meta, path):
    from .series import SeriesModel

    return SeriesModel(built, sig, meta, path)


# the task layer of each kind (metadata.KINDS): a thin adapter over the one GraphModel
TASK_LAYERS = {"charlm": _char, "sentiment": _reviews, "series": _series, "user": _graph}


def load(path, engine="ort", threads=1):
    """Load any ONNX model: the task layer its ``rnnedge.kind`` names over a ``GraphModel``.

    ``engine``: ort, numba (the reference interpreter), fast or fast-int8 (the fused numba
    kernels; see ``engines.py``). A file without rnnedge metadata is a ``GraphModel``.
    """
    model, props, built, sig = open_file(path, engine, threads)
    meta = parse(props, path)
    if meta.rnnedge and not isinstance(model, (bytes, str)):  # the ort engine reads no proto
        check_config(meta, model, path)
    return TASK_LAYERS[meta.kind](model, built, meta.signature or sig, meta, path)


def file_kind(path):
    """The ``rnnedge.kind`` of an ONNX file (``user`` for a file without rnnedge metadata)."""
    return parse(props_of(read_onnx(path)), path).kind


def describe(path):
    """What ``rnnedge info`` shows of any model file: signature, recurrent nodes, metadata, size.

    An ORT-format file is described from its onnxruntime session, which does not expose the
    opsets or nodes of the graph: ``opset`` and ``recurrent_nodes`` are then None.
    """
    if Path(path).is_file() and is_ort_format(path):
        _, props, built = read_ort_format(path)
        file_format, opset, sig, nodes, model = "ort", None, session_signature(built.session), None, None
    else:
        model = read_onnx(path)
        props, file_format, sig = props_of(model), "onnx", signature(model)
        opset = {o.domain or "ai.onnx": o.version for o in model.opset_import}
        nodes = recurrent_nodes(model)
    meta = parse(props, path)
    report = {"path": str(path), "file_format": file_format, "opset": opset,
              "file_bytes": Path(path).stat().st_size, "signature": meta.signature or sig,
              "recurrent_nodes": nodes, "kind": meta.kind, "rnnedge_metadata": meta.rnnedge}
    if model is not None:
        from .engines import engine_path

        report["fast_engine"] = engine_path(model, meta)
    if not meta.rnnedge:
        from .graph_model import infer_states

        return {**report, "states": infer_states(sig), "states_source": "inferred",
                "metadata": props}
    if file_format == "onnx":
        check_config(meta, model, path)
    vocab = meta.vocab.get("vocab", []) if isinstance(meta.vocab, dict) else meta.vocab
    return {**report, "format": props["rnnedge.format"], "variant": meta.variant,
            "config": meta.config, "metrics": meta.metrics, "vocab_size": len(vocab),
            "states": meta.states or {}, "states_source": "metadata", "lengths": meta.lengths,
            "user": meta.user, "export": meta.export, "versions": meta.versions,
            "checkpoint_sha256": props.get("rnnedge.checkpoint_sha256"),
            "golden_cases": golden_count(props)}


def check_config(meta, model, path):
    """The metadata's config must describe the graph's recurrent nodes: cell, hidden size, layers.

    A file altered after export would otherwise run with states of the wrong shape, or show
    ``rnnedge info`` a model it is not.
    """
    nodes, config = recurrent_nodes(model), meta.config
    if meta.kind not in ("charlm", "sentiment") or not nodes:
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
