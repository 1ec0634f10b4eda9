"""The rnnedge benchmark suite: ``make bench`` (or ``python benchmarks/suite.py --help``).

Measures, in one run on this machine, every engine on both workloads and writes
``results/bench.json`` (everything, raw latency samples included), ``results/bench.md``
(the tables the README carries) and two plots (``latency.png``: per-step latency
distributions of each engine; ``hidden.png``: p50 per step against the hidden size).

Sections, in order:

1. variants: ``rnnedge optimize`` makes the int8 and fp16 variants of the trained models and
   runs their accuracy gates on real data (Hamlet validation text; IMDb test reviews, a
   stride of ``--gate-reviews`` of them); a variant that fails its gate is not benchmarked.
2. streaming: the Hamlet model at batch 1 on one thread, every engine, parity first, with
   the fast engines' kernels called directly and the numpy and int8 matrix-vector floors; then characters/s at batch 1, 8, 64 on one and two threads.
3. classifier: IMDb reviews/s at batch 1, 8, 64 on one and two threads, per-review latency.
4. cells: the same measurements for the LSTM, GRU and Elman RNN of each workload. Trained
   checkpoints are used where ``--cells-dir`` has them; otherwise weights fresh from
   PyTorch's initialisation (timing depends on shapes only; marked ``random`` in the JSON).
5. hidden sizes: 2-layer LSTM char models of hidden size 64 to 1024 (fresh weights).
6. start-up and memory: ``rnnedge generate`` / ``rnnedge classify`` in fresh processes with
   torch blocked, time from process start to the first byte of output, peak resident memory;
   the fast engine with an empty numba cache (first call after an install) and a warm one.

Run it with OPENBLAS_NUM_THREADS=1 (the Makefile does) so that the floor runs on one core.
This file runs the sections in order and writes the results; the pieces are its siblings:
``prepare.py`` (models and variants), ``startup.py``, ``report.py`` (``bench.md``) and
``plots.py``. The timing itself is ``rnnedge.deploy``'s.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy: the floor is one core

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # sys.path[0] when run as a script, not when loaded by its path
    sys.path.insert(0, str(HERE))

from plots import plots  # noqa: E402
from prepare import cell_model, exported, fresh_checkpoint, make_variants, timing_variants  # noqa: E402
from report import markdown  # noqa: E402
from startup import import_profile, startup  # noqa: E402

CELLS = ("lstm", "gru", "rnn")
STREAM_ENGINES = ("ort", "numba", "fast", "fast-int8")


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def write_atomic(path, text):
    """``text`` to ``path`` through rnnedge's one writer (whole or not at all)."""
    from rnnedge.runtime.atomic import write_atomic as write

    write(path, text.encode())


def environment():
    import platform

    import numba
    import onnxruntime
    import torch

    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                if ln.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    return {"date": time.strftime("%Y-%m-%d %H:%M"), "cpu": cpu, "cores": os.cpu_count(),
            "python": platform.python_version(), "numpy": np.__version__,
            "onnxruntime": onnxruntime.__version__, "numba": numba.__version__,
            "torch": torch.__version__, "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS")}


# -- measurements -------------------------------------------------------------------------
def streaming(model, checkpoint, variants, steps, rounds, engines=STREAM_ENGINES, samples=False,
              kernels=False):
    """(latency report, makers) of every engine and variant on the char ``model``, PyTorch too;
    ``kernels``: the fast engines' kernels called directly too (``kernel_makers``)."""
    from rnnedge.deploy.bench_charlm import kernel_makers, latency_report, runtime_makers
    from rnnedge.export.torch_engines import charlm_maker

    skipped, precisions = {}, {}
    makers = {**runtime_makers(model, engines, tuple(variants.values()), skipped, precisions),
              **(kernel_makers(model, [e for e in engines if e.startswith("fast")], precisions)
                 if kernels else {}),
              "torch": charlm_maker(checkpoint)}
    report = latency_report(model, makers, skipped, steps=steps, warmup=min(100, steps // 5),
                            rounds=rounds, samples=samples, precisions=precisions)
    return report, makers


def classifier(model, checkpoint, variants, texts, batch_sizes, threads, repeats):
    from rnnedge.deploy.bench_sentiment import bench_sentiment
    from rnnedge.export.torch_engines import sentiment_maker

    return bench_sentiment(model, texts, {"torch": sentiment_maker(checkpoint)},
                           batch_sizes=batch_sizes, threads=threads, repeats=repeats,
                           variants=tuple(variants.values()))


# -- the sections ---------------------------------------------------------------------------
def variants_section(args, results):
    """Gated variants of both models: {"charlm": {name: path}, "sentiment": {...}}."""
    variants, reports = {}, {}
    for key, model, names in (("charlm", args.charlm, ("int8", "fp16", "numba-int8")),
                              ("sentiment", args.sentiment, ("int8", "fp16"))):
        variants[key], reports[key] = make_variants(key, model, args.work, args.gate_reviews,
                                                    args.data_dir, names)
        for name, report in reports[key].items():
            if not report["written"]:
                log(f"{name} variant of {model}: {report['error']}")
        results["sizes"][key] = model.stat().st_size
    results["variants"] = reports
    return variants


def streaming_section(args, results, variants):
    from rnnedge.deploy.bench_charlm import throughput_charlm
    from rnnedge.runtime.model import load

    log("streaming, Hamlet model")
    results["streaming"], makers = streaming(args.charlm, args.charlm_checkpoint, variants,
                                             args.steps, args.rounds, samples=True, kernels=True)
    log("streaming throughput")
    results["streaming_throughput"] = throughput_charlm(makers, len(load(args.charlm).vocab))


def classifier_section(args, results, variants):
    """The classifier's figures; returns the review texts it timed."""
    from rnnedge.data.imdb import load_imdb

    log("classifier")
    reviews = load_imdb("test", args.data_dir)
    texts = [r.text for r in reviews[::max(1, len(reviews) // args.reviews)][:args.reviews]]
    results["classifier"] = classifier(args.sentiment, args.sentiment_checkpoint, variants,
                                       texts, (1, 8, 64), (1, 2), 3)
    return texts


def cells_section(args, results, texts):
    results["cells"] = {}
    for cell in CELLS:
        log(f"cell {cell}")
        c_ckpt, c_model, weights = cell_model("charlm", cell, args.charlm_checkpoint, args.cells_dir,
                                              args.work)
        s_ckpt, s_model, s_weights = cell_model("sentiment", cell, args.sentiment_checkpoint,
                                                args.cells_dir, args.work)
        c_variants = timing_variants(c_model, args.work)
        stream, _ = streaming(c_model, c_ckpt, {"int8": c_variants["int8"]}, 500, 5,
                              engines=("ort", "fast", "fast-int8"))
        results["cells"][cell] = {
            "weights": weights, "classifier_weights": s_weights,
            "charlm_bytes": c_model.stat().st_size, "sentiment_bytes": s_model.stat().st_size,
            "streaming": stream,
            "classifier": classifier(s_model, s_ckpt, {}, texts[:64], (1, 64), (1,), 1)}


def hidden_section(args, results):
    results["hidden_sweep"] = []
    for hidden in args.hidden:
        log(f"hidden size {hidden}")
        ckpt = fresh_checkpoint(args.charlm_checkpoint, args.work / f"charlm-h{hidden}.pt",
                                hidden_size=hidden, num_layers=2, cell="lstm")
        model = exported(ckpt, args.work / f"charlm-h{hidden}.onnx")
        steps = 400 if hidden <= 256 else 150
        r, _ = streaming(model, ckpt, {"int8": timing_variants(model, args.work)["int8"]}, steps, 3,
                         engines=("ort", "fast", "fast-int8"))
        results["hidden_sweep"].append({"hidden_size": hidden, "file_bytes": model.stat().st_size,
                                        "floor_bytes": r.get("floor_bytes"), "engines": r["engines"]})


# -- main ---------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--charlm", type=Path, required=True, help="exported Hamlet model (.onnx)")
    p.add_argument("--charlm-checkpoint", type=Path, required=True)
    p.add_argument("--sentiment", type=Path, required=True, help="exported IMDb model (.onnx)")
    p.add_argument("--sentiment-checkpoint", type=Path, required=True)
    p.add_argument("--cells-dir", type=Path, default=None,
                   help="trained per-cell checkpoints TASK-CELL/best.pt (else fresh weights)")
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--work", type=Path, default=Path("runs/bench"), help="variants and sweep models")
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--steps", type=int, default=2000, help="timed streaming steps, main model")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--reviews", type=int, default=128, help="IMDb test reviews per throughput pass")
    p.add_argument("--gate-reviews", type=int, default=2000, help="IMDb test reviews per gate")
    p.add_argument("--hidden", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    p.add_argument("--startup-repeats", type=int, default=5)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    t_start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    results = {"environment": environment(), "sizes": {}}

    log("variants and their gates")
    variants = variants_section(args, results)
    streaming_section(args, results, variants["charlm"])
    texts = classifier_section(args, results, variants["sentiment"])
    cells_section(args, results, texts)
    hidden_section(args, results)
    log("start-up and memory")
    results["startup"] = startup(args.charlm, args.sentiment, args.startup_repeats, args.work)
    results["imports_s"] = import_profile()
    results["elapsed_s"] = time.perf_counter() - t_start

    write_atomic(args.out / "bench.json", json.dumps(results, indent=1))
    write_atomic(args.out / "bench.md", markdown(results))
    plots(results, args.out)
    log(f"wrote {args.out / 'bench.json'}, bench.md, latency.png, hidden.png "
        f"in {results['elapsed_s']:.0f} s")


if __name__ == "__main__":
    main()
