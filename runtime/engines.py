"""The engines: one ``run(feeds) -> {name: array}`` over the graph's inputs and outputs.

``ort`` is onnxruntime on the CPU with an explicit thread count, ``numba`` the reference
interpreter (``interpreter.py``), ``fast``/``fast-int8`` the fused kernels, chosen by the
file's kind (``STACK_READERS``), not by trying engines: the reader of that kind describes the
stack, or refuses it with a reason and the interpreter runs the graph with fused recurrent
nodes. Not here: reading files or metadata.
"""

import numbers
import os

from .engine import Engine
from .errors import InputError, UnsupportedError

ENGINES = ("ort", "numba", "fast", "fast-int8")
# onnxruntime starts every thread at load: 100 take seconds, 100,000 never finish starting
MAX_THREADS = 256


class OrtEngine(Engine):
    """onnxruntime on the CPU with an explicit thread count (1 = the low-power case)."""

    name = "ort"

    def __init__(self, model, threads=1):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # a path lets onnxruntime find external weights beside the file; bytes: ORT format
        data = model if isinstance(model, (bytes, str)) else model.SerializeToString()
        self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        self.outputs = [o.name for o in self.session.get_outputs()]

    def run(self, feeds):
        return dict(zip(self.outputs, self.session.run(self.outputs, feeds)))


class NumbaEngine(Engine):
    """The reference interpreter; the recurrent kernels run on one thread.

    ``kernel="fast"`` or ``"fast-int8"`` runs each recurrent node on the fused kernels
    instead: the fast engines of a graph whose stack the fused engines' readers refuse.
    """

    name = "numba"

    def __init__(self, model, threads=1, kernel="numba"):
        from .interpreter import Interpreter

        self.name = kernel if kernel != "numba" else "numba"
        self.interpreter = Interpreter(model, kernel=kernel)
        self.outputs = self.interpreter.outputs

    def run(self, feeds):
        return self.interpreter.run(feeds)


def make_engine(name, model, threads=1, meta=None):
    """Engine ``name`` over ``model`` (an ``onnx.ModelProto``, or a path or bytes for ort);
    ``meta``: the file's ``metadata.Metadata``, whose kind picks the fused engine's reader."""
    if name not in ENGINES:
        raise InputError(f"engine must be one of {', '.join(ENGINES)}, not {name!r}")
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or \
            not 1 <= threads <= MAX_THREADS:
        raise InputError(f"threads must be an integer from 1 to {MAX_THREADS} (this machine has "
                         f"{os.cpu_count()} CPUs), not {threads!r}")
    if name in ("fast", "fast-int8"):
        return fused_engine(model, meta, "int8" if name == "fast-int8" else None, threads)[0]
    return (OrtEngine if name == "ort" else NumbaEngine)(model, threads)


# The reader of each kind's stack (metadata.KINDS): rnnedge's classifiers are read by what
# their exporter writes (true lengths, normalisation); the char model and a user's graph by the
# chain reader, whose ``Chain`` says which fused engine runs it (a streaming chain, or a
# pooled/bidirectional classifier).
STACK_READERS = {"charlm": "chain", "sentiment": "sequence", "series": "sequence", "user": "chain"}


def fused_engine(model, meta, quantize, threads=1):
    """(engine, path): the fused whole-model engine of the file's stack, one numba call a run.
    When the kind's reader refuses the graph, ``fast`` is onnxruntime itself, the faster of
    the two fp32 engines left (the interpreter with fused recurrent nodes took 1.2-7x
    onnxruntime's time on such graphs: front ends, attention, scripted loops), and
    ``fast-int8`` the interpreter with int8 fused recurrent nodes, the one engine that runs
    such a graph on int8 weights; the path names the choice and the reader's reason
    (``rnnedge info`` shows it)."""
    reader = STACK_READERS[meta.kind if meta is not None else "user"]
    try:
        stack = _read_stack(reader, model, meta)
        return _build(reader, stack, model, quantize, threads), _path(reader, stack)
    except UnsupportedError as refused:
        if quantize is None:
            engine = OrtEngine(model, threads)
            engine.name = "fast"
            return engine, f"onnxruntime, the faster fp32 engine here: {refused}"
        return NumbaEngine(model, kernel="fast-int8"), _refused(refused)


def engine_path(model, meta):
    """What ``fast`` and ``fast-int8`` run for this file, and why (for ``rnnedge info``): the
    reader's verdict alone, no weights packed."""
    reader = STACK_READERS[meta.kind if meta is not None else "user"]
    try:
        return _path(reader, _read_stack(reader, model, meta))
    except UnsupportedError as refused:
        return f"fast: onnxruntime (the faster fp32 engine here); fast-int8: {_refused(refused)}"


def _read_stack(reader, model, meta):
    """What the kind's reader finds in the graph; ``UnsupportedError`` naming what it refuses."""
    if reader == "sequence":
        from .fast_seq import read_seq

        return read_seq(model, meta)
    from .chain_graph import read_chain
    from .fast_chain import check_pooled

    chain = read_chain(model)
    if not _streaming(chain):
        check_pooled(chain)
    return chain


def _streaming(chain):
    return chain.directions == 1 and not chain.pool


def _build(reader, stack, model, quantize, threads):
    if reader == "sequence":
        from .fast_seq import FastSeqEngine

        return FastSeqEngine(model, quantize, seq=stack, threads=threads)
    from .fast_chain import FastChainEngine, FastPooledEngine

    return (FastChainEngine if _streaming(stack) else FastPooledEngine)(
        model, quantize, chain=stack, threads=threads)


def _path(reader, stack):
    if reader != "chain":
        return f"fused stack ({reader} reader)"
    return f"fused stack (chain reader, {'streaming' if _streaming(stack) else 'pooled'})"


def _refused(reason):
    return f"interpreter with int8 fused recurrent nodes: {reason}"
