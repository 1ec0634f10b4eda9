"""``rnnedge bench`` for any recurrent ONNX file: every engine that can run it, parity first.

With state pairs the workload is the low-power one: batch 1, one frame per call, the states
carried by ``stream()``; without them (or with ``whole``), whole sequences at batch 1.
Inputs are the golden bundle's first case (its row 0), else random ones from the signature;
given a ``shape`` (batch, time), whole sequences of that shape, random (seeded), each true
length full.
Each engine is checked against onnxruntime at its precision's tolerance before it is timed,
in interleaved rounds; engines that cannot run the file are named with the reason. For an
rnnedge classifier (what ``runtime/fast_seq.py`` reads) or a streaming chain (a user's
model that ``runtime/chain_graph.py`` reads) the floor joins them: numpy matrix-vector
products over the weights of each frame ([W | R] of every layer and direction; R alone for
token ids, whose input projection is a row gather) and the head.
"""

import numpy as np

from rnnedge.runtime.errors import InputError, ParityError
from rnnedge.runtime.graph_model import is_batch_axis, is_time_axis
from rnnedge.runtime.tolerances import compare

from .makers import ORT_DIRECT, DirectOrt, load_engines, random_feeds, tolerance
from .timing import FLOOR, floor_maker, interleaved, percentiles

ENGINES = ("ort", "numba", "fast", "fast-int8")


WHOLE_TIME = 50  # frames of a whole sequence when a shape names only its batch
WHOLE_DEFAULT = 100  # frames of the sequence a whole-sequence model is timed on by default


def workload(model, frames=200, seed=0, whole=False, shape=None):
    """(list of feeds, one per call, "streaming" | "whole"): row 0 of a golden or random case
    frame by frame when the model streams and not ``whole``; a whole-sequence model (or
    ``whole``) one random case of ``WHOLE_DEFAULT`` frames at batch 1 (its golden case where
    it has no time axis); given ``shape`` (batch, time or None), one random whole case of that
    shape."""
    from rnnedge.runtime.golden import from_props

    if shape is not None:
        return [shaped_feeds(model, shape[0], shape[1], seed)], "whole"
    cases = from_props(model.meta.props) if model.meta else []
    feed = cases[0].inputs if cases else random_feeds(model.signature, seed, shapes=((1, 50),))[0]
    batch_axis = {i["name"]: next((a for a, d in enumerate(i["shape"])
                                   if isinstance(d, str) and "batch" in d.lower()), None)
                  for i in model.signature["inputs"]}
    row0 = {n: (np.take(v, [0], axis=batch_axis[n]) if batch_axis[n] is not None else v)
            for n, v in feed.items()}
    if not model.states or whole:  # a whole-sequence model: a realistic sequence, not a frame
        try:
            return [shaped_feeds(model, 1, WHOLE_DEFAULT, seed)], "whole"
        except InputError:  # no time axis to size (a one-step model): its own case
            return [row0], "whole"
    time_axis = {i["name"]: next((a for a, d in enumerate(i["shape"]) if is_time_axis(d)), None)
                 for i in model.signature["inputs"]}
    inputs = {n: v for n, v in row0.items() if n not in model.states}
    T = next((v.shape[time_axis[n]] for n, v in inputs.items() if time_axis[n] is not None), 1)
    calls = [{n: (np.take(v, [t % T], axis=time_axis[n]) if time_axis[n] is not None else v)
              for n, v in inputs.items()} for t in range(frames)]
    return calls, "streaming"


def shaped_feeds(model, batch, time=None, seed=0):
    """Random feeds of whole sequences (``batch``, ``time``: ``WHOLE_TIME`` when None), the
    lengths input (if any) full; an ``InputError`` for a size the signature has no axis for."""
    dims = [d for i in model.signature["inputs"] for d in i["shape"]]
    for flag, size, has in (("batch", batch, is_batch_axis), ("time", time, is_time_axis)):
        if size not in (None, 1) and not any(has(d) for d in dims):
            names = ", ".join(f"{i['name']} {i['shape']}" for i in model.signature["inputs"])
            raise InputError(f"--{flag}: the model has no dynamic {flag} axis to size (inputs "
                             f"{names})")
    time = time or WHOLE_TIME
    feeds = random_feeds(model.signature, seed, shapes=((batch, time),))[0]
    lengths = model.meta.lengths if model.meta else None
    if lengths in feeds:
        feeds[lengths] = np.full_like(feeds[lengths], time)
    return feeds


def bench_generic(model_path, steps=500, warmup=50, rounds=5, threads=1, engines=ENGINES,
                  whole=False, shape=None):
    """Latency per call of each engine, with parity against onnxruntime checked first;
    ``shape`` (batch, time or None): whole sequences of that shape (``shaped_feeds``)."""
    from rnnedge.runtime.model import load

    skipped = {}
    models = load_engines(model_path, engines, skipped)
    calls, kind = workload(models["ort"], frames=max(steps + warmup, 1), whole=whole, shape=shape)
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
    batch = 1 if shape is None else shape[0]
    floor = seq_floor(model_path, calls[0], skipped) if batch == 1 else None
    if batch != 1:
        skipped[FLOOR] = "measured at batch 1: matrix-vector products, one row a frame"
    timed = interleaved({**makers, **({FLOOR: floor} if floor else {})}, ids, warmup, rounds,
                        threads)
    rows = {name: percentiles(s) for name, s in timed.items()}
    base = rows["ort"]["p50_us"]
    for r in rows.values():
        r["vs_ort"] = r["p50_us"] / base
        if ORT_DIRECT in rows:
            r["vs_ort_direct"] = r["p50_us"] / rows[ORT_DIRECT]["p50_us"]
    shape_of = shape_of_call(models["ort"], calls[0]) if kind == "whole" else (1, 1)
    return {"model": str(model_path), "workload": kind, "calls": steps, "threads": threads,
            "batch": shape_of[0], "time": shape_of[1], "engines": rows, "skipped": skipped,
            "states": models["ort"].states}


def shape_of_call(model, feeds):
    """(batch, time) of one call's feeds: the sizes of the first input axes named so (1 when
    no input has such an axis)."""
    sizes = {}
    for spec in model.signature["inputs"]:
        for axis, d in enumerate(spec["shape"]):
            for kind, test in (("batch", is_batch_axis), ("time", is_time_axis)):
                if test(d) and spec["name"] in feeds:
                    sizes.setdefault(kind, int(np.shape(feeds[spec["name"]])[axis]))
    return sizes.get("batch", 1), sizes.get("time", 1)


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
            else f"batch {report['batch']}, a whole sequence of {report['time']} frames per call")
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
