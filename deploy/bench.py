"""Latency and throughput of the engines side by side, parity checked before anything is timed.

Every engine runs in the same process and the same run, in interleaved rounds, and the
report gives ratios of each engine's median to onnxruntime's and to the hardware floor
(plain numpy matrix-vector products over the same weights), since single timings on a
shared machine mean little.

An engine is a maker: ``make(batch=1, threads=1) -> step(ids (B,)) -> logits (B, V)`` for
the character model (one character per stream per call, state carried inside the
step), ``make(threads) -> run(tokens, lengths) -> probs`` for the classifier. The runtime
engines are ``ort``, ``numba`` (the reference interpreter), ``fast`` and ``fast-int8``;
variant files written by ``rnnedge optimize`` join as ``ort-int8``, ``ort-fp16``, ...
An engine that cannot run the model (``UnsupportedError``: a fast engine on an int8 file)
is left out and named in the report's ``skipped``.
"""

import time
from pathlib import Path

import numpy as np

from .errors import ParityError, UnsupportedError
from .tolerances import BY_DTYPE, FP32, compare

ENGINES = ("ort", "numba", "fast", "fast-int8")
FLOOR = "floor"


def percentiles(samples):
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


def tolerance(name):
    """The parity level an engine is held to, from its name: int8, fp16, else fp32."""
    return next((tol for key, tol in BY_DTYPE.items() if key in name), FP32)


def _per_threads(build):
    """``build(threads)``, called once per thread count."""
    built = {}

    def get(threads):
        if threads not in built:
            built[threads] = build(threads)
        return built[threads]
    return get


def _usable(makers, build_once, skipped):
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


# -- the character model ---------------------------------------------------------------
def charlm_maker(loaded):
    """The maker of a runtime ``CharModel`` factory ``loaded(threads) -> CharModel``."""
    model_for = _per_threads(loaded)

    def make(batch=1, threads=1):
        model = model_for(threads)
        state = [model.zero_state(batch)]

        def step(ids):
            logits, state[0] = model.run(np.asarray(ids, np.int64).reshape(-1, 1), state[0])
            return logits[:, -1]
        return step
    return make


def runtime_makers(model_path, engines=ENGINES, variants=(), skipped=None):
    """Makers of the runtime engines on ``model_path`` and of onnxruntime on each variant.

    Engines that raise ``UnsupportedError`` go to ``skipped`` (name -> reason) instead.
    """
    from .model import load

    makers = _usable({name: charlm_maker(lambda n, e=name: load(model_path, engine=e, threads=n))
                      for name in engines}, lambda make: make(1, 1),
                     {} if skipped is None else skipped)
    for path in variants:
        makers[variant_name(path)] = charlm_maker(lambda n, p=path: load(p, engine="ort", threads=n))
    return makers


def variant_name(path):
    """``ort-int8``, ``ort-fp16``, ``ort-int8+ort`` ... from the file's rnnedge metadata."""
    from .model import load

    return "ort-" + load(path).meta.props.get("rnnedge.variant", Path(path).stem)


def floor_matrices(model_path):
    """The weight matrices one streamed step must read, as numpy arrays.

    Layer 0's input projection is a row of the embedding folded through W0 (what the fast
    engine reads), so they are R0, [W | R] of each layer above, and the output layer.
    Raises ``UnsupportedError`` for a graph that is not a plain fp32 charlm.
    """
    from .fast import read_charlm
    from .model import read_onnx

    try:
        _, layers, fc_weight, _ = read_charlm(read_onnx(model_path))
    except UnsupportedError as exc:
        raise UnsupportedError(f"the floor needs the weights of a plain fp32 charlm graph ({exc})") from exc
    mats = [np.ascontiguousarray(layers[0].R)]
    mats += [np.ascontiguousarray(np.concatenate([layer.W, layer.R], axis=1)) for layer in layers[1:]]
    return mats + [np.ascontiguousarray(fc_weight.T)]


def floor_maker(mats):
    """numpy matrix-vector products over ``mats`` (``floor_matrices``), no cell math."""
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal(a.shape[1]).astype(np.float32) for a in mats]
    outs = [np.empty(a.shape[0], np.float32) for a in mats]

    def make(batch=1, threads=1):
        def step(ids):
            for a, x, o in zip(mats, xs, outs):
                np.dot(a, x, out=o)
            return outs[-1]
        return step
    return make


def check_parity(makers, ids, reference="ort", threads=1):
    """Every engine's streamed logits against the reference's over ``ids``; raises on failure."""
    logits = {}
    for name, make in makers.items():
        step = make(1, threads)
        logits[name] = np.stack([step([int(i)])[0] for i in ids])
    diffs = [compare(f"{name} vs {reference} logits", out, logits[reference], tolerance(name))
             for name, out in logits.items() if name != reference]
    failed = [d for d in diffs if not d.ok]
    if failed:
        raise ParityError("not timing: " + "; ".join(map(str, failed)))
    return diffs


def interleaved(makers, ids, warmup, rounds, threads=1):
    """Seconds per step of each maker at batch 1: ``rounds`` rounds in turn.

    Each engine keeps one stream for the whole run; round r times slice r of ``ids`` on
    every engine before round r + 1 starts, so a burst of load elsewhere hits all engines.
    """
    steps = {name: make(1, threads) for name, make in makers.items()}
    for name, step in steps.items():
        time_steps(lambda i: step([i]), ids[:warmup + 1], warmup)
    samples = {name: [] for name in steps}
    for chunk in np.array_split(np.asarray(ids[warmup:]), rounds):
        for name, step in steps.items():
            samples[name].append(time_steps(lambda i: step([i]), chunk, 0))
    return {name: np.concatenate(s) for name, s in samples.items()}


def bench_charlm(model_path, extra=None, steps=500, warmup=50, threads=1, seed=0, variants=(),
                 rounds=5, floor=True, samples=False, engines=ENGINES):
    """Streaming latency at batch 1 on ``threads`` thread(s) of every engine (+ ``extra`` makers).

    ``floor`` adds the numpy matrix-vector floor; ``samples`` keeps every timing (µs).
    """
    skipped = {}
    makers = {**runtime_makers(model_path, engines, variants, skipped), **(extra or {})}
    return latency_report(model_path, makers, skipped, steps, warmup, threads, seed, rounds,
                          floor, samples)


def latency_report(model_path, makers, skipped, steps=500, warmup=50, threads=1, seed=0, rounds=5,
                   floor=True, samples=False):
    """``bench_charlm`` on makers built already (``runtime_makers``, ``skipped`` its leftovers)."""
    from .model import load

    makers, skipped = dict(makers), dict(skipped)
    vocab = len(load(model_path).vocab)
    ids = np.random.default_rng(seed).integers(0, vocab, steps + warmup)
    diffs = check_parity(makers, ids[:64], threads=threads)
    if floor:
        try:
            mats = floor_matrices(model_path)
            makers[FLOOR] = floor_maker(mats)
        except UnsupportedError as exc:
            skipped[FLOOR] = str(exc)
    timed = interleaved(makers, ids, warmup, rounds, threads)
    results = {name: percentiles(t) for name, t in timed.items()}
    for name, r in results.items():
        r["p50_vs_ort"] = r["p50_us"] / results["ort"]["p50_us"]
        if FLOOR in results:
            r["p50_vs_floor"] = r["p50_us"] / results[FLOOR]["p50_us"]
        if "torch" in results:
            r["torch_p50_over_this"] = results["torch"]["p50_us"] / r["p50_us"]
        if samples:
            r["samples_us"] = [round(float(x) * 1e6, 2) for x in timed[name]]
    report = {"model": str(model_path), "file_bytes": Path(model_path).stat().st_size,
              "batch": 1, "threads": threads, "steps": steps, "warmup": warmup, "rounds": rounds,
              "parity": [d.as_dict() for d in diffs], "engines": results, "skipped": skipped}
    if FLOOR in results:
        report["floor_bytes"] = int(sum(a.nbytes for a in mats))
    return report


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
    return _vs_ort(rows, "chars_per_s")


def _vs_ort(rows, key):
    for r in rows:
        base = next((x for x in rows if x["engine"] == "ort" and x["threads"] == r["threads"]
                     and x["batch"] == r["batch"]), None)
        if base is not None:
            r["vs_ort"] = r[key] / base[key]
    return rows


def markdown(report):
    lines = [f"model {report['model']} ({report['file_bytes'] / 1e6:.2f} MB), batch 1, "
             f"{report['threads']} thread(s), {report['steps']} steps after {report['warmup']} "
             f"warm-up, {report.get('rounds', 1)} interleaved rounds",
             "", "| engine | p50 µs | p90 µs | p99 µs | p50 / ort | p50 / floor | torch p50 / p50 |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in report["engines"].items():
        vs_floor = f"{r['p50_vs_floor']:.2f}x" if "p50_vs_floor" in r else "-"
        vs_torch = f"{r['torch_p50_over_this']:.2f}x" if "torch_p50_over_this" in r else "-"
        lines.append(f"| {name} | {r['p50_us']:.1f} | {r['p90_us']:.1f} | {r['p99_us']:.1f} "
                     f"| {r['p50_vs_ort']:.2f}x | {vs_floor} | {vs_torch} |")
    for name, why in report.get("skipped", {}).items():
        lines.append(f"\nskipped {name}: {why}")
    return "\n".join(lines)


# -- the classifier ----------------------------------------------------------------------
def sentiment_makers(model_path, engines=("ort", "numba"), variants=(), skipped=None):
    """``make(threads) -> run(tokens, lengths) -> probs`` per runtime engine and variant."""
    from .model import load

    def maker(path, engine):
        def build(threads):
            model = load(path, engine=engine, threads=threads)
            return lambda ids, lens: model.run(ids, lens)[1]
        return _per_threads(build)

    makers = _usable({name: maker(model_path, name) for name in engines}, lambda make: make(1),
                     {} if skipped is None else skipped)
    for path in variants:
        makers[variant_name(path)] = maker(path, "ort")
    return makers


def bench_sentiment(model_path, texts, extra=None, batch_sizes=(1, 8, 64), threads=(1, 2), repeats=3,
                    variants=(), engines=("ort", "numba")):
    """Reviews per second per engine, batch size and thread count, parity checked first.

    ``extra`` maps an engine name to ``make(threads) -> run(tokens, lengths) -> probs``.
    Each figure is the best of ``repeats`` passes over ``texts`` in their given order; at
    batch 1 and one thread the per-review latencies of the best pass are kept as well.
    """
    from .model import load
    from .tokenizer import pad_batch

    skipped = {}
    makers = {**sentiment_makers(model_path, engines, variants, skipped), **(extra or {})}
    rows = load(model_path).tokenizer.encode_rows(texts)
    ref = makers["ort"](1)(*pad_batch(rows[:16]))
    parity = [compare(f"{name} vs ort prob", make(1)(*pad_batch(rows[:16])), ref, tolerance(name))
              for name, make in makers.items() if name != "ort"]
    failed = [d for d in parity if not d.ok]
    if failed:
        raise ParityError("not timing: " + "; ".join(map(str, failed)))
    results, latency = [], {}
    for n_threads in threads:
        for batch in batch_sizes:
            batches = [pad_batch(rows[i:i + batch]) for i in range(0, len(rows), batch)]
            for name, make in makers.items():
                run = make(n_threads)
                run(*batches[0])  # warm-up
                best = min((_timed(run, batches) for _ in range(repeats)), key=lambda t: t.sum())
                results.append({"engine": name, "threads": n_threads, "batch": batch,
                                "reviews_per_s": len(rows) / best.sum()})
                if batch == 1 and n_threads == 1:
                    latency[name] = percentiles(best)
    return {"model": str(model_path), "file_bytes": Path(model_path).stat().st_size,
            "reviews": len(rows), "mean_tokens": float(np.mean([len(r) for r in rows])),
            "parity": [d.as_dict() for d in parity], "results": _vs_ort(results, "reviews_per_s"),
            "latency_batch1": latency, "skipped": skipped}


def _timed(run, batches):
    """Seconds of each batch."""
    out = np.empty(len(batches))
    for k, (ids, lengths) in enumerate(batches):
        t0 = time.perf_counter()
        run(ids, lengths)
        out[k] = time.perf_counter() - t0
    return out


def markdown_sentiment(report):
    lines = [f"model {report['model']} ({report['file_bytes'] / 1e6:.2f} MB), {report['reviews']} "
             f"reviews of {report['mean_tokens']:.0f} tokens on average",
             "", "| engine | threads | batch | reviews/s | vs ort |", "|---|---:|---:|---:|---:|"]
    for r in report["results"]:
        lines.append(f"| {r['engine']} | {r['threads']} | {r['batch']} | {r['reviews_per_s']:.1f} "
                     f"| {r['vs_ort']:.2f}x |")
    if report.get("latency_batch1"):
        lines += ["", "| engine | p50 ms / review | p90 | p99 | (batch 1, one thread) |",
                  "|---|---:|---:|---:|---|"]
        for name, r in report["latency_batch1"].items():
            lines.append(f"| {name} | {r['p50_us'] / 1e3:.2f} | {r['p90_us'] / 1e3:.2f} "
                         f"| {r['p99_us'] / 1e3:.2f} | |")
    for name, why in report.get("skipped", {}).items():
        lines.append(f"\nskipped {name}: {why}")
    return "\n".join(lines)
