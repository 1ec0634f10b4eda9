"""Every recurrent cell on Japanese Vowels, the README's numbers: ``make series``.

For the LSTM, the GRU and the Elman RNN (tanh), forward, with the default config
(``configs/vowels_gru.toml``, ``--cell`` overridden) and several seeds, it trains on one
thread (``--threads 1``), exports, and scores the exported file torch-free on the 370 test
utterances (onnxruntime, what ``rnnedge evaluate`` prints). Beside the accuracy: training
seconds (the training loop's own clock, from ``train_log.jsonl``), parameters and file size.
Then the best setting found (``configs/vowels_best.toml``: bidirectional GRU 256, max head,
noise, weight averaging) for five seeds: the accuracy target (0.98).
For each file it makes the numba-int8 variant (``rnnedge optimize --numba-int8``, gated on
the accuracy on the test utterances: at most 0.5 points below fp32, classes agreeing on 98 %
of the cases; ``deploy/gate_series.py``) and scores it on the ``fast-int8`` engine, gated or
not. For the first seed it times one streamed frame (forward models), and one whole
utterance, at batch 1 on one thread on every engine and the floor (numpy matrix-vector
products over the weights each frame reads; ``deploy.bench_generic``: parity first,
interleaved rounds, ratios to onnxruntime). Writes ``results/series.json`` and
``results/series.md``.

Checkpoints and exports already in ``--runs`` are reused, as in ``cells.py``; delete
``--runs`` to start over.
"""

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from cells import parameters, train_and_export, training_record  # benchmarks/ is sys.path[0]
from suite import CELLS, HERE, environment, log, write_atomic

ENGINES = ("ort", "numba", "fast", "fast-int8")
BEST = "best"  # the group of configs/vowels_best.toml
TIMED = ENGINES + ("floor",)
DROP_TARGET = 0.5  # points of accuracy the int8 variant may lose


def test_accuracy(model_path, engine, data_dir):
    """Accuracy of an exported series file on the Japanese Vowels test split."""
    from rnnedge.deploy.evaluate import evaluate_series, load_classifier

    return evaluate_series(load_classifier(model_path, engine, threads=1), data_dir=data_dir)["accuracy"]


def int8_row(model_path, data_dir):
    """The numba-int8 variant behind its gate, and the accuracy on the fast-int8 engine.

    The variant is the fp32 graph (fast-int8 quantizes at load), so a file whose gate fails
    is scored on fast-int8 too, marked ``gate_passed: False``, to show what the gate held back.
    """
    from rnnedge.deploy.optimize import optimize
    from rnnedge.runtime.errors import GateError

    out = model_path.with_suffix(".int8.onnx")
    try:
        gate = optimize(model_path, out, numba_int8=True, data_dir=data_dir)["gate"]
        row = {"gate_passed": True, "file": str(out), "gate_cases": gate["cases"],
               "gate_agreement": gate["agreement"]}
    except GateError as exc:
        out, row = model_path, {"gate_passed": False, "gate_error": str(exc)}
    return {**row, "accuracy": test_accuracy(out, "fast-int8", data_dir)}


def latency(model_path, steps, bidirectional=False):
    """p50 µs per streamed frame ("streaming") and per whole utterance ("whole"), and the
    ratio to onnxruntime, of every engine and the floor."""
    from rnnedge.deploy.bench_generic import bench_generic

    out = {}
    for whole in (False, True):
        if not whole and bidirectional:
            continue  # whole utterances only: it reads each case backwards too
        report = bench_generic(model_path, steps=steps, warmup=50, rounds=5, threads=1,
                               engines=ENGINES, whole=whole)
        out[report["workload"]] = {
            "skipped": report["skipped"],
            "engines": {n: {"p50_us": r["p50_us"], "p90_us": r["p90_us"], "vs_ort": r["vs_ort"]}
                        for n, r in report["engines"].items()}}
    return out


def run_row(args, cell, seed):
    """Train (or reuse), export and score one (cell, seed); cell ``BEST``: the best config."""
    name = f"{cell}-s{seed}"
    flags = (["--config", args.best_config, "--seed", seed] if cell == BEST else
             ["--config", args.config, "--cell", cell, "--seed", seed])
    ckpt, model, command = train_and_export(args, name, "series", flags)
    log(f"scoring {name}")
    record = training_record(args.runs / name)
    row = {"name": name, "cell": cell, "seed": seed, "command": command,
           "params": parameters(ckpt), "file_bytes": model.stat().st_size,
           "epochs": record["epochs"], "train_s": record["train_s"],
           "torch_test_accuracy": (record["test"] or {}).get("test_acc"),
           "test_accuracy": test_accuracy(model, "ort", args.data_dir),
           "int8": int8_row(model, args.data_dir)}
    row["int8"]["drop_points"] = 100 * (row["test_accuracy"] - row["int8"]["accuracy"])
    if seed == args.seeds[0]:
        log(f"timing {name}")
        row["latency"] = latency(model, args.steps, bidirectional=cell == BEST)
    return row


def summary(rows):
    """Per cell: mean and range of the accuracies, the int8 drops, training seconds, sizes."""
    out = {}
    for cell in dict.fromkeys(r["cell"] for r in rows):
        mine = [r for r in rows if r["cell"] == cell]
        acc = np.array([r["test_accuracy"] for r in mine])
        int8 = [r["int8"] for r in mine]
        out[cell] = {"seeds": len(mine), "acc_mean": float(acc.mean()), "acc_min": float(acc.min()),
                     "acc_max": float(acc.max()), "train_s_mean": float(np.mean([r["train_s"] for r in mine])),
                     "epochs_mean": float(np.mean([r["epochs"] for r in mine])),
                     "params": mine[0]["params"], "file_bytes": mine[0]["file_bytes"],
                     "gates_passed": sum(i["gate_passed"] for i in int8),
                     "int8_acc_mean": float(np.mean([i["accuracy"] for i in int8])),
                     "drop_mean": float(np.mean([i["drop_points"] for i in int8])),
                     "drop_max": float(max(i["drop_points"] for i in int8)),
                     "latency": next(r["latency"] for r in mine if "latency" in r)}
    return out


def markdown(results):
    s, n = results["summary"], results["seeds"]
    out = ["# Every cell on Japanese Vowels", "",
           f"{results['env']['date']}, {results['env']['cpu']}; `{results['config']}` with `--cell` "
           f"overridden (forward, mean head), seeds {', '.join(map(str, n))}; `best`: "
           f"`{results.get('best_config', 'configs/vowels_best.toml')}` (bidirectional GRU 256, max "
           f"head, noise, the mean weights of the last 31 epochs), seeds "
           f"{', '.join(map(str, results.get('best_seeds', [])))}; training on one thread; "
           "accuracy of the exported file on the 370 test utterances, torch-free (onnxruntime); "
           "train s: the training loop's clock, early stopping included; this invocation "
           f"took {results['wall_s']:.0f} s (checkpoints in `--runs` are reused).", "",
           "| cell | test accuracy, mean | range | epochs | train s | params | file MB |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for cell, c in s.items():
        out.append(f"| {cell} | {c['acc_mean']:.3f} | {c['acc_min']:.3f}-{c['acc_max']:.3f} | "
                   f"{c['epochs_mean']:.0f} | {c['train_s_mean']:.1f} | {c['params']:,} | "
                   f"{c['file_bytes'] / 1e6:.2f} |")
    for workload, what in (("streaming", "Per streamed frame"), ("whole", "Per whole utterance")):
        out += ["", f"{what}, batch 1, one thread, p50 µs (seed {n[0]}; ratio to onnxruntime "
                "in the same run, parity checked first; the floor: numpy matrix-vector products "
                "over the weights each frame reads):", "",
                "| cell | " + " | ".join(TIMED) + " |", "|---|" + "---:|" * len(TIMED)]
        for cell, c in s.items():
            if workload not in c["latency"]:
                continue
            eng = c["latency"][workload]["engines"]
            out.append(f"| {cell} | " + " | ".join(
                f"{eng[e]['p50_us']:.0f}" + ("" if e == "ort" else f" ({eng[e]['vs_ort']:.2f}x)")
                if e in eng else "skipped" for e in TIMED) + " |")
    out += ["", "int8 weights (`rnnedge optimize --numba-int8`, gated on the test accuracy: at most "
            f"{DROP_TARGET} points below fp32, classes agreeing on 98% of the utterances); test "
            "accuracy on the fast-int8 engine, all seeds, gated or not:", "",
            "| cell | gates passed | fp32 accuracy | int8 accuracy | drop, mean (points) | drop, worst |",
            "|---|---:|---:|---:|---:|---:|"]
    for cell, c in s.items():
        out.append(f"| {cell} | {c['gates_passed']}/{c['seeds']} | {c['acc_mean']:.3f} | "
                   f"{c['int8_acc_mean']:.3f} | {c['drop_mean']:+.2f} | {c['drop_max']:+.2f} |")
    failed = [r for r in results["rows"] if not r["int8"]["gate_passed"]]
    out += ([""] if failed else []) + [f"- gate failed, {r['name']}: {r['int8']['gate_error']}"
                                       for r in failed]
    out += ["", "Commands (each run then `rnnedge export RUN/best.pt --out RUN.onnx`):", ""]
    out += [f"- `{r['command']}`" for r in results["rows"]]
    return "\n".join(out) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=Path, default=Path("runs/series"))
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--config", default="configs/vowels_gru.toml")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--best-config", default="configs/vowels_best.toml")
    p.add_argument("--best-seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4])
    p.add_argument("--steps", type=int, default=500, help="timed streamed frames per engine")
    args = p.parse_args(argv)
    if args.data_dir:
        os.environ["RNNEDGE_DATA"] = str(args.data_dir)
    started = time.perf_counter()
    rows = [run_row(args, cell, seed) for cell in CELLS for seed in args.seeds]
    rows += [run_row(args, BEST, seed) for seed in args.best_seeds]
    results = {"env": environment(), "config": args.config, "seeds": args.seeds,
               "best_config": args.best_config, "best_seeds": args.best_seeds,
               "summary": summary(rows), "rows": rows,
               "wall_s": time.perf_counter() - started}
    args.out.mkdir(parents=True, exist_ok=True)
    write_atomic(args.out / "series.json", json.dumps(results, indent=1))
    write_atomic(args.out / "series.md", markdown(results))
    log(f"wrote {args.out / 'series.md'} in {results['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
