"""``rnnedge bench`` for any recurrent ONNX file: every engine that can run it, parity first.

With state pairs the workload is the low-power one: batch 1, one frame per call, the states
carried by ``stream()``; without them, whole sequences at batch 1. Inputs are the golden
bundle's first case (its row 0), else random ones from the signature. Each engine is
checked against onnxruntime at its precision's tolerance before it is timed, in
interleaved rounds; engines that cannot run the file are named with the reason.
"""

import numpy as np

from rnnedge.runtime.errors import ParityError
from rnnedge.runtime.tolerances import compare

from .makers import tolerance
from .timing import interleaved, percentiles
from .verify_generic import is_time_axis, load_engines, random_feeds

ENGINES = ("ort", "numba", "fast", "fast-int8")


def workload(model, frames=200, seed=0):
    """(list of feeds, one per call, "streaming" | "whole"): row 0 of a golden or random case."""
    from rnnedge.runtime.golden import from_props

    cases = from_props(model.meta.props) if model.meta else []
    feed = cases[0].inputs if cases else random_feeds(model.signature, seed, shapes=((1, 50),))[0]
    batch_axis = {i["name"]: next((a for a, d in enumerate(i["shape"])
                                   if isinstance(d, str) and "batch" in d.lower()), None)
                  for i in model.signature["inputs"]}
    row0 = {n: (np.take(v, [0], axis=batch_axis[n]) if batch_axis[n] is not None else v)
            for n, v in feed.items()}
    if not model.states:
        return [row0], "whole"
    time_axis = {i["name"]: next((a for a, d in enumerate(i["shape"]) if is_time_axis(d)), None)
                 for i in model.signature["inputs"]}
    inputs = {n: v for n, v in row0.items() if n not in model.states}
    T = next((v.shape[time_axis[n]] for n, v in inputs.items() if time_axis[n] is not None), 1)
    calls = [{n: (np.take(v, [t % T], axis=time_axis[n]) if time_axis[n] is not None else v)
              for n, v in inputs.items()} for t in range(frames)]
    return calls, "streaming"


def bench_generic(model_path, steps=500, warmup=50, rounds=5, threads=1, engines=ENGINES):
    """Latency per call of each engine, with parity against onnxruntime checked first."""
    from rnnedge.runtime.model import load

    skipped = {}
    models = load_engines(model_path, engines, skipped)
    calls, kind = workload(models["ort"], frames=max(steps + warmup, 1))
    check_parity(models, calls[: min(len(calls), 64)], kind)

    def make(name, model):
        def build(batch=1, threads=1):
            runner = model if threads == 1 else load(model_path, engine=name, threads=threads)
            stream = runner.stream() if kind == "streaming" else None
            run = stream.step if stream else runner.run
            return lambda idx: run(calls[idx[0] % len(calls)])
        return build

    ids = np.arange(steps + warmup)
    timed = interleaved({name: make(name, m) for name, m in models.items()}, ids, warmup, rounds,
                        threads)
    rows = {name: percentiles(s) for name, s in timed.items()}
    base = rows["ort"]["p50_us"]
    for r in rows.values():
        r["vs_ort"] = r["p50_us"] / base
    return {"model": str(model_path), "workload": kind, "calls": steps, "threads": threads,
            "engines": rows, "skipped": skipped, "states": models["ort"].states}


def check_parity(models, calls, kind):
    """Every engine against onnxruntime over the same calls (streamed when the model streams)."""
    outputs = {}
    for name, m in models.items():
        stream = m.stream() if kind == "streaming" else None
        outputs[name] = [(stream.step if stream else m.run)(c) for c in calls]
    failed = []
    for name, outs in outputs.items():
        for k, (got, ref) in enumerate(zip(outs, outputs["ort"])):
            for o in ref:
                d = compare(f"{name} vs ort {o} call {k}", got[o], ref[o], tolerance(name))
                if not d.ok:
                    failed.append(str(d))
    if failed:
        raise ParityError("not timing: " + "; ".join(failed[:5]))


def markdown_generic(report):
    what = ("batch 1, one frame per call, states carried" if report["workload"] == "streaming"
            else "batch 1, whole sequence per call")
    lines = [f"model {report['model']}: {what}, {report['threads']} thread(s), "
             f"{report['calls']} timed calls", "",
             "| engine | p50 µs | p90 µs | p99 µs | vs ort |", "|---|---:|---:|---:|---:|"]
    for name, r in report["engines"].items():
        lines.append(f"| {name} | {r['p50_us']:.0f} | {r['p90_us']:.0f} | {r['p99_us']:.0f} "
                     f"| {r['vs_ort']:.2f}x |")
    lines += [f"skipped {name}: {why}" for name, why in report["skipped"].items()]
    return "\n".join(lines)
