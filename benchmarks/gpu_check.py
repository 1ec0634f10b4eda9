"""The steps of ``benchmarks/gpu_check.sh``: train, export and verify each workload per device.

For each task (charlm, sentiment, series) and each of CUDA fp32, CUDA bf16 and CPU fp32
(plus CUDA fp16 for the classifier, the loss-scaling path): train for a fixed short budget,
read the samples/s the loop logged, then export the checkpoint and ``rnnedge verify`` it (a
CUDA-trained checkpoint must export on the CPU like any other). Then the tests that a GPU
un-skips (``tests/test_precision.py``). Each step is timed and recorded; a failure is
recorded and the next step runs. ``--mode cpu-only`` runs the CPU rows with tiny budgets,
to try this script where there is no GPU.

Data are synthetic, written here with a fixed seed (the GPU machine has no data sets and no
network): the shapes of Hamlet, IMDb reviews and Japanese Vowels, which is what throughput
depends on. Results: ``OUT/gpu_check.json`` (and the logs of every step beside it).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

RATE = {"charlm": "chars_per_s", "sentiment": "reviews_per_s", "series": "cases_per_s"}
MODEL = {  # the README's presets, sized for a GPU
    "charlm": ["--config", "configs/hamlet_2x256.toml", "--batch-size", "64"],
    "sentiment": ["--config", "configs/imdb_lstm128.toml", "--val-size", "500",
                  "--batch-size", "64"],
    "series": ["--config", "configs/vowels_gru.toml", "--batch-size", "32"],
}
TINY = {  # --mode cpu-only: seconds, not minutes
    "charlm": ["--hidden-size", "32", "--num-layers", "1", "--batch-size", "16", "--epochs", "1"],
    "sentiment": ["--hidden-size", "16", "--embed-dim", "16", "--val-size", "50", "--epochs", "1"],
    "series": ["--hidden-size", "16", "--epochs", "2"],
}


def synthetic(root, small):
    """{task: flags naming its data}: a text, labelled reviews, labelled frames."""
    import numpy as np

    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    words = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), size=rng.integers(1, 9)))
             for _ in range(3000)]
    text = root / "text.txt"
    text.write_text(" ".join(rng.choice(words, size=4000 if small else 35000)))
    reviews = root / "reviews.jsonl"
    with reviews.open("w") as fh:
        for i in range(300 if small else 6000):
            n = int(rng.integers(20, 120 if small else 500))
            fh.write(json.dumps({"text": " ".join(rng.choice(words[:2000 + 500 * (i % 2)], size=n)),
                                 "label": i % 2}) + "\n")
    cases = 90 if small else 900
    y = np.arange(cases) % 9
    X = rng.standard_normal((cases, 29, 12)).astype(np.float32) + 0.3 * y[:, None, None]
    frames = root / "frames.npz"
    np.savez(frames, X=X, lengths=rng.integers(7, 30, size=cases), y=y)
    return {"charlm": ["--text", str(text)], "sentiment": ["--data", str(reviews)],
            "series": ["--data", str(frames)]}


def rows(mode):
    """(task, device, precision) of every training run of this mode, the most telling first
    (a run out of time skips the rest)."""
    ways = ([("cpu", "fp32"), ("cpu", "bf16")] if mode == "cpu-only" else
            [("cuda", "fp32"), ("cuda", "bf16"), ("cpu", "fp32")])
    runs = [(task, device, precision) for device, precision in ways for task in RATE]
    return runs + ([] if mode == "cpu-only" else [("sentiment", "cuda", "fp16")])


def timed(name, cmd, out):
    """Run ``cmd``, its output to ``out/NAME.log``; {"step", "ok", "rc", "seconds"}."""
    start = time.perf_counter()
    with open(out / f"{name}.log", "w") as fh:
        try:
            rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, timeout=300).returncode
        except subprocess.TimeoutExpired:
            rc = 124
    seconds = round(time.perf_counter() - start, 1)
    record = {"step": name, "ok": rc == 0, "rc": rc, "seconds": seconds}
    print(json.dumps(record), file=sys.stderr, flush=True)
    return record


def rate(run_dir, task):
    """Median samples/s over the epochs the loop logged, None when there is no log."""
    log = run_dir / "train_log.jsonl"
    if not log.exists():
        return None
    records = map(json.loads, log.read_text().splitlines())
    rates = [r[RATE[task]] for r in records if RATE[task] in r]
    return statistics.median(rates) if rates else None


def train_export_verify(task, device, precision, data, args):
    """The three steps of one run; the training record carries its samples/s."""
    name = f"{task}-{device}-{precision}"
    run_dir, cli = args.out / "runs" / name, [sys.executable, "-m", "rnnedge.cli"]
    small = args.mode == "cpu-only"
    train = [*cli, "train", task, "--out", str(run_dir), "--device", device,
             "--precision", precision, "--max-minutes", str(args.minutes), *MODEL[task],
             *(TINY[task] if small else []), *data[task]]
    steps = [{**timed(f"train-{name}", train, args.out), "samples_per_s": rate(run_dir, task)}]
    if steps[0]["ok"] and (device == "cuda" or small):  # CPU-trained exports are CI's business
        model = args.out / "runs" / f"{name}.onnx"
        steps.append(timed(f"export-{name}", [*cli, "export", str(run_dir / "best.pt"),
                                              "--out", str(model)], args.out))
        if steps[-1]["ok"]:  # a series model carries its golden bundle; the others are
            # compared with their checkpoint in PyTorch
            against = [] if task == "series" else ["--checkpoint", str(run_dir / "best.pt")]
            steps.append(timed(f"verify-{name}", [*cli, "verify", str(model), *against], args.out))
    return steps


def environment():
    import torch

    cuda = torch.cuda.is_available()
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "python": platform.python_version(),
            "torch": torch.__version__, "cuda": torch.version.cuda, "cuda_available": cuda,
            "gpu": torch.cuda.get_device_name(0) if cuda else None,
            "cudnn": torch.backends.cudnn.version() if cuda else None,
            "bf16_supported": torch.cuda.is_bf16_supported() if cuda else None,
            "cpu_threads": torch.get_num_threads(), "cores": os.cpu_count()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("gpu", "cpu-only"), default="gpu")
    parser.add_argument("--out", type=Path, default=Path("gpu_results"))
    parser.add_argument("--steps", type=Path, help="steps.jsonl of the shell part (install)")
    parser.add_argument("--minutes", type=float, help="training budget per run")
    parser.add_argument("--deadline", type=float, help="Unix time after which no run starts "
                        "(default: 7 minutes after the shell part started)")
    args = parser.parse_args()
    args.minutes = args.minutes or (0.05 if args.mode == "cpu-only" else 0.2)
    args.deadline = args.deadline or float(os.environ.get("GPU_CHECK_START", time.time())) + 420
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"mode": args.mode, "budget_minutes": args.minutes, "steps": [],
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    if args.steps and args.steps.exists():
        report["steps"] += [json.loads(line) for line in args.steps.read_text().splitlines()]
    try:
        report["environment"] = environment()
        data = synthetic(args.out / "data", args.mode == "cpu-only")
        for task, device, precision in rows(args.mode):
            if time.time() > args.deadline:
                report["steps"].append({"step": f"train-{task}-{device}-{precision}", "ok": False,
                                        "rc": None, "skipped": "out of time"})
                continue
            report["steps"] += train_export_verify(task, device, precision, data, args)
        if args.mode == "gpu" and time.time() < args.deadline:
            pytest = [sys.executable, "-m", "pytest", "-q", "tests/test_precision.py"]
            report["steps"].append(timed("pytest-precision", pytest, args.out))
    except Exception as exc:  # the report is still written, with what broke
        report["error"] = f"{type(exc).__name__}: {exc}"
    report["ok"] = "error" not in report and all(s["ok"] for s in report["steps"])
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=1) + "\n")
    summary = {s["step"]: s.get("samples_per_s", s["ok"]) for s in report["steps"]}
    print(json.dumps(summary, indent=1))
    sys.exit(0 if report["ok"] else 1)


if __name__ == "__main__":
    main()
