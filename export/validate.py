"""Validating an export: the ONNX file against the PyTorch model it came from.

As optimum's ``validate_model_outputs``: output names, then shapes, then values,
with the max difference reported. Inputs are random with a fixed seed, over several
(batch, time) sizes including 1, odd sizes and lengths never seen at export, with
random (non-zero) initial states.
"""

import numpy as np

from rnnedge.runtime.tolerances import FP32, compare

# (batch, time): streaming step, odd sizes, a long prompt
CHARLM_SHAPES = ((1, 1), (1, 37), (3, 1), (5, 64), (2, 257))
SENTIMENT_SHAPES = ((1, 1), (1, 23), (7, 50), (16, 301))


def charlm_inputs(config, shapes=CHARLM_SHAPES, seed=0):
    """Random token ids and states for each (batch, time) in ``shapes``."""
    rng = np.random.default_rng(seed)
    L, H = config["num_layers"], config["hidden_size"]
    for batch, time in shapes:
        feeds = {"tokens": rng.integers(0, config["vocab_size"], (batch, time), dtype=np.int64),
                 "h0": (0.5 * rng.standard_normal((L, batch, H))).astype(np.float32)}
        if config["cell"] == "lstm":
            feeds["c0"] = (0.5 * rng.standard_normal((L, batch, H))).astype(np.float32)
        yield feeds


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


def compare_outputs(label, actual, expected, tol=FP32):
    """Diffs of every expected output; a missing output name is itself a failure."""
    missing = sorted(set(expected) - set(actual))
    if missing:
        from rnnedge.runtime.errors import ParityError

        raise ParityError(f"{label}: outputs {', '.join(missing)} are missing")
    return [compare(f"{label} {name}", actual[name], expected[name], tol) for name in expected]


def validate_charlm(model, engine, config, tol=FP32, shapes=CHARLM_SHAPES):
    """Diffs of ``engine`` against the PyTorch ``model`` over random feeds."""
    diffs = []
    for feeds in charlm_inputs(config, shapes):
        b, t = feeds["tokens"].shape
        diffs += compare_outputs(f"B={b} T={t}", engine.run(feeds), torch_charlm(model, feeds), tol)
    return diffs


def sentiment_inputs(config, shapes=SENTIMENT_SHAPES, seed=0):
    """Random right-padded reviews with random true lengths (one of full length per batch)."""
    rng = np.random.default_rng(seed)
    for batch, time in shapes:
        lengths = rng.integers(1, time + 1, batch, dtype=np.int64)
        lengths[0] = time
        tokens = rng.integers(2, config["vocab_size"], (batch, time), dtype=np.int64)
        tokens[np.arange(time)[None, :] >= lengths[:, None]] = 0  # padding id
        yield {"tokens": tokens, "lengths": lengths}


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
