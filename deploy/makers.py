"""Engines as the benchmarks use them (makers), and the precision each one is held to.

A maker builds an engine for a thread count (and, for the character model, a batch size);
an engine that cannot run a model is left out with the reason. Each engine computes in a
named precision, from the engine table (``fast-int8`` -> int8) or, for a variant file, from
its ``rnnedge.variant`` metadata, and its parity check uses that precision's tolerance level.
Also the engines a verb loads on a file (``load_engines``) and random feeds of a signature
(``random_feeds``), which verify and bench share. Not here: what the makers of each workload
return and how they are timed (``bench_charlm.py``, ``bench_sentiment.py``, ``timing.py``).
"""

from pathlib import Path

import numpy as np

from rnnedge.runtime.errors import InputError, UnsupportedError
from rnnedge.runtime.graph_model import is_batch_axis, is_time_axis
from rnnedge.runtime.tolerances import level

from .variants import gated_engine, precision

# The runtime engines, and PyTorch eager as the command line hands it in.
ENGINE_PRECISION = {"ort": "fp32", "numba": "fp32", "fast": "fp32", "fast-int8": "int8",
                    "torch": "fp32", "ort-direct": "fp32"}


def tolerance(name, precisions=None):
    """The level engine ``name`` is held to: by ``precisions`` (variants), else the engine
    table; fp32, the strictest, for an engine in neither."""
    return level({**ENGINE_PRECISION, **(precisions or {})}.get(name, "fp32"))


def variant_engine(path):
    """(name, precision, engine) of the engine that runs a variant file, from its rnnedge
    metadata: onnxruntime, ``("ort-int8", "int8", "ort")``, ``("ort-int8+ort", "int8", "ort")``,
    ``("ort-fp16", "fp16", "ort")`` ...; a gate-only variant (``rnnedge optimize --numba-int8``:
    the fp32 model, quantized at load) on the engine it was gated on,
    ``("gate-only: fast-int8", "int8", "fast-int8")``, never as an onnxruntime variant.

    A file without ``rnnedge.variant`` is an fp32 export, named after its stem.
    """
    from rnnedge.runtime.model import load

    props = load(path).meta.props
    variant, engine = props.get("rnnedge.variant"), gated_engine(props)
    if engine not in (None, "ort"):
        return f"gate-only: {engine}", ENGINE_PRECISION.get(engine, "fp32"), engine
    return "ort-" + (variant or Path(path).stem), precision(variant) if variant else "fp32", "ort"


def per_threads(build):
    """``build(threads)``, called once per thread count."""
    built = {}

    def get(threads):
        if threads not in built:
            built[threads] = build(threads)
        return built[threads]
    return get


def usable(makers, build_once, skipped):
    """``makers`` without those whose ``build_once(make)`` raises UnsupportedError (-> ``skipped``)."""
    kept = {}
    for name, make in makers.items():
        try:
            build_once(make)  # builds (and compiles) the engine now, so it is known to run
        except UnsupportedError as exc:
            skipped[name] = str(exc)
            continue
        kept[name] = make
    return kept


ORT_DIRECT = "ort-direct"  # onnxruntime used as well as it can be, the fair baseline


class DirectOrt:
    """onnxruntime without rnnedge, with the ``ort`` engine's session options (its threads,
    sequential): ``run(feeds)`` is ``session.run`` itself; ``stream(states)`` steps with
    ``run_with_iobinding`` on buffers allocated at its first step and two bindings used in
    turn, the second swapping each state input with its output, so a streamed step copies
    only its frame. A stream's outputs are its buffers, overwritten by its next step."""

    def __init__(self, model_path, states=None, threads=1):
        from rnnedge.runtime.engines import OrtEngine

        engine = OrtEngine(str(model_path), threads)  # its session, not its wrapper
        self.session, self.outputs = engine.session, engine.outputs
        self.states = dict(states or {})

    def run(self, feeds):
        return dict(zip(self.outputs, self.session.run(self.outputs, feeds)))

    def stream(self, states):
        """A stream from ``states`` (every state input) of frames of one shape."""
        return _BoundStream(self, states)


class _BoundStream:
    def __init__(self, direct, states):
        self.direct, self.states, self.bindings = direct, states, None

    def _bind(self, feeds):
        """Input and output buffers for these frames, and the two bindings."""
        d = self.direct
        self.inputs = {n: np.array(v, order="C") for n, v in {**feeds, **self.states}.items()}
        results = d.session.run(d.outputs, self.inputs)
        self.buffers = {n: np.empty_like(r) for n, r in zip(d.outputs, results)}
        self.bindings = []
        for swap in (False, True):
            binding = d.session.io_binding()
            for name, array in self.inputs.items():
                out = d.states.get(name)
                binding.bind_cpu_input(name, self.buffers[out] if swap and out else array)
            for name, array in self.buffers.items():
                state_in = next((i for i, o in d.states.items() if o == name), None)
                target = self.inputs[state_in] if swap and state_in else array
                binding.bind_output(name, "cpu", 0, target.dtype.type, list(target.shape),
                                    target.ctypes.data)
            self.bindings.append(binding)
        self.turn = 0

    def step(self, feeds):
        if self.bindings is None:
            self._bind(feeds)
        else:
            for name, value in feeds.items():
                np.copyto(self.inputs[name], value)
        self.direct.session.run_with_iobinding(self.bindings[self.turn])
        out = dict(self.buffers)
        if self.turn:  # the swapped binding wrote the states into the input buffers
            out.update({o: self.inputs[i] for i, o in self.direct.states.items()})
        self.turn ^= 1
        return out


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


def random_feeds(signature, seed=0, shapes=((1, 5), (3, 11)), named=None):
    """Random inputs for a file without a golden bundle: floats N(0, 1), small integer ids;
    ``named``: sizes of other named axes, where known."""
    rng = np.random.default_rng(seed)
    feeds = []
    for batch, time in shapes:
        feed = {}
        for spec in signature["inputs"]:
            dims = [batch if is_batch_axis(d) else time if is_time_axis(d) else
                    d if isinstance(d, int) and d > 0 else (named or {}).get(d)
                    for d in spec["shape"]]
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
