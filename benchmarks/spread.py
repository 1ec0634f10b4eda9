"""The headline ratios over repeated runs: ``make spread`` (``python benchmarks/spread.py --help``).

Each target of the int8 and fused-kernel work is a ratio between engines measured in the
same run; one run on a shared machine is one sample. This repeats the two measurements
behind them ``--runs`` times (parity is checked before every timing, as ``rnnedge bench``
does) and writes ``results/spread.json`` (every run's ratios) and ``results/spread.md``
(median and range per ratio):

* the demo char model streaming at batch 1 on one thread: fast and fast-int8 (end to end,
  ``model.run``, and their kernels alone) against onnxruntime fp32, numpy's floor, the
  panel floor and the int8 floor;
* the demo classifier on whole IMDb test reviews at batch 1, one thread: reviews per second
  of fast and fast-int8 over onnxruntime's.

Run it with OPENBLAS_NUM_THREADS=1 (the Makefile does) so that the floor runs on one core.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

CHARLM = [("fast", "ort"), ("fast", "floor"), ("fast", "panel-floor"), ("fast-kernel", "floor"),
          ("fast-int8", "ort"), ("fast-int8", "floor"), ("fast-int8", "int8-floor"),
          ("fast-int8-kernel", "floor"), ("int8-floor", "floor"), ("panel-floor", "floor")]
CLASSIFIER = ["fast", "fast-int8"]


def charlm_ratios(model, steps):
    from rnnedge.deploy.bench_charlm import bench_charlm

    report = bench_charlm(model, steps=steps, rounds=5, kernels=True,
                          engines=("ort", "fast", "fast-int8"))
    p50 = {name: r["p50_us"] for name, r in report["engines"].items()}
    return {f"{a} / {b}": p50[a] / p50[b] for a, b in CHARLM}, p50


def classifier_ratios(model, texts):
    from rnnedge.deploy.bench_sentiment import bench_sentiment

    report = bench_sentiment(model, texts, batch_sizes=(1,), threads=(1,), repeats=3,
                             engines=("ort", "fast", "fast-int8"))
    per_s = {r["engine"]: r["reviews_per_s"] for r in report["results"]}
    return {f"{e} reviews/s / ort": per_s[e] / per_s["ort"] for e in CLASSIFIER}, per_s


def markdown(runs):
    names = list(runs[0]["ratios"])
    lines = [f"{len(runs)} runs, each ratio measured within one run (batch 1, one thread)", "",
             "| ratio | median | min | max |", "|---|---:|---:|---:|"]
    for name in names:
        values = [r["ratios"][name] for r in runs]
        lines.append(f"| {name} | {np.median(values):.2f}x | {min(values):.2f}x | "
                     f"{max(values):.2f}x |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--charlm", type=Path, required=True, help="exported Hamlet model (.onnx)")
    p.add_argument("--sentiment", type=Path, required=True, help="exported IMDb model (.onnx)")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--steps", type=int, default=400, help="char model: timed steps per run")
    p.add_argument("--reviews", type=int, default=64, help="IMDb test reviews per run")
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = p.parse_args(argv)
    from rnnedge.data.imdb import load_imdb

    reviews = load_imdb("test", args.data_dir)
    texts = [r.text for r in reviews[::max(1, len(reviews) // args.reviews)][:args.reviews]]
    runs = []
    for i in range(args.runs):
        ratios, p50 = charlm_ratios(args.charlm, args.steps)
        more, per_s = classifier_ratios(args.sentiment, texts)
        runs.append({"ratios": {**ratios, **more}, "charlm_p50_us": p50, "reviews_per_s": per_s})
        print(f"run {i + 1}/{args.runs}: " + ", ".join(
            f"{k} {v:.2f}x" for k, v in runs[-1]["ratios"].items()), file=sys.stderr, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in (("spread.json", json.dumps(runs, indent=1)), ("spread.md", markdown(runs))):
        tmp = args.out / (name + ".tmp")
        tmp.write_text(text)
        tmp.replace(args.out / name)
    print(markdown(runs))


if __name__ == "__main__":
    main()
