"""The engines: one ``run(feeds) -> {name: array}`` over the graph's inputs and outputs.

``ort`` is onnxruntime on the CPU with an explicit thread count, ``numba`` the reference
interpreter (``interpreter.py``), ``fast``/``fast-int8`` the fused kernels (``fast.py``
charlm graphs, ``fast_seq.py`` sentiment and series classifiers, ``fast_chain.py``
streaming chains and users' pooled or bidirectional classifiers, else the interpreter with
fused recurrent nodes). Not here: reading
files or metadata.
"""

import numbers
import os

from .errors import InputError

ENGINES = ("ort", "numba", "fast", "fast-int8")
# onnxruntime starts every thread at load: 100 take seconds, 100,000 never finish starting
MAX_THREADS = 256


class OrtEngine:
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


class NumbaEngine:
    """The reference interpreter; the recurrent kernels run on one thread.

    ``kernel="fast"`` or ``"fast-int8"`` runs each recurrent node on the fused kernels
    instead: the fast engines of a graph that is not rnnedge's char model.
    """

    name = "numba"

    def __init__(self, model, threads=1, kernel="numba"):
        from .interpreter import Interpreter

        self.name = kernel if kernel != "numba" else "numba"
        self.interpreter = Interpreter(model, kernel=kernel)
        self.outputs = self.interpreter.outputs

    def run(self, feeds):
        return self.interpreter.run(feeds)


def make_engine(name, model, threads=1, task=None):
    """Engine ``name`` over ``model``; ``task`` picks the fast engine (charlm: the whole-model one)."""
    if name not in ENGINES:
        raise InputError(f"engine must be one of {', '.join(ENGINES)}, not {name!r}")
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or \
            not 1 <= threads <= MAX_THREADS:
        raise InputError(f"threads must be an integer from 1 to {MAX_THREADS} (this machine has "
                         f"{os.cpu_count()} CPUs), not {threads!r}")
    if name in ("fast", "fast-int8") and task != "charlm":
        from .errors import UnsupportedError
        from .fast_chain import FastChainEngine, FastPooledEngine
        from .fast_seq import FastSeqEngine

        quantize = "int8" if name == "fast-int8" else None
        # rnnedge's classifiers (sentiment, series), then a chain of recurrent layers with a
        # linear head, then one with bidirectional layers or pooling: one numba call a run
        for fused in (FastSeqEngine, FastChainEngine, FastPooledEngine):
            try:
                return fused(model, quantize=quantize)
            except UnsupportedError:
                pass
        return NumbaEngine(model, threads, kernel=name)  # the interpreter, fused nodes
    if name in ("fast", "fast-int8"):
        from .fast import FastCharEngine

        return FastCharEngine(model, quantize="int8" if name == "fast-int8" else None)
    return (OrtEngine if name == "ort" else NumbaEngine)(model, threads)
