"""The fast engine of whole-sequence classifiers (``runtime/fast_seq.py``, ``ops/fused_stack.py``):
sentiment graphs (``export/models.py``, built from random weights, no torch) and series
exports (torch, random weights) of every cell, head, depth and direction, run by the fused
kernels against onnxruntime (FP32; int8: INT8) and their numpy twins (KERNEL).

Random inputs with fixed seeds, (batch, time) shapes including 1 and odd sizes, padded
batches with mixed lengths (padding must not change an answer: each row alone equals the
row in its batch), streaming frame by frame from the states of a forward series model;
graphs it must refuse, and typed errors.
"""

import json

import numpy as np
import onnx
import pytest

from rnnedge.export.graph import GATE_ORDER
from rnnedge.export.models import sentiment_graph
from rnnedge.runtime.engines import OrtEngine, make_engine
from rnnedge.runtime.errors import InputError, UnsupportedError
from rnnedge.runtime.fast_seq import FastSeqEngine, read_seq
from rnnedge.runtime.tolerances import FP32, INT8, KERNEL, assert_close

V, E, H = 50, 6, 9
SHAPES = [(1, 1), (1, 7), (3, 5), (5, 9)]
SENTIMENT = [("lstm", "mean", 1, False), ("gru", "last", 2, False), ("rnn", "max", 1, True),
             ("lstm", "last", 2, True), ("gru", "max", 1, True), ("rnn", "mean", 2, False)]


def random_sentiment(cell, head, layers, bidirectional, nonlinearity="tanh", seed=0, lbr=1):
    """A sentiment graph as ``rnnedge export`` writes it, over random weights (``lbr``: GRU's
    linear_before_reset, 0 only to test that graph)."""
    rng = np.random.default_rng(seed)
    G, D = len(GATE_ORDER[cell]), 2 if bidirectional else 1
    w = lambda *shape: (0.4 * rng.standard_normal(shape)).astype(np.float32)
    sd = {"embedding.weight": w(V, E), "fc.weight": w(1, D * H), "fc.bias": w(1)}
    for k in range(layers):
        for sfx in ["", "_reverse"][:D]:
            sd.update({f"rnn.weight_ih_l{k}{sfx}": w(G * H, E if k == 0 else D * H),
                       f"rnn.weight_hh_l{k}{sfx}": w(G * H, H),
                       f"rnn.bias_ih_l{k}{sfx}": w(G * H), f"rnn.bias_hh_l{k}{sfx}": w(G * H)})
    config = {"cell": cell, "hidden_size": H, "num_layers": layers, "head": head,
              "bidirectional": bidirectional, "nonlinearity": nonlinearity, "embed_dim": E,
              "vocab_size": V}
    return sentiment_graph(config, sd, {"rnnedge.format": "2", "rnnedge.kind": "sentiment",
                                        "rnnedge.config": json.dumps(config)}, lbr)


def token_feeds(B, T, seed):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, T + 1, B)
    lengths[rng.integers(B)] = T
    tokens = rng.integers(1, V, (B, T))
    tokens[np.arange(T)[None] >= lengths[:, None]] = 0  # right-padded with <pad>
    return {"tokens": tokens, "lengths": lengths}


def check_engines(model, feeds_of, shapes=SHAPES):
    """fast and fast-int8 against onnxruntime and their twins on every shape; padding
    invariance: each row alone equals the row in its padded batch."""
    ort = OrtEngine(model)
    for quantize, level in ((None, FP32), ("int8", INT8)):
        fast, twin = FastSeqEngine(model, quantize), FastSeqEngine(model, quantize, twin=True)
        for k, (B, T) in enumerate(shapes):
            feeds = feeds_of(B, T, k)
            ref, got, plain = ort.run(feeds), fast.run(feeds), twin.run(feeds)
            for name in ref:
                what = f"{quantize or 'fp32'} {name} B={B} T={T}"
                assert_close(f"fast vs ort {what}", got[name], ref[name], level)
                assert_close(f"fast vs twin {what}", got[name], plain[name], KERNEL)
            for b in range(B):
                n = int(min(feeds["lengths"][b], T))
                alone = {key: _row(key, v, b, n) for key, v in feeds.items()}
                for name, value in fast.run(alone).items():
                    assert_close(f"row {b} alone {what}", value, _row(name, got[name], b, None),
                                 KERNEL)


def _row(name, value, b, n):
    """Row b of a feed or output (its batch axis: 1 for h, c; else 0), cut to n steps."""
    row = value[:, b:b + 1] if name in ("h", "c", "h_new", "c_new") else value[b:b + 1]
    return row[:, :n] if n is not None and name in ("tokens", "frames") else row


@pytest.mark.parametrize("kind", SENTIMENT, ids=["-".join(map(str, k)) for k in SENTIMENT])
def test_sentiment_graphs_match_onnxruntime_and_the_twins(kind):
    check_engines(random_sentiment(*kind), token_feeds)


def test_a_gru_with_linear_before_reset_0_runs_its_own_equations():
    check_engines(random_sentiment("gru", "max", 2, True, seed=5, lbr=0), token_feeds, SHAPES[1:3])


def test_relu_rnn_and_the_demo_head_read_as_exported():
    model = random_sentiment("rnn", "mean", 1, False, nonlinearity="relu", seed=3)
    check_engines(model, token_feeds, SHAPES[2:])
    seq = read_seq(model)
    assert (seq.op, seq.head, seq.directions, seq.sequence) == ("RNN", "mean", 1, "tokens")


# -- series (torch exports) -------------------------------------------------------------
SERIES = [("gru", "mean", 1, False), ("lstm", "max", 2, False), ("rnn", "last", 1, False),
          ("gru", "max", 1, True), ("lstm", "last", 2, True), ("rnn", "mean", 1, True)]
C, K = 3, 4


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    pytest.importorskip("torch")
    out = tmp_path_factory.mktemp("fast_seq")
    return {kind: export_series_model(out, *kind) for kind in SERIES}


def export_series_model(out, cell, head, layers, bidirectional):
    """An exported series classifier over random weights (the gate checks it)."""
    import torch

    from rnnedge.export.series import export_series
    from rnnedge.train.config import SeriesConfig
    from rnnedge.train.series_model import SeriesNet

    torch.manual_seed(layers)
    config = SeriesConfig(channels=C, num_classes=K, hidden_size=H, num_layers=layers, cell=cell,
                          head=head, bidirectional=bidirectional)
    net = SeriesNet(config)
    ckpt = {"config": vars(config), "model": net.state_dict(), "vocab": list("abcd"),
            "norm": {"mean": [0.5, -1.0, 2.0], "std": [2.0, 0.5, 1.5]}}
    path, diffs = export_series(ckpt, out / f"{cell}_{head}_{layers}_{bidirectional}.onnx")
    assert all(d.ok for d in diffs), [str(d) for d in diffs]
    return onnx.load(path)


def frame_feeds(model, states=True):
    """feeds_of(B, T, seed): raw frames around the graph's mean, lengths, random states."""
    names, L = {i.name for i in model.graph.input}, layers(model)

    def feeds_of(B, T, seed):
        rng = np.random.default_rng(seed)
        lengths = rng.integers(1, T + 1, B)
        lengths[rng.integers(B)] = T
        frames = (1.5 * rng.standard_normal((B, T, C)) + 0.5).astype(np.float32)
        frames[np.arange(T)[None] >= lengths[:, None]] = 0
        feeds = {"frames": frames, "lengths": lengths}
        if states:
            state = lambda *shape: (0.5 * rng.standard_normal(shape)).astype(np.float32)
            feeds.update({n: state(L, B, H) for n in ("h", "c") if n in names})
            if "pooled" in names:
                feeds.update(pooled=state(B, H), seen=np.full((B, 1), 3.0, np.float32))
        return feeds
    return feeds_of


@pytest.mark.parametrize("kind", SERIES, ids=["-".join(map(str, k)) for k in SERIES])
def test_series_exports_match_onnxruntime_and_the_twins(series, kind):
    check_engines(series[kind], frame_feeds(series[kind]))


@pytest.mark.parametrize("kind", SERIES[:3], ids=["-".join(map(str, k)) for k in SERIES[:3]])
def test_a_series_stream_on_the_fast_engines_ends_where_the_whole_case_ends(series, kind):
    model, feeds = series[kind], frame_feeds(series[kind], states=False)(1, 11, 7)
    ort = OrtEngine(model)
    whole = ort.run({**feeds, **zero_states(model, feeds)})
    for quantize, level in ((None, FP32), ("int8", INT8)):
        fast, states = FastSeqEngine(model, quantize), zero_states(model, feeds)
        for t in range(11):
            out = fast.run({"frames": feeds["frames"][:, t:t + 1], "lengths": np.array([11]),
                            **states})  # a length above the chunk's frames means all of them
            states = {n: out[f"{n}_new"] for n in states}
        assert_close(f"{quantize or 'fp32'} stream vs whole", out["probs"], whole["probs"], level)


def layers(model):
    return sum(n.op_type in ("LSTM", "GRU", "RNN") for n in model.graph.node)


def zero_states(model, feeds):
    """Zero states of a forward series model for the batch of ``feeds``."""
    B = len(feeds["lengths"])
    shapes = {"h": (layers(model), B, H), "c": (layers(model), B, H), "pooled": (B, H),
              "seen": (B, 1)}
    return {i.name: np.zeros(shapes[i.name], np.float32) for i in model.graph.input
            if i.name in shapes}


# -- refusals and errors -----------------------------------------------------------------
def test_graphs_it_does_not_read_are_refused_by_name():
    model = random_sentiment("gru", "mean", 1, False)
    for node in model.graph.node:
        if node.op_type == "ReduceSum":
            node.op_type = "ReduceMax"
    with pytest.raises(UnsupportedError, match="the head is 'mean'"):
        FastSeqEngine(model)
    model = random_sentiment("lstm", "mean", 2, False)
    config = json.loads({p.key: p.value for p in model.metadata_props}["rnnedge.config"])
    onnx.helper.set_model_props(model, {"rnnedge.format": "2", "rnnedge.kind": "sentiment",
                                        "rnnedge.config": json.dumps({**config, "num_layers": 1})})
    with pytest.raises(UnsupportedError, match="1 x LSTM"):
        FastSeqEngine(model)
    onnx.helper.set_model_props(model, {"rnnedge.format": "2", "rnnedge.kind": "charlm"})
    with pytest.raises(UnsupportedError, match="not an rnnedge sentiment or series"):
        FastSeqEngine(model)


def test_make_engine_picks_it_by_kind_and_malformed_metadata_is_refused():
    from rnnedge.runtime.errors import ModelFileError
    from rnnedge.runtime.metadata import read_metadata

    model = random_sentiment("lstm", "max", 1, True)
    assert isinstance(make_engine("fast", model, meta=read_metadata(model)), FastSeqEngine)
    assert make_engine("fast-int8", model, meta=read_metadata(model)).name == "fast-int8"
    onnx.helper.set_model_props(model, {"rnnedge.format": "2", "rnnedge.kind": "sentiment",
                                        "rnnedge.config": "{not json"})
    with pytest.raises(ModelFileError, match="metadata rnnedge.config is not JSON"):
        read_metadata(model)


@pytest.mark.parametrize("feeds, message", [
    ({"tokens": np.ones((2, 4), np.int64), "lengths": np.array([4, 0])}, r"lengths\[1\] is 0"),
    ({"tokens": np.ones((1, 4), np.int64), "lengths": np.array([5])}, r"lengths\[0\] is 5"),
    ({"tokens": np.full((1, 3), V), "lengths": np.array([3])}, r"token id 50 at \(0, 0\)"),
    ({"tokens": np.ones((1, 3), np.float32), "lengths": np.array([3])}, "expected token ids"),
    ({"tokens": np.ones((1, 3), np.int64), "lengths": np.array([3, 3])}, "expected \\(1,\\)"),
    ({"lengths": np.array([3])}, "feeds lack tokens"),
])
def test_bad_feeds_are_typed_errors(feeds, message):
    engine = FastSeqEngine(random_sentiment("gru", "mean", 1, False))
    with pytest.raises(InputError, match=message):
        engine.run(feeds)


@pytest.mark.parametrize("engine", ["fast", "fast-int8"])
def test_the_one_pass_common_case_of_token_ids_gives_what_the_long_path_gives(engine):
    """``run_checked`` on the classifier's graph: int64 C-contiguous ids and lengths go in
    one pass, bit for bit as the checked path; anything else goes the long way."""
    from rnnedge.runtime.graph_model import GraphModel
    from rnnedge.runtime.model import signature

    model = random_sentiment("lstm", "mean", 2, False)
    quantize = "int8" if engine == "fast-int8" else None
    fast, slow = (GraphModel(FastSeqEngine(model, quantize), signature(model)) for _ in "ab")
    slow.run_checked = None
    assert fast.run_checked is not None
    for k, (B, T) in enumerate(SHAPES):
        feeds = token_feeds(B, T, k)
        assert fast.engine.run_checked(feeds) is not None
        got, want = fast.run(feeds), slow.run(feeds)
        for name in want:
            np.testing.assert_array_equal(got[name], want[name])
        for other in ({**feeds, "tokens": feeds["tokens"].astype(np.int32)},
                      {**feeds, "lengths": feeds["lengths"].astype(np.int32)},
                      {**feeds, "tokens": np.asfortranarray(feeds["tokens"])} if B > 1 else None):
            if other is not None:
                assert fast.engine.run_checked(other) is None
    bad = {"tokens": np.array([[1, V]]), "lengths": np.array([2])}
    with pytest.raises(InputError, match=f"token id {V} at \\(0, 1\\) is outside the embedding"):
        fast.run(bad)
