"""The character model's benchmark: streaming latency at batch 1 and throughput in characters/s.

An engine is a maker ``make(batch=1, threads=1) -> step(ids (B,)) -> logits (B, V)``: one
character per stream per call, the state carried inside the step. Every engine's streamed
logits are checked against onnxruntime's, each at its precision's tolerance, before anything
is timed; the report gives each median over onnxruntime's (through rnnedge's ``ort`` engine,
and used directly with I/O binding: ``ort-direct``, the fair baseline), the floor's and
PyTorch's. Not
here: the timers and the floor (``timing.py``), the classifier (``bench_sentiment.py``).
"""

import time
from pathlib import Path

import numpy as np

from rnnedge.runtime.errors import ParityError, UnsupportedError
from rnnedge.runtime.parity import failure_report
from rnnedge.runtime.tolerances import compare

from .makers import ORT_DIRECT, DirectOrt, per_threads, tolerance, usable, variant_engine
from .timing import (FLOOR, INT8_FLOOR, PANEL_FLOOR, floor_maker, floor_matrices,
                     int8_floor_maker, interleaved, panel_floor_maker, percentiles, vs_ort)

ENGINES = ("ort", "numba", "fast", "fast-int8")


def charlm_maker(loaded):
    """The maker of a runtime ``CharModel`` factory ``loaded(threads) -> CharModel``."""
    model_for = per_threads(loaded)

    def make(batch=1, threads=1):
        model = model_for(threads)
        state = [model.zero_state(batch)]

        def step(ids):
            logits, state[0] = model.run(np.asarray(ids, np.int64).reshape(-1, 1), state[0])
            return logits[:, -1]
        return step
    return make


def runtime_makers(model_path, engines=ENGINES, variants=(), skipped=None, precisions=None):
    """Makers of the runtime engines on ``model_path`` and of each variant's engine
    (onnxruntime; fast-int8 for a gate-only variant, ``makers.variant_engine``).

    Engines that raise ``UnsupportedError`` go to ``skipped`` (name -> reason) instead; each
    variant's precision goes to ``precisions`` (name -> "int8", "fp16" or "fp32").
    """
    from rnnedge.runtime.model import load

    makers = usable({name: charlm_maker(lambda n, e=name: load(model_path, engine=e, threads=n))
                     for name in engines}, lambda make: make(1, 1),
                    {} if skipped is None else skipped)
    if "ort" in engines:
        makers[ORT_DIRECT] = direct_maker(model_path)
    for path in variants:
        name, dtype, engine = variant_engine(path)
        if precisions is not None:
            precisions[name] = dtype
        makers[name] = charlm_maker(lambda n, p=path, e=engine: load(p, engine=e, threads=n))
    return makers


def direct_maker(model_path):
    """The maker of onnxruntime without rnnedge (``makers.DirectOrt``): I/O binding on
    buffers allocated once, the states carried by binding, not copied."""
    from rnnedge.runtime.model import load

    model = load(model_path)

    def make(batch=1, threads=1):
        stream = DirectOrt(model_path, model.core.states, threads).stream(model.zero_state(batch))

        def step(ids):
            tokens = np.asarray(ids, np.int64).reshape(-1, 1)
            return stream.step({"tokens": tokens})["logits"][:, -1].copy()
        return step
    return make


def kernel_makers(model_path, engines=("fast", "fast-int8"), precisions=None):
    """Makers that call each fast engine's numba kernel with no Python layer above it (no
    feed checks, no state copies), as ``ENGINE-kernel``: the part of a step the floors
    compare with. Their precisions go to ``precisions``. Batch rows as the engine runs them."""
    from rnnedge.runtime.model import load

    makers = {}
    for name in engines:
        makers[f"{name}-kernel"] = _kernel_maker(load(model_path, engine=name).engine)
        if precisions is not None:
            precisions[f"{name}-kernel"] = "int8" if name.endswith("int8") else "fp32"
    return makers


def _kernel_maker(engine):
    from rnnedge.runtime.fast_chain import NO_STATE

    def make(batch=1, threads=1):
        L, H = engine.L, engine.H
        h = np.zeros((L, batch, H), np.float32)
        c = np.zeros_like(h) if engine.lstm else NO_STATE
        tokens = np.zeros((batch, 1), np.int64)
        logits = np.empty((batch, 1, engine.C), np.float32)
        rest = (*engine.arguments, *engine.calls.work)

        def step(ids):
            tokens[:, 0] = ids
            engine.stream(engine.no_frames, tokens, NO_STATE, NO_STATE, h, c, logits,
                          *rest)  # h, c updated in place
            return logits[:, -1].copy()  # the next step writes the same buffer
        return step
    return make


def check_parity(makers, ids, reference="ort", threads=1, precisions=None):
    """Every engine's streamed logits against the reference's over ``ids``; raises on failure.

    Each engine is held to its precision's level (``makers.tolerance``).
    """
    logits = {}
    for name, make in makers.items():
        step = make(1, threads)
        logits[name] = np.stack([step([int(i)])[0] for i in ids])
    diffs = [compare(f"{name} vs {reference} logits", out, logits[reference],
                     tolerance(name, precisions))
             for name, out in logits.items() if name != reference]
    if not all(d.ok for d in diffs):
        raise ParityError(failure_report("not timing", diffs))
    return diffs


def bench_charlm(model_path, extra=None, steps=500, warmup=50, threads=1, seed=0, variants=(),
                 rounds=5, floor=True, samples=False, engines=ENGINES, kernels=False):
    """Streaming latency at batch 1 on ``threads`` thread(s) of every engine (+ ``extra`` makers).

    ``kernels`` adds the fast engines' kernels called directly (``kernel_makers``).

    ``floor`` adds the numpy matrix-vector floor, the same products on the fast engines'
    panels and the int8 floor (``timing.py``);
    ``samples`` keeps every timing (µs).
    """
    skipped, precisions = {}, {}
    makers = {**runtime_makers(model_path, engines, variants, skipped, precisions), **(extra or {})}
    if kernels:
        makers.update(kernel_makers(model_path, [e for e in engines if e.startswith("fast")],
                                    precisions))
    return latency_report(model_path, makers, skipped, steps, warmup, threads, seed, rounds,
                          floor, samples, precisions)


def latency_report(model_path, makers, skipped, steps=500, warmup=50, threads=1, seed=0, rounds=5,
                   floor=True, samples=False, precisions=None):
    """``bench_charlm`` on makers built already (``runtime_makers``, ``skipped`` and
    ``precisions`` what it left)."""
    from rnnedge.runtime.model import load

    makers, skipped = dict(makers), dict(skipped)
    vocab = len(load(model_path).vocab)
    ids = np.random.default_rng(seed).integers(0, vocab, steps + warmup)
    diffs = check_parity(makers, ids[:64], threads=threads, precisions=precisions)
    if floor:
        try:
            mats = floor_matrices(model_path)
            makers[FLOOR] = floor_maker(mats)
            makers[PANEL_FLOOR] = panel_floor_maker(mats)
            makers[INT8_FLOOR] = int8_floor_maker(mats)
        except UnsupportedError as exc:
            skipped[FLOOR] = str(exc)
    timed = interleaved(makers, ids, warmup, rounds, threads)
    report = {"model": str(model_path), "file_bytes": Path(model_path).stat().st_size,
              "batch": 1, "threads": threads, "steps": steps, "warmup": warmup, "rounds": rounds,
              "parity": [d.as_dict() for d in diffs], "engines": _ratios(timed, samples),
              "skipped": skipped}
    if FLOOR in timed:
        report["floor_bytes"] = int(sum(a.nbytes for a in mats))
    return report


def _ratios(timed, samples):
    """Percentiles of each engine's seconds, with its p50 over onnxruntime's and the floors',
    and PyTorch's over its own; ``samples`` keeps every timing (µs)."""
    results = {name: percentiles(t) for name, t in timed.items()}
    for name, r in results.items():
        r["p50_vs_ort"] = r["p50_us"] / results["ort"]["p50_us"]
        if ORT_DIRECT in results:
            r["p50_vs_ort_direct"] = r["p50_us"] / results[ORT_DIRECT]["p50_us"]
        if FLOOR in results:
            r["p50_vs_floor"] = r["p50_us"] / results[FLOOR]["p50_us"]
        if INT8_FLOOR in results:
            r["p50_vs_int8_floor"] = r["p50_us"] / results[INT8_FLOOR]["p50_us"]
        if "torch" in results:
            r["torch_p50_over_this"] = results["torch"]["p50_us"] / r["p50_us"]
        if samples:
            r["samples_us"] = [round(float(x) * 1e6, 2) for x in timed[name]]
    return results


def throughput_charlm(makers, vocab, batch_sizes=(1, 8, 64), threads=(1, 2), steps=40, seed=0):
    """Characters per second (streams x steps / time) per engine, batch size and thread count."""
    rows = []
    rng = np.random.default_rng(seed)
    for n_threads in threads:
        for batch in batch_sizes:
            ids = rng.integers(0, vocab, (steps + 2, batch))
            for name, make in makers.items():
                step = make(batch, n_threads)
                step(ids[0])
                step(ids[1])  # warm-up
                t0 = time.perf_counter()
                for row in ids[2:]:
                    step(row)
                rows.append({"engine": name, "threads": n_threads, "batch": batch,
                             "chars_per_s": batch * steps / (time.perf_counter() - t0)})
    return vs_ort(rows, "chars_per_s")


def markdown(report):
    """The latency table of a ``bench_charlm`` report."""
    lines = [f"model {report['model']} ({report['file_bytes'] / 1e6:.2f} MB), batch 1, "
             f"{report['threads']} thread(s), {report['steps']} steps after {report['warmup']} "
             f"warm-up, {report.get('rounds', 1)} interleaved rounds",
             "", "| engine | p50 µs | p90 µs | p99 µs | p50 / ort | p50 / ort-direct | p50 / floor "
             "| p50 / int8 floor | torch p50 / p50 |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    ratio = lambda r, key: f"{r[key]:.2f}x" if key in r else "-"  # noqa: E731
    for name, r in report["engines"].items():
        lines.append(f"| {name} | {r['p50_us']:.1f} | {r['p90_us']:.1f} | {r['p99_us']:.1f} "
                     f"| {r['p50_vs_ort']:.2f}x | {ratio(r, 'p50_vs_ort_direct')} "
                     f"| {ratio(r, 'p50_vs_floor')} "
                     f"| {ratio(r, 'p50_vs_int8_floor')} | {ratio(r, 'torch_p50_over_this')} |")
    for name, why in report.get("skipped", {}).items():
        lines.append(f"\nskipped {name}: {why}")
    return "\n".join(lines)
