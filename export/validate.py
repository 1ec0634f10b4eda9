"""Validating an export: the ONNX file against the PyTorch model it came from (needs torch).

As optimum's ``validate_model_outputs`` (``runtime.parity.compare_outputs``): output names
both ways, then dtypes, shapes and values, every failure collected with the max difference;
``exporter.validate`` raises ``ParityError`` with all of them. Inputs are random with a fixed
seed, over several (batch, time) sizes including 1, odd sizes and lengths never seen at
export, with random (non-zero) initial states. Not here: the export itself (``exporter.py``).
"""

from rnnedge.runtime.parity import (CHARLM_SHAPES, SENTIMENT_SHAPES, charlm_inputs, compare_outputs,
                                    sentiment_inputs)
from rnnedge.runtime.tolerances import FP32


def torch_charlm(model, feeds):
    """The PyTorch reference outputs for one feed dict, as numpy."""
    import torch

    with torch.no_grad():
        h0 = torch.from_numpy(feeds["h0"])
        state = (h0, torch.from_numpy(feeds["c0"])) if "c0" in feeds else h0
        logits, state = model(torch.from_numpy(feeds["tokens"]), state)
    out = {"logits": logits.numpy()}
    if isinstance(state, tuple):
        out["hn"], out["cn"] = state[0].numpy(), state[1].numpy()
    else:
        out["hn"] = state.numpy()
    return out


def validate_charlm(model, engine, config, tol=FP32, shapes=CHARLM_SHAPES):
    """Diffs of ``engine`` against the PyTorch ``model`` over random feeds."""
    diffs = []
    for feeds in charlm_inputs(config, shapes):
        b, t = feeds["tokens"].shape
        diffs += compare_outputs(f"B={b} T={t}", engine.run(feeds), torch_charlm(model, feeds), tol)
    return diffs


def torch_sentiment(model, feeds):
    import torch

    with torch.no_grad():
        logit = model(torch.from_numpy(feeds["tokens"]), torch.from_numpy(feeds["lengths"]))
    return {"logit": logit.numpy(), "prob": torch.sigmoid(logit).numpy()}


def validate_sentiment(model, engine, config, tol=FP32, shapes=SENTIMENT_SHAPES):
    diffs = []
    for feeds in sentiment_inputs(config, shapes):
        b, t = feeds["tokens"].shape
        diffs += compare_outputs(f"B={b} T={t}", engine.run(feeds), torch_sentiment(model, feeds), tol)
    return diffs
