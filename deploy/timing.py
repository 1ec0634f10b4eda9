"""Timing for the benchmarks: percentiles, per-call timers, interleaved rounds, the hardware floors.

Single timings on a shared machine mean little, so engines are timed in interleaved rounds
(load elsewhere hits them all alike) and compared by ratios of medians; the floor is plain
numpy matrix-vector products over the weights one streamed step must read, the int8 floor
the same products on those weights quantized per row, by the runtime's AVX2 int8 matvec.
Not here: which engines run, their parity checks and the reports (``bench_charlm.py``,
``bench_sentiment.py``).
"""

import contextlib
import ctypes
import glob
import os
import time

import numpy as np

from rnnedge.runtime.errors import UnsupportedError

# (set, get) thread-count functions of the BLAS libraries numpy wheels and distributions link:
# scipy-openblas (numpy >= 2 wheels, 64-bit ints, then 32), OpenBLAS, MKL
BLAS_THREADS = (("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
                ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
                ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
                ("openblas_set_num_threads", "openblas_get_num_threads"),
                ("MKL_Set_Num_Threads", "MKL_Get_Max_Threads"))
FLOOR = "floor"
INT8_FLOOR = "int8-floor"
PANEL_FLOOR = "panel-floor"  # fp32 products on the fast engines' panels: below numpy's


def percentiles(samples):
    """p50, p90, p99 and the mean in µs of ``samples`` in seconds, and their count."""
    s = np.asarray(samples) * 1e6
    return {"p50_us": float(np.percentile(s, 50)), "p90_us": float(np.percentile(s, 90)),
            "p99_us": float(np.percentile(s, 99)), "mean_us": float(s.mean()), "n": int(s.size)}


def time_steps(step, ids, warmup):
    """Per-call seconds of ``step(id)`` over ``ids`` after ``warmup`` untimed calls."""
    for i in ids[:warmup]:
        step(i)
    out = np.empty(len(ids) - warmup)
    for k, i in enumerate(ids[warmup:]):
        t0 = time.perf_counter()
        step(i)
        out[k] = time.perf_counter() - t0
    return out


def time_batches(run, batches):
    """Seconds of ``run(ids, lengths)`` on each (ids, lengths) of ``batches``."""
    out = np.empty(len(batches))
    for k, (ids, lengths) in enumerate(batches):
        t0 = time.perf_counter()
        run(ids, lengths)
        out[k] = time.perf_counter() - t0
    return out


def interleaved(makers, ids, warmup, rounds, threads=1):
    """Seconds per step of each maker at batch 1: ``rounds`` rounds in turn.

    Each engine keeps one stream for the whole run; round r times slice r of ``ids`` on
    every engine before round r + 1 starts, so a burst of load elsewhere hits all engines.
    """
    from rnnedge.runtime.quiet import Stages

    stage = Stages("bench")
    steps = {name: make(1, threads) for name, make in makers.items()}
    for name, step in steps.items():
        time_steps(lambda i: step([i]), ids[:warmup + 1], warmup)
    samples = {name: [] for name in steps}
    for r, chunk in enumerate(np.array_split(np.asarray(ids[warmup:]), rounds)):
        stage(f"round {r + 1} of {rounds} over {', '.join(steps)}")
        for name, step in steps.items():
            samples[name].append(time_steps(lambda i: step([i]), chunk, 0))
    return {name: np.concatenate(s) for name, s in samples.items()}


def vs_ort(rows, key):
    """Each row's ``key`` over onnxruntime's at the same threads and batch, as ``vs_ort``
    (through rnnedge's engine) and ``vs_ort_direct`` (``session.run`` itself)."""
    for r in rows:
        for engine, field in (("ort", "vs_ort"), ("ort-direct", "vs_ort_direct")):
            base = next((x for x in rows if x["engine"] == engine and x["threads"] == r["threads"]
                         and x["batch"] == r["batch"]), None)
            if base is not None:
                r[field] = r[key] / base[key]
    return rows


def floor_matrices(model_path):
    """The weight matrices one streamed step must read, as numpy arrays.

    Layer 0's input projection is a row of the embedding folded through W0 (what the fast
    engine reads), so they are R0, [W | R] of each layer above, and the output layer (C, H).
    Raises ``UnsupportedError`` for a graph that is not a forward chain over token ids.
    """
    from rnnedge.runtime.chain_graph import read_chain
    from rnnedge.runtime.files import read_onnx

    try:
        chain = read_chain(read_onnx(model_path))
        if chain.embedding is None or chain.directions != 1 or chain.pool:
            raise UnsupportedError("not a forward chain over token ids")
    except UnsupportedError as exc:
        raise UnsupportedError(f"the floor needs the weights of a plain fp32 charlm graph ({exc})") from exc
    (_, R0, _), *above = [tuple(w[0] for w in layer) for layer in chain.layers]
    mats = [np.ascontiguousarray(R0)]
    mats += [np.ascontiguousarray(np.concatenate([W, R], axis=1)) for W, R, _ in above]
    return mats + [np.ascontiguousarray(chain.fc)]


def floor_maker(mats):
    """numpy matrix-vector products over ``mats`` (``floor_matrices``), no cell math."""
    _, xs, outs = _vectors(mats)

    def step(ids):
        for a, x, o in zip(mats, xs, outs):
            np.dot(a, x, out=o)
        return outs[-1]
    return _maker(step)


def panel_floor_maker(mats):
    """float32 matrix-vector products over ``mats`` in the row panels the fast fp32 engines
    read (``panels.matvec_f32``), no cell math: the best means this runtime has, where the
    floor proper is numpy's."""
    from rnnedge.runtime.ops.panels import matvec_f32, panels

    Ps = tuple(panels(a, a.shape[1]) for a in mats)
    biases, xs, outs = _vectors(mats)

    def step(ids):
        matvec_f32(Ps, biases, xs, outs)
        return outs[-1]
    return _maker(step)


def int8_floor_maker(mats):
    """int8 matrix-vector products over ``mats`` quantized per row, in the row panels the
    int8 engines read, each input quantized first: ``panels.matvec8``, no cell math."""
    from rnnedge.runtime.ops.panels import matvec8, panels, quantize_rows, width

    As, scales = zip(*(quantize_rows(a) for a in mats))
    Ps = tuple(panels(A, A.shape[1]) for A in As)
    biases, xs, outs = _vectors(mats)
    qs = tuple(np.zeros(width(a.shape[1], a.shape[1]), np.int8) for a in mats)

    def step(ids):
        matvec8(Ps, scales, biases, xs, qs, outs)
        return outs[-1]
    return _maker(step)


def _vectors(mats):
    """Zero biases, random inputs (the same for every floor) and outputs of ``mats``."""
    rng = np.random.default_rng(1)
    return (tuple(np.zeros(a.shape[0], np.float32) for a in mats),
            tuple(rng.standard_normal(a.shape[1]).astype(np.float32) for a in mats),
            tuple(np.empty(a.shape[0], np.float32) for a in mats))


def _maker(step):
    """A floor's maker: the same step at any batch and thread count (it computes no answer)."""
    return lambda batch=1, threads=1: step


def _blas_libraries():
    """Paths of the BLAS libraries numpy may have loaded: those its wheel ships beside it
    (numpy.libs, .dylibs), then, on Linux, those this process has mapped."""
    root = os.path.dirname(np.__file__)
    shipped = (os.path.join(root + ".libs", "*"), os.path.join(root, ".dylibs", "*"))
    paths = [p for pattern in shipped for p in glob.glob(pattern)]
    with contextlib.suppress(OSError):
        with open("/proc/self/maps") as maps:
            paths += [line.split()[-1] for line in maps if "/" in line]
    is_blas = lambda p: any(k in os.path.basename(p).lower() for k in ("blas", "mkl"))  # noqa: E731
    return [p for p in dict.fromkeys(paths) if is_blas(p)]


def blas_controls():
    """(set_num_threads, get_num_threads) of the BLAS numpy runs on, found by ctypes (no
    threadpoolctl), or None for a BLAS not found."""
    for path in _blas_libraries():
        try:
            lib = ctypes.CDLL(path)  # the library numpy loaded: dlopen returns the same handle
        except OSError:
            continue
        for set_name, get_name in BLAS_THREADS:
            if hasattr(lib, set_name) and hasattr(lib, get_name):
                setter, getter = getattr(lib, set_name), getattr(lib, get_name)
                getter.restype = ctypes.c_int
                return lambda n: setter(ctypes.c_int(n)), getter
    return None


@contextlib.contextmanager
def blas_threads(n=1):
    """numpy's BLAS on ``n`` threads inside the block, restored after; yields the count the
    BLAS reports inside, or None when it was not found (then only OPENBLAS_NUM_THREADS and
    the like, set before numpy is imported, hold: the command line sets them for bench)."""
    controls = blas_controls()
    if controls is None:
        yield None
        return
    set_threads, get_threads = controls
    before = get_threads()
    set_threads(n)
    try:
        yield int(get_threads())
    finally:
        set_threads(before)

