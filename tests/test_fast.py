"""The fast engines on rnnedge's char model, a chain over token ids (``FastChainEngine``):
fused kernels against their numpy twins (KERNEL) and onnxruntime (FP32), int8 against fp32
(INT8) and on real text, state carried across calls, typed errors.

Graphs are built from random numpy weights with the exporter's own graph code (no torch,
no training), in odd sizes so that the kernels' vector loops have remainders.
"""

import dataclasses

import numpy as np
import onnx
import pytest

from rnnedge.export.models import charlm_graph, sentiment_graph
from rnnedge.runtime.errors import InputError, UnsupportedError
from rnnedge.runtime.engines import OrtEngine, fused_engine
from rnnedge.runtime.fast_chain import NO_PROBS, NO_STATE, NO_SUM, FastChainEngine
from rnnedge.runtime.metadata import read_metadata
from rnnedge.runtime.model import load
from rnnedge.runtime.ops import fused_stack
from rnnedge.runtime.tolerances import FP32, INT8, KERNEL, assert_close

V, E, H = 13, 9, 21
GATES = {"lstm": 4, "gru": 3, "rnn": 1}
CASES = [("lstm", 2, "tanh"), ("gru", 1, "tanh"), ("gru", 2, "tanh"), ("rnn", 3, "relu"),
         ("rnn", 2, "tanh")]


def _state_dict(cell, layers, rng, bidirectional=False, outputs=V):
    """PyTorch-named numpy weights, a little larger than PyTorch's init so that gates saturate."""
    u = lambda *shape: rng.uniform(-2 / np.sqrt(H), 2 / np.sqrt(H), shape).astype(np.float32)
    sd = {"embedding.weight": rng.standard_normal((V, E)).astype(np.float32),
          "fc.weight": u(outputs, H * (2 if bidirectional else 1)), "fc.bias": u(outputs)}
    for layer in range(layers):
        inputs = E if layer == 0 else H * (2 if bidirectional else 1)
        for sfx in (["", "_reverse"] if bidirectional else [""]):
            sd[f"rnn.weight_ih_l{layer}{sfx}"] = u(GATES[cell] * H, inputs)
            sd[f"rnn.weight_hh_l{layer}{sfx}"] = u(GATES[cell] * H, H)
            sd[f"rnn.bias_ih_l{layer}{sfx}"] = u(GATES[cell] * H)
            sd[f"rnn.bias_hh_l{layer}{sfx}"] = u(GATES[cell] * H)
    return sd


def _charlm(cell, layers, nonlinearity="tanh", seed=0, **graph_args):
    config = {"cell": cell, "hidden_size": H, "num_layers": layers, "vocab_size": V,
              "nonlinearity": nonlinearity}
    sd = _state_dict(cell, layers, np.random.default_rng(seed))
    return charlm_graph(config, sd, {}, **graph_args)


def _feeds(cell, layers, batch, time, rng):
    """Random tokens and non-zero states."""
    feeds = {"tokens": rng.integers(0, V, (batch, time)),
             "h0": rng.uniform(-1, 1, (layers, batch, H)).astype(np.float32)}
    if cell == "lstm":
        feeds["c0"] = rng.uniform(-2, 2, (layers, batch, H)).astype(np.float32)
    return feeds


def _stream(engine, feeds):
    """One token per call with the state carried: logits (1, T, V) and the last state."""
    state = {k: v for k, v in feeds.items() if k != "tokens"}
    logits = []
    for t in range(feeds["tokens"].shape[1]):
        out = engine.run({"tokens": feeds["tokens"][:, t:t + 1], **state})
        logits.append(out["logits"])
        state = {"h0": out["hn"], **({"c0": out["cn"]} if "cn" in out else {})}
    return np.concatenate(logits, axis=1), state


def _twin(engine, feeds):
    """The plain numpy twin of the engine's kernel on the engine's packed weights."""
    h = feeds["h0"].copy()
    c = feeds["c0"].copy() if "c0" in feeds else NO_STATE
    logits = np.empty((*feeds["tokens"].shape, V), np.float32)
    lengths = np.full(len(h[0]), feeds["tokens"].shape[1])
    assert fused_stack.run_numpy(engine.no_frames, feeds["tokens"], lengths, NO_STATE, NO_STATE,
                                 h, c, NO_SUM, NO_SUM, logits, NO_PROBS, *engine.arguments,
                                 *engine.calls.work) == -1
    return logits, {"h0": h, **({"c0": c} if "c0" in feeds else {})}


def _assert_outputs(name, logits, state, ref_logits, ref_state, tol):
    assert_close(f"{name} logits", logits, ref_logits, tol)
    for key in ref_state:
        assert_close(f"{name} {key}", state[key], ref_state[key], tol)


@pytest.mark.parametrize("cell, layers, nonlinearity", CASES)
def test_streaming_batch_1_matches_twin_and_onnxruntime(cell, layers, nonlinearity):
    model = _charlm(cell, layers, nonlinearity)
    fast, fast8 = FastChainEngine(model), FastChainEngine(model, quantize="int8")
    feeds = _feeds(cell, layers, 1, 50, np.random.default_rng(1))
    logits, state = _stream(fast, feeds)
    _assert_outputs("fast vs twin", logits, state, *_twin(fast, feeds), KERNEL)
    _assert_outputs("fast vs ort", logits, state, *_stream(OrtEngine(model), feeds), FP32)
    logits8, state8 = _stream(fast8, feeds)
    _assert_outputs("fast-int8 vs twin", logits8, state8, *_twin(fast8, feeds), KERNEL)
    _assert_outputs("fast-int8 vs fast", logits8, state8, logits, state, INT8)


@pytest.mark.parametrize("cell, layers, nonlinearity", CASES)
def test_several_rows_and_steps_in_one_call(cell, layers, nonlinearity):
    model = _charlm(cell, layers, nonlinearity, seed=2)
    feeds = _feeds(cell, layers, 3, 7, np.random.default_rng(3))
    ref = OrtEngine(model).run(feeds)
    ref_state = {"h0": ref["hn"], **({"c0": ref["cn"]} if "cn" in ref else {})}
    for engine, tol in ((FastChainEngine(model), FP32),
                        (FastChainEngine(model, quantize="int8"), INT8)):
        out = engine.run(feeds)
        assert sorted(out) == sorted(ref)
        state = {"h0": out["hn"], **({"c0": out["cn"]} if "cn" in out else {})}
        name = engine.name
        _assert_outputs(f"{name} vs twin", out["logits"], state, *_twin(engine, feeds), KERNEL)
        _assert_outputs(f"{name} vs ort", out["logits"], state, ref["logits"], ref_state, tol)


def test_state_is_returned_and_carried_across_calls():
    model = _charlm("lstm", 2)
    engine = FastChainEngine(model)
    feeds = _feeds("lstm", 2, 2, 20, np.random.default_rng(4))
    given = {k: v.copy() for k, v in feeds.items()}
    whole = engine.run(feeds)
    first = engine.run({**feeds, "tokens": feeds["tokens"][:, :8]})
    rest = engine.run({"tokens": feeds["tokens"][:, 8:], "h0": first["hn"], "c0": first["cn"]})
    for key, value in given.items():  # the inputs are left alone
        np.testing.assert_array_equal(feeds[key], value)
    assert not np.allclose(whole["hn"], feeds["h0"]) and not np.allclose(whole["cn"], feeds["c0"])
    np.testing.assert_array_equal(np.concatenate([first["logits"], rest["logits"]], axis=1),
                                  whole["logits"])
    np.testing.assert_array_equal(rest["hn"], whole["hn"])
    np.testing.assert_array_equal(rest["cn"], whole["cn"])
    gru_feeds = _feeds("gru", 2, 1, 3, np.random.default_rng(5))
    assert sorted(FastChainEngine(_charlm("gru", 2)).run(gru_feeds)) == ["hn", "logits"]


def test_bad_feeds_raise_input_errors():
    engine = FastChainEngine(_charlm("lstm", 2))
    feeds = _feeds("lstm", 2, 1, 4, np.random.default_rng(6))
    with pytest.raises(InputError, match=r"token id 13 at \(0, 2\) is outside the vocabulary"):
        engine.run({**feeds, "tokens": np.array([[1, 2, V, 3]])})
    with pytest.raises(InputError, match=r"token id -1 at \(0, 0\) is outside the vocabulary"):
        engine.run({**feeds, "tokens": np.array([[-1, 2, 1, 3]])})
    with pytest.raises(InputError, match="state c0 is missing"):
        engine.run({"tokens": feeds["tokens"], "h0": feeds["h0"]})
    with pytest.raises(InputError, match=r"state h0 is \(2, 3, 21\), expected \(2, 1, 21\)"):
        engine.run({**feeds, "h0": np.zeros((2, 3, H), np.float32)})


def _bidirectional_lstm():
    model = _charlm("lstm", 1)
    node = next(n for n in model.graph.node if n.op_type == "LSTM")
    next(a for a in node.attribute if a.name == "direction").s = b"bidirectional"
    return model


def _sentiment():
    config = {"cell": "gru", "hidden_size": H, "num_layers": 1, "bidirectional": True,
              "head": "last"}
    sd = _state_dict("gru", 1, np.random.default_rng(0), bidirectional=True, outputs=1)
    return sentiment_graph(config, sd, {})


@pytest.mark.parametrize("build, message", [
    (_sentiment, "sequence_lens"),
    (_bidirectional_lstm, "fast chain engine: LSTM node .* starts from .*h0.*, not zeros"),
])
def test_graphs_it_cannot_run_raise_unsupported(build, message):
    model = build()
    onnx.checker.check_model(model)
    with pytest.raises(UnsupportedError, match=message):
        FastChainEngine(model)


def test_a_char_model_file_takes_the_chain_reader_and_a_reset_first_gru_runs_fused():
    """The char model's kind picks the chain reader; a GRU exported with
    linear_before_reset=0 (Keras-style) runs fused too, matching onnxruntime."""
    model = _charlm("gru", 2, linear_before_reset=0)
    meta = dataclasses.replace(read_metadata(model), kind="charlm")
    for quantize, tol in ((None, FP32), ("int8", INT8)):
        engine, path = fused_engine(model, meta, quantize)
        assert isinstance(engine, FastChainEngine) and path == "fused stack (chain reader, streaming)"
        feeds = _feeds("gru", 2, 2, 9, np.random.default_rng(8))
        got, want = engine.run(feeds), OrtEngine(model).run(feeds)
        for key in want:
            assert_close(f"{engine.name} {key}", got[key], want[key], tol)


@pytest.mark.slow
def test_int8_picks_the_same_next_character_on_real_text(charlm, data_dir):
    fp32, int8 = load(charlm[1], engine="fast"), load(charlm[1], engine="fast-int8")
    assert (fp32.engine.name, int8.engine.name) == ("fast", "fast-int8")
    text = (data_dir / "hamlet_pg2265.txt").read_text(encoding="utf-8")[20000:]
    ids = fp32.encode("".join(ch for ch in text if ch in fp32.index)[:500])[None]  # (1, 500)
    logits, _ = fp32.run(ids)
    logits8, _ = int8.run(ids)
    assert_close("fast-int8 vs fast on Hamlet", logits8, logits, INT8)
    assert (logits8.argmax(-1) == logits.argmax(-1)).mean() >= 0.95


CACHE_PROBE = """
import sys
import numpy as np
import rnnedge.runtime as rt
from rnnedge.runtime.ops import fused_stack
model = rt.load(sys.argv[1], engine=sys.argv[2])
model.stream().step("Ham")
kernel = fused_stack.run
print(sum(kernel.stats.cache_hits.values()), sum(kernel.stats.cache_misses.values()))
"""


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["fast", "fast-int8"])
def test_compiled_kernels_are_cached_on_disk_for_the_next_process(charlm, tmp_path, engine):
    """NUMBA_CACHE_DIR (what a read-only install sets, else numba uses ~/.cache/numba):
    the first process compiles and writes the cache there, the next one only loads it."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    runs = [subprocess.run([sys.executable, "-c", CACHE_PROBE, str(charlm[1]), engine], env=env,
                           capture_output=True, text=True) for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr + runs[1].stderr
    (hits0, misses0), (hits1, misses1) = (map(int, r.stdout.split()) for r in runs)
    assert (hits0, misses0) == (0, 1) and (hits1, misses1) == (1, 0)
    assert any(p.suffix == ".nbc" for p in (tmp_path / "cache").rglob("*"))
