"""The classifier's benchmark: whole reviews per second, and per-review latency at batch 1.

An engine is a maker ``make(threads) -> run(tokens, lengths) -> probs``. Every engine's
probabilities are checked against onnxruntime's, each at its precision's tolerance, before
anything is timed. The floor (no parity: it computes no answer) is numpy matrix-vector
products over the weights each valid token reads (layer 0's R, [W | R] above, per
direction; ``bench_generic.seq_floor_matrices``) and the head once per review. Not here:
the timers (``timing.py``), the character model (``bench_charlm.py``).
"""

from functools import partial
from pathlib import Path

import numpy as np

from rnnedge.runtime.errors import ParityError
from rnnedge.runtime.parity import failure_report
from rnnedge.runtime.tolerances import compare

from .makers import ORT_DIRECT, DirectOrt, per_threads, tolerance, usable, variant_engine
from .bench_generic import seq_floor_matrices
from .timing import FLOOR, percentiles, time_batches, vs_ort
from .timing import floor_maker as timing_floor


def sentiment_makers(model_path, engines=("ort", "numba", "fast", "fast-int8"), variants=(),
                     skipped=None, precisions=None):
    """``make(threads) -> run(tokens, lengths) -> probs`` per runtime engine and variant.

    As ``bench_charlm.runtime_makers``: left-out engines go to ``skipped``, each variant's
    precision to ``precisions``; a variant runs on its engine (``makers.variant_engine``).
    """
    from rnnedge.runtime.model import load

    def maker(path, engine):
        def build(threads):
            model = load(path, engine=engine, threads=threads)
            return lambda ids, lens: model.run(ids, lens)[1]
        return per_threads(build)

    makers = usable({name: maker(model_path, name) for name in engines}, lambda make: make(1),
                    {} if skipped is None else skipped)
    if "ort" in engines:  # session.run itself, no rnnedge layer: the fair baseline
        makers[ORT_DIRECT] = per_threads(partial(_direct, model_path))
    for path in variants:
        name, dtype, engine = variant_engine(path)
        if precisions is not None:
            precisions[name] = dtype
        makers[name] = maker(path, engine)
    return makers


def _direct(model_path, threads):
    direct = DirectOrt(model_path, threads=threads)
    return lambda ids, lengths: direct.run({"tokens": ids, "lengths": lengths})["prob"]


def check_parity(makers, rows, precisions=None):
    """Every engine's probabilities of ``rows`` against onnxruntime's; raises on failure."""
    from rnnedge.runtime.tokenizer import pad_batch

    batch = pad_batch(rows)
    ref = makers["ort"](1)(*batch)
    diffs = [compare(f"{name} vs ort prob", make(1)(*batch), ref, tolerance(name, precisions))
             for name, make in makers.items() if name != "ort"]
    if not all(d.ok for d in diffs):
        raise ParityError(failure_report("not timing", diffs))
    return diffs


def floor_maker(model_path):
    """``make(threads) -> run(tokens, lengths)``: the floor's products, row by row."""
    mats, fc = seq_floor_matrices(model_path)[:2]
    recurrent, head = timing_floor(mats)(), timing_floor([fc])()

    def run(ids, lengths):
        for n in lengths:
            for _ in range(int(n)):
                recurrent(None)
            head(None)
    return lambda threads: run


def bench_sentiment(model_path, texts, extra=None, batch_sizes=(1, 8, 64), threads=(1, 2), repeats=3,
                    variants=(), engines=("ort", "numba", "fast", "fast-int8")):
    """Reviews per second per engine, batch size and thread count, parity checked first.

    ``extra`` maps an engine name to ``make(threads) -> run(tokens, lengths) -> probs``.
    Each figure is the best of ``repeats`` passes over ``texts`` in their given order, the
    engines' passes in turn; at batch 1 and one thread the per-review latencies of the best
    pass are kept as well.
    """
    from rnnedge.runtime.model import load
    from rnnedge.runtime.quiet import Stages
    from rnnedge.runtime.tokenizer import pad_batch

    stage = Stages("bench")
    skipped, precisions = {}, {}
    makers = {**sentiment_makers(model_path, engines, variants, skipped, precisions),
              **(extra or {})}
    rows = load(model_path).tokenizer.encode_rows(texts)
    parity = check_parity(makers, rows[:16], precisions)
    makers[FLOOR] = floor_maker(model_path)
    results, latency = [], {}
    for n_threads in threads:
        for batch in batch_sizes:
            stage(f"batch {batch} on {n_threads} thread(s), {', '.join(makers)}")
            batches = [pad_batch(rows[i:i + batch]) for i in range(0, len(rows), batch)]
            runs = {name: make(n_threads) for name, make in makers.items()}
            for run in runs.values():
                run(*batches[0])  # warm-up
            passes = {name: [] for name in runs}
            for _ in range(repeats):  # in turn, so that load elsewhere hits every engine alike
                for name, run in runs.items():
                    passes[name].append(time_batches(run, batches))
            for name, timed in passes.items():
                best = min(timed, key=lambda t: t.sum())
                results.append({"engine": name, "threads": n_threads, "batch": batch,
                                "reviews_per_s": len(rows) / best.sum()})
                if batch == 1 and n_threads == 1:
                    latency[name] = percentiles(best)
    return {"model": str(model_path), "file_bytes": Path(model_path).stat().st_size,
            "reviews": len(rows), "mean_tokens": float(np.mean([len(r) for r in rows])),
            "parity": [d.as_dict() for d in parity], "results": vs_ort(results, "reviews_per_s"),
            "latency_batch1": latency, "skipped": skipped}


def markdown_sentiment(report):
    """The throughput and latency tables of a ``bench_sentiment`` report."""
    lines = [f"model {report['model']} ({report['file_bytes'] / 1e6:.2f} MB), {report['reviews']} "
             f"reviews of {report['mean_tokens']:.0f} tokens on average",
             "", "| engine | threads | batch | reviews/s | vs ort | vs ort-direct |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in report["results"]:
        direct = f"{r['vs_ort_direct']:.2f}x" if "vs_ort_direct" in r else "-"
        lines.append(f"| {r['engine']} | {r['threads']} | {r['batch']} | {r['reviews_per_s']:.1f} "
                     f"| {r['vs_ort']:.2f}x | {direct} |")
    if report.get("latency_batch1"):
        lines += ["", "| engine | p50 ms / review | p90 | p99 | (batch 1, one thread) |",
                  "|---|---:|---:|---:|---|"]
        for name, r in report["latency_batch1"].items():
            lines.append(f"| {name} | {r['p50_us'] / 1e3:.2f} | {r['p90_us'] / 1e3:.2f} "
                         f"| {r['p99_us'] / 1e3:.2f} | |")
    for name, why in report.get("skipped", {}).items():
        lines.append(f"\nskipped {name}: {why}")
    return "\n".join(lines)
