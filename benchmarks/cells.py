"""Every recurrent cell on both workloads under one time budget: ``make cells``.

For the LSTM, the GRU and the Elman RNN (tanh) it trains the Hamlet char model and the
IMDb classifier (with the mean head, rnnedge's default, and with the chapter's last-state
head) on one thread under a fixed wall-clock budget, exports each, and scores the
exported file with the torch-free runtime: validation bits per character on Hamlet,
test accuracy on the 25,000 IMDb test reviews (what ``rnnedge evaluate`` prints). Beside
them: parameters, file size, and latency at batch 1 on one thread (per streamed character;
per review and per token for the classifier). Writes ``results/cells.json`` and
``results/cells.md``.

Checkpoints already in ``--runs`` are reused, so an interrupted run resumes where it
stopped; delete ``--runs`` to start over. The training commands are the ones printed,
one thread each (``--threads 1``), so the budgets compare like with like.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from suite import CELLS, HERE, log, write_atomic  # benchmarks/ is sys.path[0]; sets OPENBLAS_NUM_THREADS

def rnnedge(*args):
    """Run the rnnedge CLI of this interpreter's environment; fail loudly."""
    cmd = [sys.executable, "-m", "rnnedge.cli", *map(str, args)]
    log("rnnedge " + " ".join(map(str, args)))
    subprocess.run(cmd, check=True)


def runs_for(args):
    """(name, task, cell, training flags) of every run."""
    out = []
    for cell in CELLS:
        out.append((f"charlm-{cell}", "charlm", cell,
                    ["--cell", cell, "--epochs", "100", "--max-minutes", args.charlm_minutes]))
    for head in ("mean", "last"):
        for cell in CELLS:
            name = f"sentiment-{cell}" if head == "mean" else f"sentiment-last-{cell}"
            out.append((name, "sentiment", cell, ["--cell", cell, "--head", head, "--epochs", "8",
                                                   "--max-minutes", args.sentiment_minutes]))
    return out


def train_and_export(args, name, task, flags):
    ckpt, model = args.runs / name / "best.pt", args.runs / f"{name}.onnx"
    command = ["train", task, "--out", args.runs / name, "--threads", "1", *flags]
    if not ckpt.exists():
        if (args.runs / name).exists():  # a run cut short before its first checkpoint
            import shutil

            shutil.rmtree(args.runs / name)
        rnnedge(*command)
    if not model.exists():
        rnnedge("export", ckpt, "--out", model)
    return ckpt, model, "rnnedge " + " ".join(map(str, command))


def training_record(run_dir):
    lines = [json.loads(ln) for ln in (run_dir / "train_log.jsonl").read_text().splitlines() if ln]
    epochs = [r for r in lines if "epoch" in r and "event" not in r]
    return {"epochs": len(epochs), "train_s": epochs[-1]["elapsed_s"] if epochs else None,
            "test": next((r for r in lines if r.get("event") == "test"), None)}


def parameters(checkpoint):
    from rnnedge.train import checkpoint as ckpt_io

    return int(sum(t.numel() for t in ckpt_io.load(checkpoint)["model"].values()))


def charlm_row(args, ckpt, model):
    from rnnedge.deploy.gates import bits_per_char
    from rnnedge.export.torch_engines import charlm_maker
    from rnnedge.deploy.bench_charlm import bench_charlm
    from rnnedge.runtime.model import load
    from rnnedge.data.hamlet import CharCorpus, load_text

    corpus = CharCorpus.from_text(load_text(None, args.data_dir))
    bpc, _ = bits_per_char(load(model, engine="ort", threads=2), corpus.val)
    report = bench_charlm(model, {"torch": charlm_maker(ckpt)}, steps=args.steps, warmup=50,
                          engines=("ort", "fast", "fast-int8"), rounds=5)
    return {"val_bpc": bpc, "latency": {n: r["p50_us"] for n, r in report["engines"].items()}}


def sentiment_row(args, ckpt, model, reviews):
    from rnnedge.export.torch_engines import sentiment_maker
    from rnnedge.deploy.bench_sentiment import bench_sentiment
    from rnnedge.runtime.model import load
    from rnnedge.runtime.sentiment import evaluate

    scored = evaluate(load(model, engine="ort", threads=2), [r.text for r in reviews],
                      [r.label for r in reviews])
    texts = [r.text for r in reviews[::len(reviews) // args.latency_reviews][:args.latency_reviews]]
    report = bench_sentiment(model, texts, {"torch": sentiment_maker(ckpt)}, batch_sizes=(1,),
                             threads=(1,), repeats=3, engines=("ort",))
    per_review = {n: r["p50_us"] for n, r in report["latency_batch1"].items()}
    return {"test_accuracy": scored["accuracy"], "test_correct": scored["correct"],
            "test_n": scored["n"], "latency_review": per_review,
            "latency_token": {n: us / report["mean_tokens"] for n, us in per_review.items()},
            "mean_tokens": report["mean_tokens"]}


def markdown(results):
    out = ["# Every cell on both workloads", "",
           f"{results['date']}; training on one thread, {results['charlm_minutes']} min per Hamlet "
           f"model, {results['sentiment_minutes']} min per IMDb model; scores from the exported "
           "files through the torch-free runtime; latency at batch 1, one thread, p50.", "",
           "## Hamlet char model (2 layers x 256, embedding 64)", "",
           "| cell | val bits/char | epochs | params | file MB | µs/char ort | fast | fast-int8 | "
           "PyTorch |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results["rows"]:
        if r["task"] != "charlm":
            continue
        lat = r["latency"]
        out.append(f"| {r['cell']} | {r['val_bpc']:.3f} | {r['epochs']} | {r['params']:,} | "
                   f"{r['file_bytes'] / 1e6:.2f} | {lat['ort']:.0f} | {lat['fast']:.0f} | "
                   f"{lat['fast-int8']:.0f} | {lat['torch']:.0f} |")
    for head in ("mean", "last"):
        out += ["", f"## IMDb classifier ({head} head, 1 layer x 128, embedding 64, 400 tokens)", "",
                "| cell | test accuracy | epochs | params | file MB | ms/review ort | µs/token ort "
                "| ms/review PyTorch |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in results["rows"]:
            if r["task"] != "sentiment" or r["head"] != head:
                continue
            out.append(f"| {r['cell']} | {r['test_accuracy']:.4f} | {r['epochs']} | {r['params']:,} | "
                       f"{r['file_bytes'] / 1e6:.2f} | {r['latency_review']['ort'] / 1e3:.2f} | "
                       f"{r['latency_token']['ort']:.1f} | {r['latency_review']['torch'] / 1e3:.2f} |")
    out += ["", "Commands (each run: `rnnedge export RUN/best.pt --out RUN.onnx`, then scored):", ""]
    out += [f"- `{r['command']}`" for r in results["rows"]]
    return "\n".join(out) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=Path, default=Path("runs/cells"))
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--charlm-minutes", default="5")
    p.add_argument("--sentiment-minutes", default="8")
    p.add_argument("--steps", type=int, default=500, help="timed streaming steps per model")
    p.add_argument("--latency-reviews", type=int, default=64)
    args = p.parse_args(argv)
    if args.data_dir:
        os.environ["RNNEDGE_DATA"] = str(args.data_dir)

    from rnnedge.data.imdb import load_imdb

    reviews = None
    rows = []
    for name, task, cell, flags in runs_for(args):
        ckpt, model, command = train_and_export(args, name, task, flags)
        log(f"scoring {name}")
        row = {"name": name, "task": task, "cell": cell, "command": command,
               "params": parameters(ckpt), "file_bytes": model.stat().st_size,
               **training_record(args.runs / name)}
        if task == "charlm":
            row.update(charlm_row(args, ckpt, model))
        else:
            reviews = reviews or load_imdb("test", args.data_dir)
            row.update(head="last" if "last" in name else "mean",
                       **sentiment_row(args, ckpt, model, reviews))
        rows.append(row)
    results = {"date": time.strftime("%Y-%m-%d %H:%M"), "charlm_minutes": args.charlm_minutes,
               "sentiment_minutes": args.sentiment_minutes, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    write_atomic(args.out / "cells.json", json.dumps(results, indent=1))
    write_atomic(args.out / "cells.md", markdown(results))
    log(f"wrote {args.out / 'cells.md'}")


if __name__ == "__main__":
    main()
