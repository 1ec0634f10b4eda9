"""Reading model files: ONNX through onnx or onnxruntime, the ORT format by its content, hashes.

Typed errors for the usual mistakes (missing file, a directory, not ONNX, ORT format where
ONNX is needed). The ort engine reads a file and its metadata through onnxruntime alone
(no ``onnx`` import, which keeps start-up short). Not here: what the metadata means
(``metadata.py``) or the engines (``engines.py``).
"""

import hashlib
from pathlib import Path

from .errors import InputError, ModelFileError, UnsupportedError
from .engines import make_engine

ORT_FORMAT_ID = b"ORTM"  # flatbuffers file identifier of the ORT format, at bytes 4..8


def check_file(path, what="model file"):
    """``path`` as a Path when it is a readable file; a typed error that says what it is otherwise."""
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"{what} {path} is a directory, not a file")
    if not path.is_file():
        raise ModelFileError(f"{what} {path} does not exist")
    if path.stat().st_size == 0:  # protobuf reads 0 bytes as an empty model, without complaint
        raise ModelFileError(f"{what} {path} is empty (0 bytes); give the file rnnedge export wrote")
    return path


def read_onnx(path):
    """Load and sanity-check an ONNX file, with typed errors for the usual mistakes."""
    import onnx

    path = check_file(path)
    if is_ort_format(path):
        raise ModelFileError(f"{path} is in the ORT format, not ONNX: rnnedge.runtime.load and "
                             f"the commands built on it run it with engine ort; this step needs "
                             f"the .onnx file it was made from")
    try:
        model = onnx.load(str(path))  # external weights are read from the file's folder
    except Exception as exc:  # onnx raises DecodeError, ValueError, ... on a bad file
        raise ModelFileError(f"{path} is not an ONNX model ({type(exc).__name__}: {exc}){hint(path)}") from exc
    check_graph(model, path)
    return model


def check_graph(model, path):
    """What onnxruntime refuses at load, refused here too, so that the numba engines never run
    a file the ort engine cannot: an opset newer than this onnx knows, a name given to two
    graph inputs, outputs or node outputs; and a ``Loop`` whose constant trip count passes
    the interpreter's bound (onnxruntime would run it for hours)."""
    import onnx
    from onnx import numpy_helper

    from .interpreter import MAX_LOOP_TRIPS

    newest = onnx.defs.onnx_opset_version()
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx") and opset.version > newest:
            raise ModelFileError(f"{path} declares opset {opset.version} of the ONNX operators; "
                                 f"this onnx knows up to {newest}: export it at opset {newest} "
                                 f"or older")
    graph = model.graph
    for what, names in (("graph inputs", [v.name for v in graph.input]),
                        ("graph outputs", [v.name for v in graph.output]),
                        ("node outputs", [o for n in graph.node for o in n.output if o])):
        seen = set()
        for name in names:
            if name in seen:
                raise ModelFileError(f"{path}: two {what} are named {name!r}; every name in an "
                                     f"ONNX graph is given once: the file was altered or badly "
                                     f"written")
            seen.add(name)
    constants = {t.name: t for t in graph.initializer}
    constants.update({n.output[0]: a.t for n in graph.node if n.op_type == "Constant"
                      for a in n.attribute if a.name == "value"})
    for node in graph.node:
        trips = constants.get(node.input[0]) if node.op_type == "Loop" and node.input else None
        if trips is not None and trips.data_type == onnx.TensorProto.INT64:
            count = numpy_helper.to_array(trips)
            if count.size == 1 and int(count.reshape(-1)[0]) > MAX_LOOP_TRIPS:
                raise ModelFileError(f"{path}: Loop node {node.name!r} runs {int(count.reshape(-1)[0]):,} "
                                     f"trips; rnnedge runs at most {MAX_LOOP_TRIPS:,} (a scripted "
                                     f"loop over time takes one a step)")


def hint(path):
    """What a file that is not ONNX probably is: a checkpoint (a zip archive) or cut short."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head == b"PK\x03\x04":
        return "; it is a zip archive, as a torch checkpoint is: export it with rnnedge export"
    return "; the file is damaged or cut short: export it again"


def is_ort_format(path):
    """True when ``path`` holds an ORT-format (flatbuffers) model rather than ONNX."""
    with open(path, "rb") as fh:
        return fh.read(8)[4:] == ORT_FORMAT_ID


def read_with_session(path, threads=1):
    """(source, metadata props, ort engine) of an ONNX or ORT-format file, by onnxruntime alone.

    The ort engine needs no ``onnx`` import and no protobuf round trip: the session reads
    the file and its metadata, which keeps ``rnnedge generate`` start-up to loading. An ONNX
    file is read by its path (``source`` is that path), so that external weights beside it are
    found from any working directory and the file is read once; an ORT-format file as bytes
    (``source``), since onnxruntime tells that format by the extension, which a temporary
    file lacks.
    """
    path = check_file(path)
    ort_format = is_ort_format(path)
    source = path.read_bytes() if ort_format else str(path)
    try:
        built = make_engine("ort", source, threads)
    except InputError:  # threads < 1
        raise
    except Exception as exc:  # onnxruntime raises its own Fail, InvalidGraph, ... on a bad file
        kind = "a readable ORT-format model" if ort_format else "an ONNX model"
        raise ModelFileError(f"{path} is not {kind} ({type(exc).__name__}: {exc}){hint(path)}") from exc
    return source, dict(built.session.get_modelmeta().custom_metadata_map), built


def read_ort_format(path, engine="ort", threads=1):
    """(file bytes, metadata props, engine) of an ORT-format file, which only the ort engine runs."""
    if engine != "ort":
        raise UnsupportedError(f"{path} is in the ORT format, which only the ort engine runs; "
                               f"load the .onnx file it was made from to use engine {engine!r}")
    return read_with_session(path, threads)




def sha256(path):
    """Hex SHA-256 of a file, recorded in exported models to tie them to their source."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
