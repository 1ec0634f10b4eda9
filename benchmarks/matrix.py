"""The 36-cell matrix: ``make matrix`` (``python benchmarks/matrix.py --help``).

Cells: LSTM, GRU and Elman RNN x hidden 64, 256, 1024 x (batch, time) in (1, 1), (1, 100),
(16, 100), (64, 50). Each model is a user's streaming model as ``examples/kws.py`` writes
it: one recurrent layer over 40 features, a linear head of 12 outputs on every step, the
states in and out; fresh seeded weights, exported through ``export_model`` (its parity
gate), read by the fast engines' chain reader (``fast_engine`` in the JSON says so). A call
is one whole (batch, time) sequence, random (seeded) frames and states.

For every cell, on one thread, in interleaved rounds in this one process: ``ort-direct``
(onnxruntime without rnnedge, ``run_with_iobinding`` on preallocated buffers: the baseline),
rnnedge's ``ort`` engine, ``fast``, ``fast-int8`` and, at hidden 64 and below, the ``numba``
reference interpreter. Every engine is compared with ``ort`` first on the call it is timed
on (its precision's tolerance level); an engine that fails is timed all the same and the
cell is marked, so that no cell goes missing from the matrix. Calls per round come from one
probe call of each engine: ``--seconds`` of all engines and rounds together, at most
``--max-calls`` a round (short rounds: a burst of load elsewhere hits every engine alike).
Writes ``results/matrix.json`` (every figure), ``results/matrix.md`` (the table, p50 per
call and ratios to ort-direct, and the counts against the targets: fast fp32 at most 1.0x
ort-direct, fast-int8 at most 0.6x) and ``matrix.png`` when matplotlib is installed. The
timers are ``rnnedge.deploy``'s.
"""

import argparse
import importlib.util
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import NamedTuple

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy: one core for everything

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # sys.path[0] when run as a script, not when loaded by its path
    sys.path.insert(0, str(HERE))

from suite import CELLS, environment, log, write_atomic  # noqa: E402

HIDDEN = (64, 256, 1024)
SHAPES = ((1, 1), (1, 100), (16, 100), (64, 50))  # (batch, time)
FEATURES, OUTPUTS = 40, 12
BASE = "ort-direct"
ENGINES = ("ort", "fast", "fast-int8")
TARGETS = {"fast": 1.0, "fast-int8": 0.6}  # p50 over ort-direct's, at most
NAME = re.compile(r"^(lstm|gru|rnn)-(\d+)-(\d+)x(\d+)$")


class Cell(NamedTuple):
    op: str      # "lstm", "gru" or "rnn"
    hidden: int
    batch: int
    time: int

    @property
    def name(self):
        return f"{self.op}-{self.hidden}-{self.batch}x{self.time}"

    @property
    def model(self):
        return f"{self.op}-{self.hidden}"


ALL = [Cell(op, h, b, t) for op in CELLS for h in HIDDEN for b, t in SHAPES]


def parse_cells(text):
    """Cells from ``lstm-256-1x1,gru-64-16x100`` (any hidden size and shape, not only the 36)."""
    cells = []
    for name in filter(None, (s.strip() for s in text.split(","))):
        m = NAME.match(name)
        if not m or 0 in map(int, m.groups()[1:]):
            raise argparse.ArgumentTypeError(f"cell {name!r}: write CELL-HIDDEN-BATCHxTIME with "
                                             f"CELL one of {', '.join(CELLS)}, e.g. lstm-256-1x1")
        cells.append(Cell(m[1], *map(int, m.groups()[1:])))
    return cells


# -- the models -----------------------------------------------------------------------------
def export_cell_model(op, hidden, work, seed):
    """One recurrent layer + a linear head on every step, states in and out, exported through
    ``export_model``; returns the file's path."""
    import torch
    from torch import nn

    from rnnedge.export.user_model import export_model

    class Recurrent(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[op](
                FEATURES, hidden, batch_first=True)
            self.head = nn.Linear(hidden, OUTPUTS)

        def forward(self, feats, *state):  # (B, T, F), (1, B, H) each -> (B, T, C), states
            y, new = self.rnn(feats, state if op == "lstm" else state[0])
            return (self.head(y), *(new if op == "lstm" else (new,)))

    torch.manual_seed(seed)
    states = ("h", "c") if op == "lstm" else ("h",)
    example = (torch.randn(2, 10, FEATURES), *(torch.randn(1, 2, hidden) * 0.5 for _ in states))
    axes = {"feats": {0: "batch", 1: "time"}, "logits": {0: "batch", 1: "time"},
            **{n + suffix: {1: "batch"} for n in states for suffix in ("", "_new")}}
    path = Path(work) / f"{op}-{hidden}.onnx"
    export_model(Recurrent().eval(), example, path, input_names=["feats", *states],
                 output_names=["logits", *(n + "_new" for n in states)], dynamic_axes=axes,
                 states={n: n + "_new" for n in states})
    return path


def engines_of(path, hidden, numba_max_hidden):
    """{engine: loaded model}, one thread each; numba's interpreter up to ``numba_max_hidden``."""
    from rnnedge.deploy.makers import load_engines

    names = ENGINES + (("numba",) if hidden <= numba_max_hidden else ())
    skipped = {}
    models = load_engines(path, names, skipped)
    if skipped:
        raise RuntimeError(f"{path}: engines cannot run it: {skipped}")
    return models


def runners(path, models):
    """name -> run(feeds) -> outputs: ort-direct (I/O binding, its buffers reused), then each
    engine's ``model.run``."""
    from rnnedge.deploy.makers import DirectOrt

    bound = DirectOrt(path, states=None, threads=1).stream({})  # no state swap: same feeds a call
    return {BASE: bound.step, **{name: m.run for name, m in models.items()}}


# -- one cell -------------------------------------------------------------------------------
def parity(runs, feeds):
    """Every engine's outputs against ort's on ``feeds``: (diffs as dicts, failing engines)."""
    from rnnedge.deploy.makers import tolerance
    from rnnedge.runtime.tolerances import compare

    # ort-direct's outputs are its buffers, overwritten by its next call: copies
    outputs = {name: {k: np.array(v) for k, v in run(feeds).items()} for name, run in runs.items()}
    diffs, failed = [], []
    for name, outs in outputs.items():
        if name == "ort":
            continue
        for o, ref in outputs["ort"].items():
            d = compare(f"{name} vs ort {o}", outs.get(o), ref, tolerance(name))
            diffs.append(d.as_dict())
            if not d.ok:
                failed.append(name)
                log(f"  parity FAIL {d}")
    return diffs, sorted(set(failed))


def calls_per_round(runs, feeds, seconds, max_calls):
    """How many calls of every engine fit ``seconds``, from one timed call of each."""
    one = 0.0
    for run in runs.values():
        t0 = time.perf_counter()
        run(feeds)
        one += time.perf_counter() - t0
    return int(min(max_calls, max(1, seconds // one)))


def maker(run, feeds):
    """``interleaved``'s maker of ``run(feeds)``: the same call whatever the step's ids."""
    return lambda batch=1, threads=1: lambda ids: run(feeds)


def measure(cell, path, models, args):
    """One cell: parity first, then p50 per call of every engine in interleaved rounds."""
    from rnnedge.deploy.bench_generic import shaped_feeds
    from rnnedge.deploy.timing import interleaved, percentiles

    started = time.perf_counter()
    feeds = shaped_feeds(models["ort"], cell.batch, cell.time, seed=args.seed)
    runs = runners(path, models)
    diffs, failed = parity(runs, feeds)
    calls = calls_per_round(runs, feeds, args.seconds / args.rounds, args.max_calls)
    warmup = max(1, calls // 10)
    makers = {name: maker(run, feeds) for name, run in runs.items()}
    timed = interleaved(makers, np.arange(warmup + calls * args.rounds), warmup, args.rounds)
    rows = {name: percentiles(s) for name, s in timed.items()}
    for name, r in rows.items():
        r["vs_ort_direct"] = r["p50_us"] / rows[BASE]["p50_us"]
        r["parity_ok"] = name not in failed
    return {"cell": cell.name, **cell._asdict(), "calls_per_round": calls, "rounds": args.rounds,
            "warmup": warmup, "parity_ok": not failed, "parity_failed": failed,
            "parity": diffs, "engines": rows, "seconds": time.perf_counter() - started}


def progress(i, n, r):
    e = r["engines"]
    ratios = ", ".join(f"{name} {e[name]['vs_ort_direct']:.2f}x" for name in e if name != BASE)
    log(f"cell {i}/{n} {r['cell']}: ort-direct {e[BASE]['p50_us']:,.0f} µs; {ratios} "
        f"({r['calls_per_round']} calls x {r['rounds']} rounds, {r['seconds']:.0f} s"
        f"{'' if r['parity_ok'] else ', PARITY FAILED: ' + ', '.join(r['parity_failed'])})")


def run_matrix(cells, args):
    """Every cell, grouped by model (one export and one set of engines per model)."""
    from rnnedge.deploy.timing import blas_threads
    from rnnedge.runtime.model import describe

    results, models_seen = [], {}
    with blas_threads(1):
        for cell in cells:
            if cell.model not in models_seen:
                path = export_cell_model(cell.op, cell.hidden, args.work, args.seed)
                models = engines_of(path, cell.hidden, args.numba_max_hidden)
                models_seen[cell.model] = (path, models, describe(path)["fast_engine"])
            path, models, fast_engine = models_seen[cell.model]
            r = measure(cell, path, models, args)
            results.append({**r, "fast_engine": fast_engine, "file_bytes": path.stat().st_size})
            progress(len(results), len(cells), r)
    return results


# -- the report -----------------------------------------------------------------------------
def targets(results):
    """Per target engine: the cells whose p50 over ort-direct's is at most the target."""
    out = {}
    for name, target in TARGETS.items():
        met = [r["cell"] for r in results if r["engines"][name]["vs_ort_direct"] <= target]
        out[name] = {"target": target, "met": len(met), "cells": len(results), "met_cells": met}
    return out


def ratio(r, name):
    if name not in r["engines"]:
        return "-"
    e = r["engines"][name]
    return f"{e['vs_ort_direct']:.2f}x" + ("" if e["parity_ok"] else " (parity FAIL)")


def markdown(results):
    env, s = results["environment"], results["settings"]
    lines = ["# The matrix: LSTM/GRU/RNN x hidden x (batch, time)", "",
             f"{env['date']}, {env['cpu']}, {env['cores']} cores (shared); onnxruntime "
             f"{env['onnxruntime']}, numba {env['numba']}. One recurrent layer over {FEATURES} "
             f"features + a linear head of {OUTPUTS} on every step, fresh weights (seed "
             f"{s['seed']}); one call: a whole (batch, time) sequence, one thread. p50 per call of "
             f"ort-direct (onnxruntime's `run_with_iobinding`, preallocated outputs) and each "
             f"engine's p50 over it, measured in {s['rounds']} interleaved rounds in one process; "
             f"parity against rnnedge's ort engine checked first. The whole run took "
             f"{results['elapsed_s'] / 60:.1f} min.", "",
             "| cell | ort-direct µs | ort x | fast x | fast-int8 x | numba x | calls |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results["cells"]:
        lines.append(f"| {r['cell']} | {r['engines'][BASE]['p50_us']:,.0f} | " + " | ".join(
            ratio(r, name) for name in ("ort", "fast", "fast-int8", "numba"))
            + f" | {r['calls_per_round']} x {r['rounds']} |")
    lines.append("")
    for name, t in results["targets"].items():
        lines.append(f"- {name} at most {t['target']:.1f}x ort-direct: {t['met']} of "
                     f"{t['cells']} cells")
    failed = [r for r in results["cells"] if not r["parity_ok"]]
    lines.append(f"- parity: {len(results['cells']) - len(failed)} of {len(results['cells'])} "
                 f"cells pass on every engine")
    lines += [f"  - {r['cell']}: " + "; ".join(
        f"{d['name']} max abs {d['max_abs']:.3g} [{d['tolerance']}]" for d in r["parity"]
        if not d["ok"]) for r in failed]
    return "\n".join(lines) + "\n"


def heat_map(results, path):
    """fast and fast-int8 over ort-direct per cell: rows CELL-HIDDEN, columns BATCHxTIME."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    cells = results["cells"]
    rows = list(dict.fromkeys(f"{r['op']}-{r['hidden']}" for r in cells))
    cols = list(dict.fromkeys(f"{r['batch']}x{r['time']}" for r in cells))
    fig, axes = plt.subplots(1, len(TARGETS), figsize=(4 + 1.6 * len(cols), 1.2 + 0.45 * len(rows)))
    for ax, (name, target) in zip(np.atleast_1d(axes), TARGETS.items()):
        grid = np.full((len(rows), len(cols)), np.nan)  # (model, shape) ratios
        for r in cells:
            i, j = rows.index(f"{r['op']}-{r['hidden']}"), cols.index(f"{r['batch']}x{r['time']}")
            grid[i, j] = r["engines"][name]["vs_ort_direct"]
        ax.imshow(np.log2(grid), cmap="RdYlGn_r", norm=TwoSlopeNorm(0, -3, 3), aspect="auto")
        for (i, j), v in np.ndenumerate(grid):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8,
                        weight="bold" if v <= target else "normal")
        ax.set_xticks(range(len(cols)), cols)
        ax.set_yticks(range(len(rows)), rows)
        ax.set_xlabel("batch x time")
        ax.set_title(f"{name} / ort-direct (target {target:g}x; bold: met)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- main -----------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cells", type=parse_cells, default=ALL,
                   help="comma-separated CELL-HIDDEN-BATCHxTIME, e.g. lstm-256-1x1,gru-64-16x100 "
                        "(default: the 36 cells)")
    p.add_argument("--rounds", type=int, default=10, help="interleaved rounds per cell")
    p.add_argument("--seconds", type=float, default=20.0,
                   help="timed seconds per cell, all engines and rounds together (sets the calls)")
    p.add_argument("--max-calls", type=int, default=1000, help="calls per engine a round, at most")
    p.add_argument("--numba-max-hidden", type=int, default=64,
                   help="time the numba reference interpreter up to this hidden size")
    p.add_argument("--seed", type=int, default=0, help="weights and inputs")
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--work", type=Path, default=Path("runs/matrix"), help="the exported models")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    cells = run_matrix(args.cells, args)
    settings = {k: v for k, v in vars(args).items() if k not in ("cells", "out", "work")}
    results = {"environment": environment(), "settings": settings,
               "cells": cells, "targets": targets(cells),
               "elapsed_s": time.perf_counter() - started}
    write_atomic(args.out / "matrix.json", json.dumps(results, indent=1))
    write_atomic(args.out / "matrix.md", markdown(results))
    written = ["matrix.json", "matrix.md"]
    if importlib.util.find_spec("matplotlib"):
        heat_map(results, args.out / "matrix.png")
        written.append("matrix.png")
    else:
        log("matplotlib is not installed: no matrix.png")
    log(f"wrote {', '.join(written)} to {args.out} in {results['elapsed_s']:.0f} s")
    print(markdown(results))


if __name__ == "__main__":
    main()
