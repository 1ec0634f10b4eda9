"""Loading an rnnedge ONNX file: metadata, engines, and the task's model object.

``load(path, engine="ort"|"numba"|"fast"|"fast-int8", threads=1)`` returns a ``CharModel``
or a ``SentimentModel`` according to the file's ``rnnedge.task`` metadata. Every engine
exposes ``run(feeds) -> {name: array}`` over the same graph inputs and outputs; the fast
ones (``runtime/fast.py``) run charlm graphs only, on one thread. The ort engine reads the
file and its metadata through onnxruntime alone (no ``onnx`` import, which keeps start-up
short); so does a file in the ORT format (``rnnedge optimize --ort-format``), recognised by
its content, which only the ort engine runs.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError, ModelFileError, UnsupportedError

ENGINES = ("ort", "numba", "fast", "fast-int8")
SUPPORTED_FORMATS = {"1"}
ORT_FORMAT_ID = b"ORTM"  # flatbuffers file identifier of the ORT format, at bytes 4..8


@dataclass(frozen=True)
class Metadata:
    task: str
    config: dict
    vocab: object  # list of characters (charlm) or the tokenizer dict (sentiment)
    metrics: dict
    props: dict  # every rnnedge.* key, raw strings


def read_onnx(path):
    """Load and sanity-check an ONNX file, with typed errors for the usual mistakes."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    if is_ort_format(path):
        raise ModelFileError(f"{path} is in the ORT format, not ONNX: rnnedge.runtime.load and "
                             f"the commands built on it run it with engine ort; this step needs "
                             f"the .onnx file it was made from")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError, ValueError, ... on a bad file
        raise ModelFileError(f"{path} is not an ONNX model ({type(exc).__name__}: {exc})") from exc


def read_metadata(model, path="model"):
    return metadata_from_props({p.key: p.value for p in model.metadata_props}, path)


def metadata_from_props(props, path="model"):
    """``Metadata`` of the ``rnnedge.*`` string properties of a model file."""
    if "rnnedge.task" not in props:
        raise ModelFileError(f"{path} is an ONNX model without rnnedge metadata; "
                             "export it with `rnnedge export`")
    if props.get("rnnedge.format") not in SUPPORTED_FORMATS:
        raise ModelFileError(f"{path} has rnnedge format {props.get('rnnedge.format')!r}; "
                             f"this runtime reads {', '.join(sorted(SUPPORTED_FORMATS))}")
    loads = lambda key, default: json.loads(props[key]) if key in props else default
    return Metadata(props["rnnedge.task"], loads("rnnedge.config", {}), loads("rnnedge.vocab", []),
                    loads("rnnedge.metrics", {}), props)


class OrtEngine:
    """onnxruntime on the CPU with an explicit thread count (1 = the low-power case)."""

    name = "ort"

    def __init__(self, model, threads=1):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        data = model if isinstance(model, bytes) else model.SerializeToString()  # bytes: ORT format
        self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        self.outputs = [o.name for o in self.session.get_outputs()]

    def run(self, feeds):
        return dict(zip(self.outputs, self.session.run(self.outputs, feeds)))


class NumbaEngine:
    """The reference interpreter; the recurrent kernels run on one thread."""

    name = "numba"

    def __init__(self, model, threads=1):
        from .interpreter import Interpreter

        self.interpreter = Interpreter(model)
        self.outputs = self.interpreter.outputs

    def run(self, feeds):
        return self.interpreter.run(feeds)


def make_engine(name, model, threads=1):
    if name not in ENGINES:
        raise InputError(f"engine must be one of {', '.join(ENGINES)}, not {name!r}")
    if threads < 1:
        raise InputError(f"threads must be >= 1, not {threads}")
    if name in ("fast", "fast-int8"):
        from .fast import FastCharEngine

        return FastCharEngine(model, quantize="int8" if name == "fast-int8" else None)
    return (OrtEngine if name == "ort" else NumbaEngine)(model, threads)


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


def is_ort_format(path):
    """True when ``path`` holds an ORT-format (flatbuffers) model rather than ONNX."""
    with open(path, "rb") as fh:
        return fh.read(8)[4:] == ORT_FORMAT_ID


def read_with_session(path, threads=1):
    """(file bytes, metadata, ort engine) of an ONNX or ORT-format file, read by onnxruntime alone.

    The ort engine needs no ``onnx`` import and no protobuf round trip: the session reads
    the file and its metadata, which keeps ``rnnedge generate`` start-up to loading.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    data = path.read_bytes()
    try:
        built = make_engine("ort", data, threads)
    except InputError:  # threads < 1
        raise
    except Exception as exc:  # onnxruntime raises its own Fail, InvalidGraph, ... on a bad file
        kind = "a readable ORT-format model" if data[4:8] == ORT_FORMAT_ID else "an ONNX model"
        raise ModelFileError(f"{path} is not {kind} ({type(exc).__name__}: {exc})") from exc
    return data, metadata_from_props(built.session.get_modelmeta().custom_metadata_map, path), built


def read_ort_format(path, engine="ort", threads=1):
    """(file bytes, metadata, engine) of an ORT-format file, which only the ort engine runs."""
    if engine != "ort":
        raise UnsupportedError(f"{path} is in the ORT format, which only the ort engine runs; "
                               f"load the .onnx file it was made from to use engine {engine!r}")
    return read_with_session(path, threads)


def load(path, engine="ort", threads=1):
    """Load an exported model; the object returned depends on its task."""
    if engine == "ort":
        model, meta, built = read_with_session(path, threads)
    elif Path(path).is_file() and is_ort_format(path):
        model, meta, built = read_ort_format(path, engine, threads)
    else:
        model = read_onnx(path)
        meta = read_metadata(model, path)
        built = None
    if meta.task == "charlm":
        from .charlm import CharModel

        return CharModel(model, meta, built or make_engine(engine, model, threads), path)
    if meta.task == "sentiment":
        from .sentiment import SentimentModel

        return SentimentModel(model, meta, built or make_engine(engine, model, threads), path)
    raise ModelFileError(f"{path} has task {meta.task!r}, which this runtime does not know")


def as_float32(name, array, shape):
    """Check a state array's shape (``None`` dims are free) and make it contiguous float32."""
    array = np.asarray(array)
    if array.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, array.shape)):
        want = "(" + ", ".join("?" if s is None else str(s) for s in shape) + ")"
        raise InputError(f"{name} has shape {tuple(array.shape)}, expected {want}")
    return np.ascontiguousarray(array, dtype=np.float32)


def describe(path):
    """What ``rnnedge info`` shows: task, config, metrics, provenance, signature, size.

    An ORT-format file is described from its onnxruntime session, which does not expose the
    opsets the graph was saved with: ``opset`` is then None.
    """
    if Path(path).is_file() and is_ort_format(path):
        _, meta, built = read_ort_format(path)
        file_format, opset, sig = "ort", None, session_signature(built.session)
    else:
        model = read_onnx(path)
        meta = read_metadata(model, path)
        file_format, sig = "onnx", signature(model)
        opset = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    vocab = meta.vocab if meta.task == "charlm" else meta.vocab.get("vocab", [])
    return {
        "path": str(path),
        "file_format": file_format,
        "task": meta.task,
        "format": meta.props["rnnedge.format"],
        "variant": meta.props.get("rnnedge.variant"),
        "opset": opset,
        "config": meta.config,
        "metrics": meta.metrics,
        "vocab_size": len(vocab),
        "checkpoint_sha256": meta.props.get("rnnedge.checkpoint_sha256"),
        "versions": json.loads(meta.props.get("rnnedge.versions", "{}")),
        "file_bytes": Path(path).stat().st_size,
        "signature": sig,
    }
