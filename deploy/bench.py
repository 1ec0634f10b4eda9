"""``rnnedge bench``: latency and throughput of the engines side by side, parity checked first.

Every engine runs in the same process and the same run, in interleaved rounds, and the
report gives ratios of each engine's median to onnxruntime's and to the hardware floor
(plain numpy matrix-vector products over the same weights, on one BLAS thread: ``blas_threads``
in the report), since single timings on a shared machine mean little. The runtime engines are
``ort``, ``numba`` (the reference interpreter), ``fast`` and ``fast-int8``; ``engines`` picks
some (onnxruntime always runs: it is the parity reference and the ratios' base). Variant files
written by ``rnnedge optimize`` join as ``ort-int8``, ``ort-fp16``, ..., a gate-only one
(``--numba-int8``: the fp32 model) as ``gate-only: fast-int8``, the engine it was gated on. An
engine that cannot run the model (``UnsupportedError``: a fast engine on an int8 file) is left
out and named in the report's ``skipped``.

This module is the command's entry for every kind of file and draws its ``--plot``; what a
kind times and which flags it takes is its adapter's (``kinds.py``: ``bench``,
``bench_refuses``), over the workloads ``bench_charlm.py``, ``bench_sentiment.py`` and
``bench_generic.py``; the timers are ``timing.py``, the engines and their tolerances
``makers.py``.
"""

from pathlib import Path
from typing import NamedTuple

from rnnedge.runtime.engines import ENGINES
from rnnedge.runtime.errors import InputError

from .kinds import ADAPTERS


class BenchOptions(NamedTuple):
    """What ``rnnedge bench`` was asked for, handed to the file's adapter."""

    torch_maker: object
    steps: int
    warmup: int
    threads: int
    cases: int
    data_dir: object
    variants: tuple
    engines: tuple
    batch: object
    time: object


def bench(model_path, torch_maker=None, steps=500, warmup=50, threads=1, cases=128, data_dir=None,
          variants=(), engines=None, batch=None, time=None, plot=None):
    """What ``rnnedge bench`` reports: (report, markdown) for the file's task.

    What is timed is the kind's (``kinds.py``): streaming latency per character at batch 1 for
    the char model, throughput on ``cases`` IMDb test reviews at batch 1, 8 and 64 (or
    ``batch``) for the review classifier, and for any other file latency per call of every
    engine that runs it (``bench_generic``), streamed frame by frame, or whole sequences of
    (``batch``, ``time``) when either is given. ``engines``: the runtime engines to time
    (None: all; ort always runs). ``torch_maker`` (``rnnedge.export.torch_engines.maker``) adds
    PyTorch eager. ``plot``: a PNG bar chart of the latency table written there.
    """
    from rnnedge.runtime.model import file_kind

    from .timing import blas_threads

    task = file_kind(model_path)
    engines = _check(task, steps, warmup, threads, cases, engines, batch, time, variants, plot)
    options = BenchOptions(torch_maker, steps, warmup, threads, cases, data_dir, tuple(variants),
                           engines, batch, time)
    with blas_threads(1) as blas:
        report, text = ADAPTERS[task].bench(model_path, options)
    report.update(task=task, blas_threads=blas)
    if blas is None:
        text += ("\nnote: numpy's BLAS library was not found; the floor ran on as many threads "
                 "as OPENBLAS_NUM_THREADS (or MKL_NUM_THREADS) allowed when numpy loaded")
    gate_only = _gate_only(variants)
    if gate_only:
        report["gate_only"] = gate_only
        text += "".join(f"\n{name}: {why}" for name, why in gate_only.items())
    if plot is not None:
        write_plot(report, plot)
        text += f"\nwrote {plot}"
    return report, text


def _check(task, steps, warmup, threads, cases, engines, batch, time, variants, plot):
    """The engines to run; an ``InputError`` for a flag the file's task cannot take."""
    for name, value, low in (("steps", steps, 1), ("warmup", warmup, 0), ("threads", threads, 1),
                             ("cases", cases, 1), ("batch", batch, 1), ("time", time, 1)):
        if value is not None and value < low:
            raise InputError(f"--{name} must be >= {low}, not {value}")
    unknown = [e for e in engines or () if e not in ENGINES]
    if unknown:
        raise InputError(f"--engine {unknown[0]}: choose from {', '.join(ENGINES)}")
    refused = ADAPTERS[task].bench_refuses(batch, time, variants)
    if refused:
        raise InputError(refused)
    if plot is not None:
        if Path(plot).suffix.lower() != ".png":
            raise InputError(f"--plot {plot}: the chart is a PNG file; give a path ending in .png")
        import matplotlib  # noqa: F401  (missing: a one-line error now, not after the timing)
    return tuple(dict.fromkeys(("ort", *(engines or ENGINES))))


def _gate_only(variants):
    """{engine name: note} of the gate-only variants among ``variants``: timed on the engine
    they were gated on, not as onnxruntime int8 files."""
    from .makers import variant_engine

    notes = {}
    for path in variants:
        name, _, engine = variant_engine(path)
        if engine != "ort":
            notes[name] = (f"{path} is a gate-only variant, the fp32 model that `rnnedge optimize "
                           f"--numba-int8` gated on {engine}; timed as {engine} over that file, "
                           f"which quantizes it at load")
    return notes


def latency_rows(report):
    """(what, unit, {engine: (p50, p90, p99)}) of a report's latency table; a throughput
    report (reviews/s) timed at another batch than 1 has mean milliseconds per batch, (mean,)
    per engine."""
    if "results" in report:
        if report.get("latency_batch1"):
            return ("per review, batch 1, one thread", "ms",
                    {n: tuple(r[k] / 1e3 for k in ("p50_us", "p90_us", "p99_us"))
                     for n, r in report["latency_batch1"].items()})
        first = report["results"][0]
        rows = [r for r in report["results"] if r["threads"] == first["threads"]]
        return (f"per batch of {first['batch']}, {first['threads']} thread(s), mean", "ms",
                {r["engine"]: (1e3 * r["batch"] / r["reviews_per_s"],) for r in rows})
    what = f"per call ({report['workload']})" if "workload" in report else "per character, batch 1"
    return what, "µs", {n: (r["p50_us"], r["p90_us"], r["p99_us"])
                        for n, r in report["engines"].items()}


def write_plot(report, path):
    """A PNG bar chart of ``latency_rows(report)`` at ``path``: p50 bars, labelled, and p90
    marks (p99 is in the table: one preempted call would set the scale)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    from rnnedge.runtime.atomic import writing

    what, unit, rows = latency_rows(report)
    names = list(rows)[::-1]  # barh draws bottom-up: the table's first engine on top
    fig, ax = plt.subplots(figsize=(7, 1.4 + 0.35 * len(names)))
    bars = ax.barh(names, [rows[n][0] for n in names], color="tab:blue", label="p50")
    ax.bar_label(bars, fmt="%.3g", padding=3, fontsize=8)
    tails = [n for n in names if len(rows[n]) > 1]
    if tails:
        ax.scatter([rows[n][1] for n in tails], tails, marker="|", s=250, color="tab:orange",
                   label="p90")
    ax.set_xlim(0, 1.15 * max(max(r[:2]) for r in rows.values()))
    ax.set_xlabel(unit)
    ax.set_title(f"{Path(report['model']).name}: latency {what}", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    try:
        with writing(path) as tmp:
            fig.savefig(tmp, format="png", dpi=120)
    finally:
        plt.close(fig)
