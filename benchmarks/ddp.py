"""Training throughput of 1 process against 2 (torchrun, gloo) on this machine, per task.

Each task trains a small model for a fixed number of epochs, two ways: one process on one
thread, and two processes of one thread each under ``torchrun --nproc_per_node 2`` (the
global batch the same, each rank half of it). Parity
before timing: the 2-process run must end with the weights of the 1-process, 1-thread run
(``DDP_FP32``; dropout is off), else the numbers are reported as failed. Throughput is
what the loops log per epoch (samples/s of all ranks, the median over epochs); the wall
time of each command, start-up included, is reported beside it.

    python benchmarks/ddp.py --work runs/ddp --out benchmarks/results   (make ddp)

Data: Hamlet, a seeded slice of IMDb's training reviews, Japanese Vowels.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from suite import environment, log, write_atomic  # benchmarks/ is sys.path[0]

HERE = Path(__file__).resolve().parent

TASKS = {  # flags of `rnnedge train TASK`, the log's rate key, its unit
    "charlm": (["--embed-dim", "16", "--hidden-size", "64", "--num-layers", "1", "--batch-size",
                "32", "--num-steps", "50", "--epochs", "1"], "chars_per_s", "chars"),
    "sentiment": (["--embed-dim", "32", "--hidden-size", "32", "--batch-size", "32",
                   "--max-len", "200", "--val-size", "200", "--epochs", "1"], "reviews_per_s",
                  "reviews"),
    "series": (["--hidden-size", "32", "--batch-size", "16", "--epochs", "3", "--patience", "10"],
               "cases_per_s", "cases"),
}
# One thread per process: on 2 cores shared with other jobs, one process of 2 threads ran
# 5-15x slower than one of 1 thread (its threads wait on each other), so it is not a row.
WAYS = {"1 process x 1 thread": (1, 1), "2 processes x 1 thread": (2, 1)}


def imdb_slice(work, n=1600, seed=0):
    """A JSON-lines file of ``n`` seeded IMDb training reviews (made once)."""
    path = work / f"imdb_{n}.jsonl"
    if not path.exists():
        import numpy as np

        from rnnedge.data.imdb import load_imdb

        reviews = load_imdb("train")
        pick = np.random.default_rng(seed).permutation(len(reviews))[:n]
        write_atomic(path, "".join(json.dumps({"text": reviews[i].text, "label": reviews[i].label})
                                   + "\n" for i in pick))
    return path


def command(task, out, data, procs, threads):
    flags = [*TASKS[task][0], "--dropout", "0", "--seed", "0", "--threads", str(threads),
             "--device", "cpu", "--out", str(out), *data]
    if procs == 1:
        return [sys.executable, "-m", "rnnedge.cli", "train", task, *flags]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs),
            "--master_port", str(free_port()), "-m", "rnnedge.cli", "train", task, *flags]


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(task, out, data, procs, threads):
    """{"rate", "wall_s", "ok", "error"}: one training command and its log's median rate."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    done = subprocess.run(command(task, out, data, procs, threads), capture_output=True,
                          text=True, env=env)
    wall = time.perf_counter() - start
    if done.returncode:
        return {"ok": False, "wall_s": wall, "error": done.stderr.strip().splitlines()[-1:]}
    records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    rates = [r[TASKS[task][1]] for r in records if TASKS[task][1] in r]
    return {"ok": True, "wall_s": wall, "rate": statistics.median(rates), "epochs": len(rates)}


def parity(one, two):
    """The weights of two checkpoints compared with ``DDP_FP32``: (ok, max abs difference)."""
    import torch

    from rnnedge.runtime.tolerances import compare
    from rnnedge.runtime.tolerances import DDP_FP32

    a = torch.load(one, map_location="cpu", weights_only=True)["model"]
    b = torch.load(two, map_location="cpu", weights_only=True)["model"]
    diffs = [compare(k, b[k].numpy(), a[k].numpy(), DDP_FP32) for k in a]
    return all(d.ok for d in diffs), max(d.max_abs for d in diffs)


def bench_task(task, work, data):
    """{way: run result} and the parity of 2 processes against 1, for one task."""
    results = {}
    for way, (procs, threads) in WAYS.items():
        out = work / task / f"{procs}x{threads}"
        if out.exists():
            import shutil

            shutil.rmtree(out)
        log(f"{task}: {way}")
        results[way] = run(task, out, data, procs, threads)
    ok, worst = False, float("nan")
    if results["1 process x 1 thread"]["ok"] and results["2 processes x 1 thread"]["ok"]:
        ok, worst = parity(work / task / "1x1" / "last.pt", work / task / "2x1" / "last.pt")
    return {"unit": TASKS[task][2], "ways": results, "parity_ok": ok, "max_abs_diff": worst}


def markdown(report):
    from rnnedge.runtime.tolerances import DDP_FP32

    lines = ["# Training throughput: 1 process against 2 (torchrun, gloo, CPU)", "",
             f"{report['environment']['cpu']}, {report['environment']['cores']} cores, torch "
             f"{report['environment']['torch']}; machine shared with other jobs "
             f"(load average {report['load_average']}). Samples/s of all ranks, median over "
             f"epochs; wall time includes start-up. Parity: weights of the 2-process run "
             f"against the 1-process, 1-thread run, tolerance {DDP_FP32.name} "
             f"(atol {DDP_FP32.atol:g}, rtol {DDP_FP32.rtol:g}).", "",
             "| task | unit | " + " | ".join(WAYS) + " | 2 proc / 1x1 | max weight diff | parity |",
             "|---|---|" + "---|" * len(WAYS) + "---|---|---|"]
    for task, r in report["tasks"].items():
        cells = [f"{w['rate']:,.0f} /s ({w['wall_s']:.0f} s)" if w["ok"] else "failed"
                 for w in r["ways"].values()]
        one, two = r["ways"]["1 process x 1 thread"], r["ways"]["2 processes x 1 thread"]
        ratio = f"{two['rate'] / one['rate']:.2f}x" if one["ok"] and two["ok"] else "-"
        verdict = "ok" if r["parity_ok"] else "FAIL"
        lines.append(f"| {task} | {r['unit']} | " + " | ".join(cells) +
                     f" | {ratio} | {r['max_abs_diff']:.2e} | {verdict} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("runs/ddp"))
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--tasks", nargs="*", default=list(TASKS))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    data = {"charlm": [], "series": [], "sentiment": []}
    if "sentiment" in args.tasks:
        data["sentiment"] = ["--data", str(imdb_slice(args.work))]
    report = {"environment": environment(), "load_average": round(os.getloadavg()[0], 1),
              "tasks": {t: bench_task(t, args.work, data[t]) for t in args.tasks}}
    args.out.mkdir(parents=True, exist_ok=True)
    write_atomic(args.out / "ddp.json", json.dumps(report, indent=1) + "\n")
    write_atomic(args.out / "ddp.md", markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
