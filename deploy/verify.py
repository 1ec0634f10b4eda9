"""``rnnedge verify``: PyTorch, onnxruntime and numba on the same inputs, every pair compared.

PyTorch joins when a checkpoint is given and torch imports. Inputs: random feeds
(several batch and time sizes, random states) and real text from the data set when
it is available. For the character model the streamed run (one character per call)
is also compared with the whole-prompt run on each runtime engine.
"""

import itertools
import sys

import numpy as np

from rnnedge.runtime.tolerances import FP32


def _engines(model_path, checkpoint):
    import onnx

    from rnnedge.runtime.model import OrtEngine, NumbaEngine

    proto = onnx.load(str(model_path))
    engines = {"ort": OrtEngine(proto).run, "numba": NumbaEngine(proto).run}
    if checkpoint is not None:
        from rnnedge.train import checkpoint as ckpt_io

        ckpt = ckpt_io.load(checkpoint)
        engines = {"torch": ckpt, **engines}
    return engines


def _real_text_feed(model, data_dir, batch=4, time=200):
    """Windows of the Hamlet validation text, or None when the file is not at hand."""
    from rnnedge.train.download import data_dir as resolve
    from rnnedge.train.hamlet import HAMLET_FILE, extract_play

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


def verify_charlm(model_path, checkpoint=None, data_dir=None, tol=FP32):
    """Rows of the parity report: one per (input, pair of engines, output)."""
    from rnnedge.runtime.model import load

    from .validate import charlm_inputs, compare_outputs, torch_charlm

    engines = _engines(model_path, checkpoint)
    if "torch" in engines:
        from rnnedge.train.charlm import build_model

        torch_model = build_model(engines["torch"])
        engines["torch"] = lambda feeds: torch_charlm(torch_model, feeds)
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


def verify(model_path, checkpoint=None, data_dir=None):
    """Verify any rnnedge model; returns the diffs (the caller decides the exit code)."""
    from rnnedge.runtime.model import read_metadata, read_onnx

    task = read_metadata(read_onnx(model_path), model_path).task
    if task == "charlm":
        return verify_charlm(model_path, checkpoint, data_dir)
    from .verify_sentiment import verify_sentiment

    return verify_sentiment(model_path, checkpoint, data_dir)
