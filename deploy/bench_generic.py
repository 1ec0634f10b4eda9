"""``rnnedge bench`` for any recurrent ONNX file: every engine that can run it, parity first.

With state pairs the workload is the low-power one: batch 1, one frame per call, the states
carried by ``stream()``; without them (or with ``whole``), whole sequences at batch 1.
Inputs are the golden bundle's first case (its row 0), else random ones from the signature.
Each engine is checked against onnxruntime at its precision's tolerance before it is timed,
in interleaved rounds; engines that cannot run the file are named with the reason. For an
rnnedge classifier (what ``runtime/fast_seq.py`` reads) or a streaming chain (a user's
model that ``runtime/chain_graph.py`` reads) the floor joins them: numpy matrix-vector
products over the weights of each frame ([W | R] of every layer and direction; R alone for
token ids, whose input projection is a row gather) and the head.
"""

import numpy as np

from rnnedge.runtime.errors import ParityError
from rnnedge.runtime.graph_model import is_time_axis
from rnnedge.runtime.tolerances import compare

from .makers import ORT_DIRECT, DirectOrt, tolerance
from .timing import FLOOR, floor_maker, interleaved, percentiles
from .verify import load_engines, random_feeds

ENGINES = ("ort", "numba", "fast", "fast-int8")


def workload(model, frames=200, seed=0, whole=False):
    """(list of feeds, one per call, "streaming" | "whole"): row 0 of a golden or random case,
    whole, or frame by frame when the model streams and not ``whole``."""
    from rnnedge.runtime.golden import from_props

    cases = from_props(model.meta.props) if model.meta else []
    feed = cases[0].inputs if cases else random_feeds(model.signature, seed, shapes=((1, 50),))[0]
    batch_axis = {i["name"]: next((a for a, d in enumerate(i["shape"])
                                   if isinstance(d, str) and "batch" in d.lower()), None)
                  for i in model.signature["inputs"]}
    row0 = {n: (np.take(v, [0], axis=batch_axis[n]) if batch_axis[n] is not None else v)
            for n, v in feed.items()}
    if not model.states or whole:
        return [row0], "whole"
    time_axis = {i["name"]: next((a for a, d in enumerate(i["shape"]) if is_time_axis(d)), None)
                 for i in model.signature["inputs"]}
    inputs = {n: v for n, v in row0.items() if n not in model.states}
    T = next((v.shape[time_axis[n]] for n, v in inputs.items() if time_axis[n] is not None), 1)
    calls = [{n: (np.take(v, [t % T], axis=time_axis[n]) if time_axis[n] is not None else v)
              for n, v in inputs.items()} for t in range(frames)]
    return calls, "streaming"


def bench_generic(model_path, steps=500, warmup=50, rounds=5, threads=1, engines=ENGINES,
                  whole=False):
    """Latency per call of each engine, with parity against onnxruntime checked first."""
    from rnnedge.runtime.model import load

    skipped = {}
    models = load_engines(model_path, engines, skipped)
    calls, kind = workload(models["ort"], frames=max(steps + warmup, 1), whole=whole)
    ort = models["ort"]
    zeros = ort.zero_states(1) if kind == "streaming" else {}
    direct = lambda threads=1: DirectOrt(model_path, ort.states, threads)  # noqa: E731
    runs = {name: (lambda m=m: m.stream() if kind == "streaming" else m)
            for name, m in models.items()}
    if "ort" in models:
        runs[ORT_DIRECT] = lambda: (direct().stream(zeros) if kind == "streaming" else direct())
    check_parity(runs, calls[: min(len(calls), 64)], kind)

    def make(name):
        def build(batch=1, threads=1):
            if threads == 1:
                runner = runs[name]()
            elif name == ORT_DIRECT:
                runner = direct(threads).stream(zeros) if kind == "streaming" else direct(threads)
            else:
                model = load(model_path, engine=name, threads=threads)
                runner = model.stream() if kind == "streaming" else model
            run = runner.step if kind == "streaming" else runner.run
            return lambda idx: run(calls[idx[0] % len(calls)])
        return build

    ids = np.arange(steps + warmup)
    makers = {name: make(name) for name in runs}
    floor = seq_floor(model_path, calls[0], skipped)
    timed = interleaved({**makers, **({FLOOR: floor} if floor else {})}, ids, warmup, rounds,
                        threads)
    rows = {name: percentiles(s) for name, s in timed.items()}
    base = rows["ort"]["p50_us"]
    for r in rows.values():
        r["vs_ort"] = r["p50_us"] / base
        if ORT_DIRECT in rows:
            r["vs_ort_direct"] = r["p50_us"] / rows[ORT_DIRECT]["p50_us"]
    return {"model": str(model_path), "workload": kind, "calls": steps, "threads": threads,
            "engines": rows, "skipped": skipped, "states": models["ort"].states}


def seq_floor_matrices(model_path):
    """(what each frame reads: [W | R] of every layer and direction, R alone for layer 0 of
    token ids; the head's weight; the sequence input's name; whether the head runs on every
    frame; the sequence's time axis), float32 contiguous, for an rnnedge classifier (``fast_seq.read_seq``) or a
    streaming chain (``chain_graph.read_chain``, users' models); ``UnsupportedError`` for a
    graph that is neither, with the reasons of both."""
    from rnnedge.runtime.chain_graph import read_chain
    from rnnedge.runtime.errors import UnsupportedError
    from rnnedge.runtime.fast_seq import read_seq
    from rnnedge.runtime.files import read_onnx

    model = read_onnx(model_path)
    try:
        s = read_seq(model)
        every, time_axis = False, 1
    except UnsupportedError as not_seq:
        try:
            s = read_chain(model)
        except UnsupportedError as not_chain:
            raise UnsupportedError(f"{not_seq}; {not_chain}") from None
        every, time_axis = s.every, 1 - s.time_major
    layers = [list(zip(W, R)) for W, R, _ in s.layers]  # each direction, as the file has them
    cat = lambda W, R: np.ascontiguousarray(R if W is None else np.concatenate([W, R], axis=1),
                                            np.float32)  # (G*H, K)
    mats = [cat(None if i == 0 and s.embedding is not None else W, R)
            for i, directions in enumerate(layers) for W, R in directions]
    return mats, cat(None, s.fc), s.sequence, every, time_axis


def seq_floor(model_path, call, skipped):
    """The floor's maker over what one call reads (its frames, then the head: after each
    frame or once), or None (-> ``skipped``) for a graph the fast engines do not read whole."""
    from rnnedge.runtime.errors import UnsupportedError

    try:
        mats, fc, sequence, every, time_axis = seq_floor_matrices(model_path)
    except UnsupportedError as exc:
        skipped[FLOOR] = ("measured for rnnedge's classifiers and streaming chains, whose "
                          f"weights the fast engines read whole ({exc})")
        return None
    frames = int(np.asarray(call[sequence]).shape[time_axis])
    recurrent, head = floor_maker(mats)(), floor_maker([fc])()

    def make(batch=1, threads=1):
        def step(ids):
            for _ in range(frames):
                recurrent(ids)
                if every:
                    head(ids)
            return None if every else head(ids)
        return step
    return make


def check_parity(runs, calls, kind):
    """Every engine against onnxruntime over the same calls (streamed when the model streams);
    ``runs``: name -> a new stream (or model) of that engine."""
    outputs = {}
    for name, start in runs.items():
        runner = start()
        run = runner.step if kind == "streaming" else runner.run
        # ort-direct's outputs are its buffers, overwritten by the next call
        outputs[name] = [{k: np.array(v) for k, v in run(c).items()} for c in calls]
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
             "| engine | p50 µs | p90 µs | p99 µs | vs ort | vs ort-direct |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, r in report["engines"].items():
        direct = f"{r['vs_ort_direct']:.2f}x" if "vs_ort_direct" in r else "-"
        lines.append(f"| {name} | {r['p50_us']:.0f} | {r['p90_us']:.0f} | {r['p99_us']:.0f} "
                     f"| {r['vs_ort']:.2f}x | {direct} |")
    lines += [f"skipped {name}: {why}" for name, why in report["skipped"].items()]
    return "\n".join(lines)
