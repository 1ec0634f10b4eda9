"""``results/bench.md``: the tables of one benchmark run, from its results (``bench.json``).

One function per section, in the order of the file: streaming, classifier, variants and their
gates, cells, hidden sizes, start-up and memory. Not here: measuring (``suite.py``), the plots
(``plots.py``).
"""


def stream_table(report, title):
    lines = [f"**{title}**", "", "| engine | p50 µs | p90 µs | p99 µs | vs ort | vs floor | "
             "vs int8 floor | PyTorch / this |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in report["engines"].items():
        lines.append(f"| {name} | {r['p50_us']:.0f} | {r['p90_us']:.0f} | {r['p99_us']:.0f} | "
                     f"{r['p50_vs_ort']:.2f}x | {r.get('p50_vs_floor', float('nan')):.2f}x | "
                     f"{r.get('p50_vs_int8_floor', float('nan')):.2f}x | "
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


def streaming_section(results):
    s = results["streaming"]
    out = ["## Hamlet char model, streaming one character at batch 1, one thread", "",
           f"`{s['model']}`; floor: numpy matvecs over the {s['floor_bytes'] / 1e6:.2f} MB "
           "of weights a step reads; panel-floor: the same products on the row panels the fast "
           "fp32 engine reads; int8 floor: the same products in int8 (per-row scales, the "
           "runtime's int8 panels: VNNI where the CPU has it, else AVX2).", ""]
    out += stream_table(s, "per-step latency")
    return out + [""] + throughput_table(results["streaming_throughput"], "chars_per_s",
                                         "characters per second (streams x steps / s)")


def classifier_section(results):
    c = results["classifier"]
    out = ["## IMDb classifier, whole reviews", "",
           f"`{c['model']}`, {c['reviews']} test reviews of {c['mean_tokens']:.0f} tokens on average.", ""]
    out += throughput_table(c["results"], "reviews_per_s", "reviews per second")
    out += ["", "| engine | p50 ms / review | p90 | p99 |", "|---|---:|---:|---:|"]
    for name, r in c["latency_batch1"].items():
        out.append(f"| {name} | {r['p50_us'] / 1e3:.2f} | {r['p90_us'] / 1e3:.2f} | {r['p99_us'] / 1e3:.2f} |")
    return out


def variants_section(results):
    out = ["## Variants and their accuracy gates", "",
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
    return out


def cells_section(results):
    out = ["## Cells", "",
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
    return out


def hidden_section(results):
    out = ["## Hidden size (2-layer LSTM char model, p50 µs per character)", ""]
    sweep = results["hidden_sweep"]
    names = list(dict.fromkeys(n for r in sweep for n in r["engines"]))
    out += ["| hidden | MB | " + " | ".join(names) + " |", "|---:|---:|" + "---:|" * len(names)]
    for r in sweep:
        out.append(f"| {r['hidden_size']} | {r['file_bytes'] / 1e6:.1f} | " + " | ".join(
            f"{r['engines'][n]['p50_us']:.0f}" if n in r["engines"] else "-" for n in names) + " |")
    return out


def startup_section(results):
    out = ["## Start-up and memory (fresh process, torch blocked)", "",
           "| command | first output s | exit s | peak RSS MB |", "|---|---:|---:|---:|"]
    for r in results["startup"]:
        rss = "-" if r["peak_rss_mb"] != r["peak_rss_mb"] else f"{r['peak_rss_mb']:.0f}"
        out.append(f"| {r['case']} | {r['first_output_s']:.2f} | {r['exit_s']:.2f} | {rss} |")
    return out + ["", "Import time of each runtime dependency in a fresh interpreter (s): " + ", ".join(
        f"{m} {t:.2f}" for m, t in results["imports_s"].items()), ""]


def markdown(results):
    """The whole of ``bench.md``."""
    env = results["environment"]
    out = ["# rnnedge benchmark", "",
           f"{env['date']}, {env['cpu']}, {env['cores']} cores; numpy floor on one core "
           f"(OPENBLAS_NUM_THREADS={env['openblas_threads']}); {results['elapsed_s']:.0f} s in all.",
           "Ratios come from one run in which every engine was timed in interleaved rounds.", ""]
    sections = (streaming_section, classifier_section, variants_section, cells_section,
                hidden_section, startup_section)
    for k, section in enumerate(sections):
        out += ([""] if k else []) + section(results)
    return "\n".join(out)
