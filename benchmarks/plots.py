"""The two plots of a benchmark run: ``latency.png`` and ``hidden.png``.

``latency.png``: the per-step latency distribution of each engine on the Hamlet model
(boxes p25-p75, whiskers p1-p99). ``hidden.png``: p50 per step against the hidden size.
Not here: the numbers themselves (``suite.py``, ``report.py``).
"""


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def latency_plot(results, path):
    plt = _pyplot()
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
    fig.savefig(path, dpi=110)
    plt.close(fig)


def hidden_plot(results, path):
    plt = _pyplot()
    sweep = results["hidden_sweep"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in dict.fromkeys(n for r in sweep for n in r["engines"]):
        xs = [r["hidden_size"] for r in sweep if name in r["engines"]]
        ys = [r["engines"][name]["p50_us"] for r in sweep if name in r["engines"]]
        ax.plot(xs, ys, marker="o", label=name, linestyle="--" if "floor" in name else "-")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("hidden size (2-layer LSTM)")
    ax.set_ylabel("p50 µs per character")
    ax.set_title("Streaming latency against hidden size, batch 1, one thread")
    ax.legend()
    ax.grid(which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plots(results, out):
    """Both plots into the folder ``out``."""
    latency_plot(results, out / "latency.png")
    hidden_plot(results, out / "hidden.png")
