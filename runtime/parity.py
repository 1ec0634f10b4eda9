"""Parity inputs and the comparison of two engines' outputs, shared by export, verify and bench.

Inputs are random with a fixed seed over several (batch, time) sizes including 1, odd sizes
and lengths never seen at export, with random (non-zero) states and, for the classifier,
right-padded batches of mixed true lengths. Outputs are compared as optimum's
``validate_model_outputs`` does: names both ways, then dtypes, shapes and values, every
failure collected into one report instead of raising on the first. numpy only; the
comparison of two arrays and the tolerance levels are ``tolerances``.
"""

import math

import numpy as np

from .tolerances import FP32, compare, unmatched

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


def sentiment_inputs(config, shapes=SENTIMENT_SHAPES, seed=0):
    """Random right-padded reviews with random true lengths (one of full length per batch)."""
    rng = np.random.default_rng(seed)
    for batch, time in shapes:
        lengths = rng.integers(1, time + 1, batch, dtype=np.int64)
        lengths[0] = time
        tokens = rng.integers(2, config["vocab_size"], (batch, time), dtype=np.int64)
        tokens[np.arange(time)[None, :] >= lengths[:, None]] = 0  # padding id
        yield {"tokens": tokens, "lengths": lengths}


def compare_outputs(label, actual, expected, tol=FP32):
    """Diffs of two engines' output dicts, one per output name of either side; never raises.

    An output missing from ``actual`` and an extra one in it are failures (``check`` "name");
    every output of both is held to ``expected``'s dtype exactly, then its shape, then values.
    """
    diffs = [unmatched(f"{label} {name}", "missing: expected, but not among the outputs", tol)
             for name in expected if name not in actual]
    diffs += [unmatched(f"{label} {name}", "extra: among the outputs, but not expected", tol)
              for name in actual if name not in expected]
    return diffs + [compare(f"{label} {name}", actual[name], expected[name], tol,
                            dtype=np.asarray(expected[name]).dtype)
                    for name in expected if name in actual]


def failure_report(what, diffs):
    """Every failed diff in one message, with the max difference among them; "" if none failed."""
    failed = [d for d in diffs if not d.ok]
    if not failed:
        return ""
    worst = max((d.max_abs for d in failed if not math.isnan(d.max_abs)), default=math.nan)
    head = (f"{what}: {len(failed)} of {len(diffs)} comparisons failed"
            + ("" if math.isnan(worst) else f", max abs diff {worst:.3g}"))
    return "\n".join([head] + [f"  {d}" for d in failed])
