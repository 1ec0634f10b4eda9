"""Engines as the benchmarks use them (makers), and the precision each one is held to.

A maker builds an engine for a thread count (and, for the character model, a batch size);
an engine that cannot run a model is left out with the reason. Each engine computes in a
named precision, from the engine table (``fast-int8`` -> int8) or, for a variant file, from
its ``rnnedge.variant`` metadata, and its parity check uses that precision's tolerance level.
Not here: what the makers of each workload return and how they are timed
(``bench_charlm.py``, ``bench_sentiment.py``, ``timing.py``).
"""

from pathlib import Path

from rnnedge.runtime.errors import UnsupportedError
from rnnedge.runtime.tolerances import level

from .variants import precision

# The runtime engines, and PyTorch eager as the command line hands it in.
ENGINE_PRECISION = {"ort": "fp32", "numba": "fp32", "fast": "fp32", "fast-int8": "int8",
                    "torch": "fp32"}


def tolerance(name, precisions=None):
    """The level engine ``name`` is held to: by ``precisions`` (variants), else the engine
    table; fp32, the strictest, for an engine in neither."""
    return level({**ENGINE_PRECISION, **(precisions or {})}.get(name, "fp32"))


def variant_engine(path):
    """(name, precision) of onnxruntime on a variant file, from its rnnedge metadata:
    ``("ort-int8", "int8")``, ``("ort-int8+ort", "int8")``, ``("ort-fp16", "fp16")`` ...

    A file without ``rnnedge.variant`` is an fp32 export, named after its stem.
    """
    from rnnedge.runtime.model import load

    variant = load(path).meta.props.get("rnnedge.variant")
    return "ort-" + (variant or Path(path).stem), precision(variant) if variant else "fp32"


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
