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
   the numpy matrix-vector floor; then characters/s at batch 1, 8, 64 on one and two threads.
3. classifier: IMDb reviews/s at batch 1, 8, 64 on one and two threads, per-review latency.
4. cells: the same measurements for the LSTM, GRU and Elman RNN of each workload. Trained
   checkpoints are used where ``--cells-dir`` has them; otherwise weights fresh from
   PyTorch's initialisation (timing depends on shapes only; marked ``random`` in the JSON).
5. hidden sizes: 2-layer LSTM char models of hidden size 64 to 1024 (fresh weights).
6. start-up and memory: ``rnnedge generate`` / ``rnnedge classify`` in fresh processes with
   torch blocked, time from process start to the first byte of output, peak resident memory;
   the fast engine with an empty numba cache (first call after an install) and a warm one.

Run it with OPENBLAS_NUM_THREADS=1 (the Makefile does) so that the floor runs on one core.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy: the floor is one core

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
CELLS = ("lstm", "gru", "rnn")
STREAM_ENGINES = ("ort", "numba", "fast", "fast-int8")


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- models -----------------------------------------------------------------------------
def fresh_checkpoint(base, out, seed=0, **changes):
    """A checkpoint like ``base`` (vocabulary, config) with weights fresh from initialisation."""
    import torch

    from rnnedge.train import checkpoint as ckpt_io

    ckpt = ckpt_io.load(base)
    config = {**ckpt["config"], **changes}
    torch.manual_seed(seed)
    if ckpt["task"] == "charlm":
        from rnnedge.train.charlm import CharLM, CharLMConfig

        model = CharLM(CharLMConfig(**config))
    else:
        from rnnedge.train.sentiment import SentimentConfig, SentimentModel

        model = SentimentModel(SentimentConfig(**config))
    payload = {"task": ckpt["task"], "config": asdict(model.config), "vocab": ckpt["vocab"],
               "model": model.state_dict(), "epoch": 0, "metrics": {}}
    return ckpt_io.save(out, payload)


def exported(checkpoint, out):
    from rnnedge.export.exporter import export

    if not Path(out).exists():
        export(checkpoint, out)
    return Path(out)


def cell_model(task, cell, base, cells_dir, work):
    """(checkpoint, onnx, "trained" | "random") of ``task`` with ``cell``."""
    trained = Path(cells_dir) / f"{task}-{cell}" / "best.pt" if cells_dir else None
    if trained is not None and trained.exists():
        return trained, exported(trained, work / f"{task}-{cell}.onnx"), "trained"
    ckpt = fresh_checkpoint(base, work / f"{task}-{cell}-random.pt", cell=cell)
    return ckpt, exported(ckpt, work / f"{task}-{cell}-random.onnx"), "random"


def make_variants(key, model, work, gate_reviews, data_dir, names=("int8", "fp16")):
    """Gated variants of ``model`` as ``work/KEY.NAME.onnx``: {name: path}, and each report.

    The charlm gates read the whole Hamlet validation text, the sentiment gates a stride of
    ``gate_reviews`` IMDb test reviews.

    ``numba-int8`` is gated like the others, but its file is the fp32 graph for the fast-int8
    engine (already among the engines), so it is reported and not added to the paths.
    """
    from rnnedge.export.optimize import optimize
    from rnnedge.runtime.errors import GateError, UnsupportedError

    paths, reports = {}, {}
    for name in names:
        out = work / f"{key}.{name}.onnx"
        try:
            report = optimize(model, out, int8=name == "int8", fp16=name == "fp16",
                              numba_int8=name == "numba-int8", data_dir=data_dir,
                              limit=gate_reviews if key == "sentiment" else None)
        except (GateError, UnsupportedError) as exc:
            reports[name] = {"written": False, "error": str(exc)}
            log(f"{name} variant of {model}: {exc}")
            continue
        if name != "numba-int8":
            paths[name] = out
        reports[name] = {"written": True, **{k: report[k] for k in
                                             ("out_bytes", "gate", "fp32_weight_nodes", "settings")}}
    return paths, reports


def timing_variants(model, work):
    """Ungated int8 and fp16 variants of a model with random weights: for timing only."""
    import onnx

    from rnnedge.export.optimize import _set_props, fp16_weights, quantize_int8
    from rnnedge.runtime.model import read_onnx

    paths = {}
    for name, convert in (("int8", quantize_int8), ("fp16", fp16_weights)):
        variant, _ = convert(read_onnx(model))
        _set_props(variant, {"rnnedge.variant": name})
        paths[name] = work / f"{Path(model).stem}.{name}.onnx"
        onnx.save(variant, paths[name])
    return paths


# -- measurements -------------------------------------------------------------------------
def streaming(model, checkpoint, variants, steps, rounds, engines=STREAM_ENGINES, samples=False):
    from rnnedge.export.torch_engines import charlm_maker
    from rnnedge.runtime import bench

    skipped = {}
    makers = {**bench.runtime_makers(model, engines, tuple(variants.values()), skipped),
              "torch": charlm_maker(checkpoint)}
    report = bench.latency_report(model, makers, skipped, steps=steps, warmup=min(100, steps // 5),
                                  rounds=rounds, samples=samples)
    return report, makers


def classifier(model, checkpoint, variants, texts, batch_sizes, threads, repeats):
    from rnnedge.export.torch_engines import sentiment_maker
    from rnnedge.runtime import bench

    return bench.bench_sentiment(model, texts, {"torch": sentiment_maker(checkpoint)},
                                 batch_sizes=batch_sizes, threads=threads, repeats=repeats,
                                 variants=tuple(variants.values()))


TORCH_BLOCKER = "raise ImportError('torch is blocked: this measures the runtime alone')\n"
# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across exec from the parent
PROBE = """
import atexit, sys
def report():
    hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
    sys.stderr.write("rnnedge-probe maxrss_kb=%d torch=%d\\n" % (hwm, "torch" in sys.modules))
atexit.register(report)
sys.argv = ["rnnedge"] + sys.argv[1:]
from rnnedge.export.cli import main
main()
"""


def run_probe(args, env):
    """(seconds from spawn to the first byte of stdout, seconds to exit, peak RSS MB)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", PROBE, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    first = proc.stdout.read(1)
    t_first = time.perf_counter() - t0
    rest, err = proc.communicate()
    t_exit = time.perf_counter() - t0
    if proc.returncode != 0 or not first:
        raise RuntimeError(f"rnnedge {' '.join(args)} failed: {err.decode()[-500:]}")
    line = next(ln for ln in err.decode().splitlines() if ln.startswith("rnnedge-probe"))
    fields = dict(kv.split("=") for kv in line.split()[1:])
    if fields["torch"] != "0":
        raise RuntimeError(f"rnnedge {' '.join(args)} imported torch")
    return t_first, t_exit, int(fields["maxrss_kb"]) / 1024


def startup(charlm, sentiment, repeats, work):
    """Process start to first output and peak RSS of runtime commands, torch blocked."""
    blocker = work / "no-torch" / "torch"
    blocker.mkdir(parents=True, exist_ok=True)
    (blocker / "__init__.py").write_text(TORCH_BLOCKER)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(blocker.parent), os.environ.get("PYTHONPATH")) if p))
    generate = ["generate", str(charlm), "--prompt", "The ", "--length", "1", "--seed", "0"]
    cases = {
        "python -c pass (interpreter alone)": None,
        "rnnedge generate, ort": generate,
        "rnnedge generate, fast (warm numba cache)": [*generate, "--engine", "fast"],
        "rnnedge generate, fast-int8 (warm numba cache)": [*generate, "--engine", "fast-int8"],
        "rnnedge classify, ort": ["classify", str(sentiment), "A moving, funny film."],
    }
    rows = []
    for name, args in cases.items():
        runs = []
        for _ in range(repeats):
            if args is None:
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-c", "pass"], check=True, env=env)
                runs.append((time.perf_counter() - t0,) * 2 + (float("nan"),))
            else:
                runs.append(run_probe(args, env))
        rows.append(_startup_row(name, runs))
    for engine in ("fast", "fast-int8"):  # an empty cache: the first call after an install
        runs = []
        for _ in range(max(1, repeats // 2)):
            with tempfile.TemporaryDirectory() as cache:
                runs.append(run_probe([*generate, "--engine", engine],
                                      dict(env, NUMBA_CACHE_DIR=cache)))
        rows.append(_startup_row(f"rnnedge generate, {engine} (empty numba cache)", runs))
    return rows


def _startup_row(name, runs):
    first, done, rss = zip(*runs)
    return {"case": name, "first_output_s": statistics.median(first),
            "exit_s": statistics.median(done), "peak_rss_mb": statistics.median(rss), "runs": len(runs)}


def import_profile():
    """Seconds to import the runtime's pieces, each in a fresh interpreter (torch blocked)."""
    rows = {}
    for module in ("numpy", "onnx", "onnxruntime", "numba", "typer", "rnnedge.runtime.cli"):
        code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        rows[module] = float(out.stdout)
    return rows


# -- report -------------------------------------------------------------------------------
def stream_table(report, title):
    lines = [f"**{title}**", "", "| engine | p50 µs | p90 µs | p99 µs | vs ort | vs floor | "
             "PyTorch / this |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in report["engines"].items():
        lines.append(f"| {name} | {r['p50_us']:.0f} | {r['p90_us']:.0f} | {r['p99_us']:.0f} | "
                     f"{r['p50_vs_ort']:.2f}x | {r.get('p50_vs_floor', float('nan')):.2f}x | "
                     f"{r.get('torch_p50_over_this', float('nan')):.1f}x |")
    return lines


def throughput_table(rows, key, unit):
    engines = list(dict.fromkeys(r["engine"] for r in rows))
    configs = list(dict.fromkeys((r["threads"], r["batch"]) for r in rows))
    lines = ["| engine | " + " | ".join(f"{t} thr, batch {b}" for t, b in configs) + " |",
             "|---|" + "---:|" * len(configs)]
    for e in engines:
        cells = []
        for t, b in configs:
            r = next(x for x in rows if x["engine"] == e and x["threads"] == t and x["batch"] == b)
            cells.append(f"{r[key]:,.0f}")
        lines.append(f"| {e} | " + " | ".join(cells) + " |")
    return [f"{unit}:", "", *lines]


def markdown(results):
    env = results["environment"]
    out = ["# rnnedge benchmark", "",
           f"{env['date']}, {env['cpu']}, {env['cores']} cores; numpy floor on one core "
           f"(OPENBLAS_NUM_THREADS={env['openblas_threads']}); {results['elapsed_s']:.0f} s in all.",
           "Ratios come from one run in which every engine was timed in interleaved rounds.", ""]
    s = results["streaming"]
    out += ["## Hamlet char model, streaming one character at batch 1, one thread", "",
            f"`{s['model']}`; floor: numpy matvecs over the {s['floor_bytes'] / 1e6:.2f} MB "
            "of weights a step reads.", ""]
    out += stream_table(s, "per-step latency")
    out += [""] + throughput_table(results["streaming_throughput"], "chars_per_s",
                                   "characters per second (streams x steps / s)")
    c = results["classifier"]
    out += ["", "## IMDb classifier, whole reviews", "",
            f"`{c['model']}`, {c['reviews']} test reviews of {c['mean_tokens']:.0f} tokens on average.", ""]
    out += throughput_table(c["results"], "reviews_per_s", "reviews per second")
    out += ["", "| engine | p50 ms / review | p90 | p99 |", "|---|---:|---:|---:|"]
    for name, r in c["latency_batch1"].items():
        out.append(f"| {name} | {r['p50_us'] / 1e3:.2f} | {r['p90_us'] / 1e3:.2f} | {r['p99_us'] / 1e3:.2f} |")
    out += ["", "## Variants and their accuracy gates", "",
            "| model | variant | MB | gate | result |", "|---|---|---:|---|---|"]
    for model, variants in results["variants"].items():
        out.append(f"| {model} | fp32 | {results['sizes'][model] / 1e6:.2f} | - | - |")
        for name, v in variants.items():
            if not v["written"]:
                out.append(f"| {model} | {name} | - | failed | {v['error']} |")
                continue
            g = v["gate"]
            result = (f"{g['bpc_fp32']:.4f} -> {g['bpc']:.4f} bits/char ({g['bpc_rise']:+.2%}), "
                      f"top-1 {g['top1_agreement']:.2%}" if "bpc" in g else
                      f"accuracy {g['accuracy_fp32']:.4f} -> {g['accuracy']:.4f}, "
                      f"agreement {g['agreement']:.2%} on {g['reviews']} reviews")
            label = "numba-int8 (fp32 file; int8 in memory, fast-int8 engine)" if name == "numba-int8" else name
            out.append(f"| {model} | {label} | {v['out_bytes'] / 1e6:.2f} | passed | {result} |")
    out += ["", "## Cells", "",
            "Streaming p50 µs per character (2 layers, 256 units) and classifier reviews/s "
            "(1 thread). `random`: fresh weights, timing only.", "",
            "| cell | weights | ort | fast | fast-int8 | ort-int8 | torch | floor | "
            "reviews/s ort b1 | reviews/s ort b64 | reviews/s torch b1 |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for cell, r in results["cells"].items():
        e = r["streaming"]["engines"]
        p = lambda n: f"{e[n]['p50_us']:.0f}" if n in e else "-"
        rate = lambda eng, b: next((f"{x['reviews_per_s']:.0f}" for x in r["classifier"]["results"]
                                    if x["engine"] == eng and x["batch"] == b), "-")
        out.append(f"| {cell} | {r['weights']} | {p('ort')} | {p('fast')} | {p('fast-int8')} | "
                   f"{p('ort-int8')} | {p('torch')} | {p('floor')} | {rate('ort', 1)} | "
                   f"{rate('ort', 64)} | {rate('torch', 1)} |")
    out += ["", "## Hidden size (2-layer LSTM char model, p50 µs per character)", ""]
    sweep = results["hidden_sweep"]
    names = list(dict.fromkeys(n for r in sweep for n in r["engines"]))
    out += ["| hidden | MB | " + " | ".join(names) + " |", "|---:|---:|" + "---:|" * len(names)]
    for r in sweep:
        out.append(f"| {r['hidden_size']} | {r['file_bytes'] / 1e6:.1f} | " + " | ".join(
            f"{r['engines'][n]['p50_us']:.0f}" if n in r["engines"] else "-" for n in names) + " |")
    out += ["", "## Start-up and memory (fresh process, torch blocked)", "",
            "| command | first output s | exit s | peak RSS MB |", "|---|---:|---:|---:|"]
    for r in results["startup"]:
        rss = "-" if r["peak_rss_mb"] != r["peak_rss_mb"] else f"{r['peak_rss_mb']:.0f}"
        out.append(f"| {r['case']} | {r['first_output_s']:.2f} | {r['exit_s']:.2f} | {rss} |")
    out += ["", "Import time of each runtime dependency in a fresh interpreter (s): " + ", ".join(
        f"{m} {t:.2f}" for m, t in results["imports_s"].items()), ""]
    return "\n".join(out)


def plots(results, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    engines = results["streaming"]["engines"]
    names = [n for n in engines if "samples_us" in engines[n]]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.boxplot([engines[n]["samples_us"] for n in names], showfliers=False, whis=(1, 99))
    ax.set_xticks(range(1, len(names) + 1), names)
    ax.set_yscale("log")
    ax.set_ylabel("µs per character (whiskers: p1-p99)")
    ax.set_title("Hamlet 2x256 char model, streaming at batch 1, one thread")
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=110)
    plt.close(fig)

    sweep = results["hidden_sweep"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in dict.fromkeys(n for r in sweep for n in r["engines"]):
        xs = [r["hidden_size"] for r in sweep if name in r["engines"]]
        ys = [r["engines"][name]["p50_us"] for r in sweep if name in r["engines"]]
        ax.plot(xs, ys, marker="o", label=name, linestyle="--" if name == "floor" else "-")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("hidden size (2-layer LSTM)")
    ax.set_ylabel("p50 µs per character")
    ax.set_title("Streaming latency against hidden size, batch 1, one thread")
    ax.legend()
    ax.grid(which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "hidden.png", dpi=110)
    plt.close(fig)


def write_atomic(path, text):
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


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


# -- main ---------------------------------------------------------------------------------
def main(argv=None):
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
    args = p.parse_args(argv)

    from rnnedge.train.imdb import load_imdb

    t_start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    results = {"environment": environment(), "sizes": {}}

    log("variants and their gates")
    variants, reports = {}, {}
    for key, model, names in (("charlm", args.charlm, ("int8", "fp16", "numba-int8")),
                              ("sentiment", args.sentiment, ("int8", "fp16"))):
        variants[key], reports[key] = make_variants(key, model, args.work, args.gate_reviews,
                                                    args.data_dir, names)
        results["sizes"][key] = model.stat().st_size
    results["variants"] = reports

    log("streaming, Hamlet model")
    report, makers = streaming(args.charlm, args.charlm_checkpoint, variants["charlm"], args.steps,
                               args.rounds, samples=True)
    results["streaming"] = report
    log("streaming throughput")
    from rnnedge.runtime.bench import throughput_charlm
    from rnnedge.runtime.model import load

    vocab = len(load(args.charlm).vocab)
    results["streaming_throughput"] = throughput_charlm(makers, vocab)

    log("classifier")
    reviews = load_imdb("test", args.data_dir)
    texts = [r.text for r in reviews[::max(1, len(reviews) // args.reviews)][:args.reviews]]
    results["classifier"] = classifier(args.sentiment, args.sentiment_checkpoint, variants["sentiment"],
                                       texts, (1, 8, 64), (1, 2), 3)

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
