"""``rnnedge verify``: PyTorch, onnxruntime and numba on the same inputs, every pair compared.

PyTorch joins as the engine ``torch`` when the caller hands in ``reference``
(``rnnedge.export.torch_engines.reference``: the command line does so for a checkpoint). Inputs: random feeds
(several batch and time sizes, random states) and real text from the data set when
it is available. For the character model the streamed run (one character per call)
is also compared with the whole-prompt run on each runtime engine.
"""

import itertools
import sys

import numpy as np

from rnnedge.runtime.tolerances import FP32


def _engines(model_path, reference):
    from rnnedge.runtime.engines import NumbaEngine, OrtEngine
    from rnnedge.runtime.files import read_onnx

    proto = read_onnx(model_path)
    engines = {"ort": OrtEngine(proto).run, "numba": NumbaEngine(proto).run}
    return {"torch": reference, **engines} if reference is not None else engines


def _real_text_feed(model, data_dir, batch=4, time=200):
    """Windows of the Hamlet validation text, or None when the file is not at hand."""
    from rnnedge.data.download import data_dir as resolve
    from rnnedge.data.hamlet import HAMLET_FILE, extract_play

    path = resolve(data_dir) / HAMLET_FILE
    if not path.is_file():
        print(f"note: {path} is missing; verifying on random inputs only", file=sys.stderr)
        return None
    text = extract_play(path.read_text(encoding="utf-8", errors="replace"))
    val = "".join(ch for ch in text[int(0.9 * len(text)):] if ch in model.index)
    ids = model.encode(val[: batch * time]).reshape(batch, time)
    state = model.zero_state(batch)
    return {"tokens": ids, **state}


def _streamed(model, feed):
    """Run row 0 of ``feed`` one token per call: logits (1, T, V) and the final state."""
    state = {k: v[:, :1] for k, v in feed.items() if k != "tokens"}
    steps = []
    for t in range(feed["tokens"].shape[1]):
        logits, state = model.run(feed["tokens"][:1, t:t + 1], state)
        steps.append(logits)
    out = {"logits": np.concatenate(steps, axis=1), "hn": state["h0"]}
    if "c0" in state:
        out["cn"] = state["c0"]
    return out


def verify_charlm(model_path, reference=None, data_dir=None, tol=FP32):
    """Rows of the parity report: one per (input, pair of engines, output)."""
    from rnnedge.runtime.model import load
    from rnnedge.runtime.parity import charlm_inputs, compare_outputs

    engines = _engines(model_path, reference)
    models = {name: load(model_path, engine=name) for name in ("ort", "numba")}
    feeds = {f"random B={f['tokens'].shape[0]} T={f['tokens'].shape[1]}": f
             for f in charlm_inputs(models["ort"].config)}
    real = _real_text_feed(models["ort"], data_dir)
    if real is not None:
        feeds["hamlet B=4 T=200"] = real
    diffs = []
    for label, feed in feeds.items():
        outs = {name: run(feed) for name, run in engines.items()}
        for a, b in itertools.combinations(outs, 2):
            diffs += compare_outputs(f"{label} {b} vs {a}", outs[b], outs[a], tol)
    stream_feed = real if real is not None else feeds["random B=5 T=64"]
    for name, m in models.items():
        whole = {k: v[:, :1] if k != "logits" else v[:1] for k, v in m.engine.run(stream_feed).items()}
        diffs += compare_outputs(f"streamed vs whole {name}", _streamed(m, stream_feed), whole, tol)
    return diffs


def verify(model_path, reference=None, data_dir=None, notes=None):
    """Verify any model file; returns the diffs (the caller decides the exit code).

    ``reference``: PyTorch's ``run(feeds) -> outputs`` for an rnnedge checkpoint's model, or
    None. Files of the user's own models are checked against their golden bundle instead
    (``verify_generic``); what was skipped is appended to ``notes``.
    """
    from rnnedge.runtime.errors import InputError

    task = model_task(model_path)
    if task == "charlm":
        return verify_charlm(model_path, reference, data_dir)
    if task == "sentiment":
        from .verify_sentiment import verify_sentiment

        return verify_sentiment(model_path, reference, data_dir)
    if reference is not None and task != "series":
        raise InputError(f"{model_path} is not an rnnedge charlm, sentiment or series model, so a "
                         "--checkpoint cannot run beside it; its golden bundle holds PyTorch's outputs")
    from .verify_generic import verify_generic

    diffs, found = verify_generic(model_path, reference=reference)
    if notes is not None:
        notes.extend(found)
    return diffs


def model_task(model_path):
    """The ``rnnedge.task`` of a model file; "series" for a series classifier (a generic file
    with a task of its own); "generic" for a file without rnnedge metadata."""
    from rnnedge.runtime.files import read_onnx
    from rnnedge.runtime.metadata import is_rnnedge, metadata_from_props, props_of
    from rnnedge.runtime.series import is_series

    props = props_of(read_onnx(model_path))
    if is_series(props):
        return "series"
    return metadata_from_props(props, model_path).task if is_rnnedge(props) else "generic"


def summarize(diffs):
    """One line per kind of comparison (worst difference, count), then every failed row in full."""
    import re

    groups = {}
    for d in diffs:
        words = [w for w in d.name.split()[:-1] if not re.fullmatch(r"[A-Z]=\d+|\d+|case|random", w)]
        groups.setdefault(" ".join(words) or d.name, []).append(d)
    lines = [f"{key}: {len(rows)} comparisons, worst max abs {max(r.max_abs for r in rows):.2g} "
             f"{'ok' if all(r.ok for r in rows) else 'FAIL'}" for key, rows in groups.items()]
    return lines + [str(d) for d in diffs if not d.ok]
