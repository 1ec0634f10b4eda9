"""Streaming latency of the character model: one character per call, batch 1.

Parity is checked before anything is timed; every engine runs in the same process
and the same run, and the report gives ratios of each engine's median to
onnxruntime's, since single timings on a shared machine mean little.
"""

import time
from pathlib import Path

import numpy as np

from .errors import ParityError
from .tolerances import FP32, INT8, compare


def percentiles(samples):
    s = np.asarray(samples) * 1e6
    return {"p50_us": float(np.percentile(s, 50)), "p90_us": float(np.percentile(s, 90)),
            "p99_us": float(np.percentile(s, 99)), "mean_us": float(s.mean()), "n": int(s.size)}


def time_steps(step, ids, warmup):
    """Per-call seconds of ``step(id)`` over ``ids`` after ``warmup`` untimed calls."""
    for i in ids[:warmup]:
        step(int(i))
    out = np.empty(len(ids) - warmup)
    for k, i in enumerate(ids[warmup:]):
        t0 = time.perf_counter()
        step(int(i))
        out[k] = time.perf_counter() - t0
    return out


def runtime_steppers(model_path, threads=1):
    """A stepper per runtime engine: ``make() -> step(id) -> logits (V,)`` with its own state."""
    from .model import load

    def stepper(engine):
        model = load(model_path, engine=engine, threads=threads)

        def make():
            stream = model.stream()
            return lambda i: stream.step_ids([i])[-1]
        return make

    return {name: stepper(name) for name in ("ort", "numba", "fast", "fast-int8")}


def check_parity(makers, ids):
    """Every engine's streamed logits against onnxruntime's over ``ids``; raises on failure.

    int8 engines are held to the INT8 tolerance, every other engine to FP32.
    """
    ref = None
    diffs = []
    for name, make in makers.items():
        step = make()
        logits = np.stack([step(int(i)) for i in ids])
        if ref is None:
            ref = logits
            continue
        d = compare(f"{name} vs ort logits", logits, ref, INT8 if "int8" in name else FP32)
        if not d.ok:
            raise ParityError(f"not timing: {d}")
        diffs.append(d)
    return diffs


def bench_charlm(model_path, extra=None, steps=500, warmup=50, threads=1, seed=0):
    """Latency report for the runtime engines plus ``extra`` makers (e.g. PyTorch eager)."""
    from .model import load

    makers = {**runtime_steppers(model_path, threads), **(extra or {})}
    vocab = len(load(model_path).vocab)
    ids = np.random.default_rng(seed).integers(0, vocab, steps + warmup)
    diffs = check_parity(makers, ids[:64])
    results = {name: percentiles(time_steps(make(), ids, warmup)) for name, make in makers.items()}
    base = results["ort"]["p50_us"]
    for r in results.values():
        r["p50_vs_ort"] = r["p50_us"] / base
    return {"model": str(model_path), "file_bytes": Path(model_path).stat().st_size,
            "batch": 1, "threads": threads, "steps": steps, "warmup": warmup,
            "parity": [d.as_dict() for d in diffs], "engines": results}


def markdown(report):
    lines = [f"model {report['model']} ({report['file_bytes'] / 1e6:.2f} MB), batch 1, "
             f"{report['threads']} thread(s), {report['steps']} steps after {report['warmup']} warm-up",
             "", "| engine | p50 µs | p90 µs | p99 µs | p50 / ort |", "|---|---:|---:|---:|---:|"]
    for name, r in report["engines"].items():
        lines.append(f"| {name} | {r['p50_us']:.1f} | {r['p90_us']:.1f} | {r['p99_us']:.1f} "
                     f"| {r['p50_vs_ort']:.2f}x |")
    return "\n".join(lines)


def bench_sentiment(model_path, texts, extra=None, batch_sizes=(1, 8, 64), threads=(1, 2), repeats=3):
    """Reviews per second per engine, batch size and thread count, parity checked first.

    ``extra`` maps an engine name to ``make(threads) -> run(tokens, lengths) -> probs``.
    Each figure is the best of ``repeats`` passes over ``texts`` in their given order.
    """
    from .model import load
    from .tokenizer import pad_batch

    def runtime_maker(engine):
        return lambda n: (lambda ids, lens: load(model_path, engine=engine, threads=n).run(ids, lens)[1])

    def cached(make):  # build each engine once per thread count
        built = {}
        return lambda n: built.setdefault(n, make(n))

    makers = {name: cached(m) for name, m in
              {"ort": runtime_maker("ort"), "numba": runtime_maker("numba"), **(extra or {})}.items()}
    rows = load(model_path).tokenizer.encode_rows(texts)
    ref = makers["ort"](1)(*pad_batch(rows[:16]))
    parity = [compare(f"{name} vs ort prob", make(1)(*pad_batch(rows[:16])), ref)
              for name, make in makers.items() if name != "ort"]
    failed = [d for d in parity if not d.ok]
    if failed:
        raise ParityError("not timing: " + "; ".join(map(str, failed)))
    results = []
    for n_threads in threads:
        for batch in batch_sizes:
            batches = [pad_batch(rows[i:i + batch]) for i in range(0, len(rows), batch)]
            for name, make in makers.items():
                run = make(n_threads)
                run(*batches[0])  # warm-up
                best = min(_timed(run, batches) for _ in range(repeats))
                results.append({"engine": name, "threads": n_threads, "batch": batch,
                                "reviews_per_s": len(rows) / best})
    for r in results:
        base = next(x for x in results if x["engine"] == "ort" and x["threads"] == r["threads"]
                    and x["batch"] == r["batch"])
        r["vs_ort"] = r["reviews_per_s"] / base["reviews_per_s"]
    return {"model": str(model_path), "file_bytes": Path(model_path).stat().st_size,
            "reviews": len(rows), "mean_tokens": float(np.mean([len(r) for r in rows])),
            "parity": [d.as_dict() for d in parity], "results": results}


def _timed(run, batches):
    t0 = time.perf_counter()
    for ids, lengths in batches:
        run(ids, lengths)
    return time.perf_counter() - t0


def markdown_sentiment(report):
    lines = [f"model {report['model']} ({report['file_bytes'] / 1e6:.2f} MB), {report['reviews']} "
             f"reviews of {report['mean_tokens']:.0f} tokens on average",
             "", "| engine | threads | batch | reviews/s | vs ort |", "|---|---:|---:|---:|---:|"]
    for r in report["results"]:
        lines.append(f"| {r['engine']} | {r['threads']} | {r['batch']} | {r['reviews_per_s']:.1f} "
                     f"| {r['vs_ort']:.2f}x |")
    return "\n".join(lines)
