"""The fast chain engine: graphs exported by torch (TorchScript exporter, opset 17) of layer
chains with a linear head, run by fused kernels against onnxruntime (FP32, int8: INT8) and
against their numpy twins (KERNEL); streaming state; graphs it must refuse; typed errors.

Random inputs and initial states with fixed seeds, (batch, time) shapes including 1 and odd
sizes, lengths other than the export's.
"""

import io

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from rnnedge.runtime.engines import OrtEngine
from rnnedge.runtime.errors import InputError, UnsupportedError
from rnnedge.runtime.fast_chain import FastChainEngine
from rnnedge.runtime.tolerances import FP32, INT8, KERNEL, assert_close
from user_models import PASSING, tamper_gru_lbr0

F, H, C, V = 6, 11, 5, 13
SHAPES = [(1, 1), (3, 5), (2, 1), (1, 7)]


class Chain(nn.Module):
    """frames or token ids -> nn.GRU/LSTM/RNN -> nn.Linear, the head on every step ("all"),
    on the last step's output ("last") or on h[-1] ("hn"); states in and out if ``state``;
    batch-first, or PyTorch's default time-major layout (input and "all" output (T, B, .))."""

    def __init__(self, kind, layers, head, state, tokens, nonlinearity, head_bias,
                 batch_first=True):
        super().__init__()
        self.kind, self.head_on, self.state = kind, head, state
        self.embed = nn.Embedding(V, F) if tokens else None
        extra = {"nonlinearity": nonlinearity} if kind == "RNN" else {}
        self.rnn = getattr(nn, kind)(F, H, num_layers=layers, batch_first=batch_first, **extra)
        self.head = nn.Linear(H, C, bias=head_bias)
        self.last = (slice(None), -1) if batch_first else -1

    def forward(self, x, *states):
        x = self.embed(x) if self.embed is not None else x
        given = (states if self.kind == "LSTM" else states[0]) if states else None
        out, final = self.rnn(x, given)
        h = final[0] if self.kind == "LSTM" else final
        y = self.head({"all": out, "last": out[self.last], "hn": h[-1]}[self.head_on])
        if not self.state:
            return y
        return (y, *final) if self.kind == "LSTM" else (y, final)


def export(kind, layers, head="all", state=True, tokens=False, nonlinearity="tanh", lbr=1,
           head_bias=True, batch_first=True):
    torch.manual_seed(layers)
    module = Chain(kind, layers, head, state, tokens, nonlinearity, head_bias, batch_first).eval()
    names = ["x"] + (["h", "c"] if kind == "LSTM" else ["h"]) * state
    x = torch.randint(0, V, (2, 3)) if tokens else torch.randn(2, 3, F)  # (B, T) or (T, B)
    args = (x, *(torch.randn(layers, 3 - batch_first, H) for _ in names[1:]))
    outs = ["y"] + (["h_new", "c_new"] if kind == "LSTM" else ["h_new"]) * state
    seq = {0: "batch", 1: "time"} if batch_first else {0: "time", 1: "batch"}
    axes = {"x": seq, "y": seq if head == "all" else {0: "batch"},
            **{n: {1: "batch"} for n in names[1:] + outs[1:]}}
    buf = io.BytesIO()
    torch.onnx.export(module, args, buf, input_names=names, output_names=outs,
                      dynamic_axes=axes, opset_version=17, dynamo=False)
    model = onnx.load_from_string(buf.getvalue())
    if lbr == 0:
        tamper_gru_lbr0(model)
    return model


def feeds_for(model, batch, time, rng):
    feeds = {}
    for i in model.graph.input:
        dims = [d.dim_value for d in i.type.tensor_type.shape.dim]
        first = i.type.tensor_type.shape.dim[0].dim_param
        seq = (time, batch) if i.name == "x" and first == "time" else (batch, time)
        if i.name == "x" and len(dims) == 2:
            feeds["x"] = rng.integers(0, V, seq)
        elif i.name == "x":
            feeds["x"] = rng.standard_normal((*seq, F)).astype(np.float32)
        else:
            feeds[i.name] = rng.uniform(-1, 1, (dims[0], batch, H)).astype(np.float32)
    return feeds


CASES = {  # name: export arguments
    "kws-gru": ("GRU", 1),
    "gru2-last-lbr0": ("GRU", 2, "last", False, False, "tanh", 0),
    "lstm2-forecaster": ("LSTM", 2),
    "lstm1-tokens-last": ("LSTM", 1, "last", False, True),
    "rnn3-relu-hn": ("RNN", 3, "hn", False, False, "relu"),
    "rnn2-tanh-tokens": ("RNN", 2, "all", True, True),
    "gru3-tokens-hn-lbr0": ("GRU", 3, "hn", True, True, "tanh", 0),
    "lstm3-hn": ("LSTM", 3, "hn"),
    "rnn1-last-no-bias": ("RNN", 1, "last", True, False, "relu", 1, False),
    # PyTorch's default layout, time-major: (T, B, .) in, and out of an every-step head
    "tm-gru2": ("GRU", 2, "all", True, False, "tanh", 1, True, False),
    "tm-lstm1-tokens-last": ("LSTM", 1, "last", False, True, "tanh", 1, True, False),
    "tm-rnn2-hn-zero-states": ("RNN", 2, "hn", False, False, "relu", 1, True, False),
    "tm-lstm2-tokens-all": ("LSTM", 2, "all", True, True, "tanh", 1, True, False),
}


@pytest.mark.parametrize("case", CASES)
def test_matches_onnxruntime_and_twins(case):
    model = export(*CASES[case])
    ort = OrtEngine(model)
    engines = {(q, twin): FastChainEngine(model, quantize=q, twin=twin)
               for q in (None, "int8") for twin in (False, True)}
    rng = np.random.default_rng(7)
    for batch, time in SHAPES:
        feeds = feeds_for(model, batch, time, rng)
        want = ort.run(feeds)
        got = {key: engine.run(feeds) for key, engine in engines.items()}
        for name in want:
            where = f"{case} {name} B={batch} T={time}"
            assert_close(f"{where} fp32", got[None, False][name], want[name], FP32)
            assert_close(f"{where} int8", got["int8", False][name], want[name], INT8)
            for q in (None, "int8"):
                assert_close(f"{where} {q} twin", got[q, False][name], got[q, True][name], KERNEL)


def test_streaming_carries_state():
    """One frame per call with the state fed back equals one call over all the frames."""
    model = export("LSTM", 2)
    engine = FastChainEngine(model)
    feeds = feeds_for(model, 1, 9, np.random.default_rng(3))
    whole = engine.run(feeds)
    state = {"h": feeds["h"], "c": feeds["c"]}
    ys = []
    for t in range(9):
        out = engine.run({"x": feeds["x"][:, t:t + 1], **state})
        ys.append(out["y"])
        state = {"h": out["h_new"], "c": out["c_new"]}
    assert_close("streamed y", np.concatenate(ys, axis=1), whole["y"], KERNEL)
    assert_close("streamed h", state["h"], whole["h_new"], KERNEL)
    assert feeds["h"] is not whole["h_new"] and not np.shares_memory(feeds["h"], whole["h_new"])


@pytest.mark.parametrize("factory,message", [
    ("packed_gru_tagger", "takes sequence_lens"),  # a bidirectional GRU over packed sequences
    ("conv_gru", "not time-major frames"),
    ("attention_lstm", "not a linear head"),
    ("token_lstm", "run on FastPooledEngine"),  # mean-pooled: the pooled engine runs it
    ("scripted_cell_loop", "no LSTM, GRU or RNN"),
])
def test_refuses_what_it_cannot_map(factory, message):
    module, args, kwargs = PASSING[factory]()
    buf = io.BytesIO()
    torch.onnx.export(module, args, buf, opset_version=17, dynamo=False,
                      **{k: kwargs[k] for k in ("input_names", "output_names", "dynamic_axes")})
    with pytest.raises(UnsupportedError, match=message):
        FastChainEngine(onnx.load_from_string(buf.getvalue()))


def test_refuses_what_the_kernels_do_not_compute():
    model = export("GRU", 1)
    node = next(n for n in model.graph.node if n.op_type == "GRU")
    node.attribute.extend([onnx.helper.make_attribute("clip", 3.0)])
    with pytest.raises(UnsupportedError, match="clip"):
        FastChainEngine(model)
    model = export("GRU", 1)  # a state that is not one of the graph's inputs as it is
    node = next(n for n in model.graph.node if n.op_type == "GRU")
    model.graph.node.insert(0, onnx.helper.make_node("Neg", ["h"], ["minus_h"], name="neg"))
    node.input[5] = "minus_h"
    with pytest.raises(UnsupportedError, match="starts from the result of Neg 'neg'"):
        FastChainEngine(model)


def test_a_time_major_model_reads_and_answers_in_its_own_layout():
    """PyTorch's default layout: the engine takes (T, B, F) and returns (T, B, C), as the
    graph does, and says so when the sequence does not fit."""
    model = export("GRU", 2, "all", True, False, "tanh", 1, True, False)
    chain = FastChainEngine(model)
    assert chain.chain.time_major and chain.chain.y_time_major
    feeds = feeds_for(model, 2, 5, np.random.default_rng(4))
    assert feeds["x"].shape == (5, 2, F)
    got = chain.run(feeds)
    assert got["y"].shape == (5, 2, C) and got["y"].flags.c_contiguous
    assert_close("time-major y", got["y"], OrtEngine(model).run(feeds)["y"], FP32)
    with pytest.raises(InputError, match=r"expected frames \(time >= 1, batch, 6\)"):
        chain.run({**feeds, "x": np.zeros((0, 2, F), np.float32)})
    batch_first = FastChainEngine(export("GRU", 2))
    assert not batch_first.chain.time_major and not batch_first.chain.y_time_major


def test_typed_input_errors():
    tokens = FastChainEngine(export("RNN", 2, "all", True, True))
    h = np.zeros((2, 1, H), np.float32)
    with pytest.raises(InputError, match="outside the vocabulary"):
        tokens.run({"x": np.array([[1, V]]), "h": h})
    with pytest.raises(InputError, match="expected token ids"):
        tokens.run({"x": np.zeros((1, 2, F), np.float32), "h": h})
    frames = FastChainEngine(export("GRU", 1))
    with pytest.raises(InputError, match="expected frames \\(batch, time >= 1, 6\\)"):
        frames.run({"x": np.zeros((1, 2, F + 1), np.float32), "h": h[:1]})
    with pytest.raises(InputError, match="state h is missing"):
        frames.run({"x": np.zeros((1, 2, F), np.float32)})
    with pytest.raises(InputError, match="expected \\(1, 3, 11\\)"):
        frames.run({"x": np.zeros((3, 2, F), np.float32), "h": h})
    with pytest.raises(InputError, match="quantize"):
        FastChainEngine(export("GRU", 1), quantize="int4")


@pytest.mark.parametrize("time", [1, 4])  # one step (``stream``) and a sequence (``run``)
def test_the_kernel_refuses_nan_frames_and_states_itself(time):
    """The kernel checks frames and given states for NaN and infinity in the pass that copies
    the states: ``run`` without ``GraphModel.check`` still refuses them in one typed line,
    and ``run_checked`` hands them to the long path (None)."""
    engine = FastChainEngine(export("LSTM", 2))
    x, h = np.zeros((1, time, F), np.float32), np.zeros((2, 1, H), np.float32)
    bad_x = x.copy()
    bad_x[0, -1, 0] = np.nan
    with pytest.raises(InputError, match="x holds NaN or infinity"):
        engine.run({"x": bad_x, "h": h, "c": h})
    bad_h = h.copy()
    bad_h[1, 0, 3] = np.inf
    assert engine.run_checked({"x": bad_x, "h": h, "c": h}) is None
    assert engine.run_checked({"x": x, "h": bad_h, "c": h}) is None
    assert engine.run_checked({"x": x, "h": h, "c": bad_h}) is None
    assert set(engine.run_checked({"x": x, "h": h, "c": h})) == {"y", "h_new", "c_new"}


def outcome(run, feeds):
    """What a call gives: ("ok", outputs) or (error type, message)."""
    try:
        return "ok", run(feeds)
    except Exception as error:  # noqa: BLE001 - compared, not swallowed
        return type(error), str(error)


@pytest.mark.parametrize("case", ["kws-gru", "lstm2-forecaster", "rnn2-tanh-tokens",
                                  "lstm1-tokens-last", "tm-gru2", "tm-lstm2-tokens-all"])
@pytest.mark.parametrize("quantize", [None, "int8"])
def test_the_one_pass_common_case_gives_what_the_long_path_gives(case, quantize):
    """``FastChainEngine.run_checked`` skips ``GraphModel.check`` on the common case: the same
    outputs, bit for bit, the caller's states untouched; anything else goes the long way,
    and bad feeds get the long path's typed error."""
    from rnnedge.runtime.graph_model import GraphModel
    from rnnedge.runtime.model import signature

    model = export(*CASES[case])
    fast, slow = (GraphModel(FastChainEngine(model, quantize), signature(model)) for _ in "ab")
    slow.run_checked = None
    assert fast.run_checked is not None
    rng = np.random.default_rng(5)
    for batch, time in SHAPES:
        feeds = feeds_for(model, batch, time, rng)
        feeds["x"] = feeds["x"].astype(np.int64) if feeds["x"].ndim == 2 else feeds["x"]
        given = {k: v.copy() for k, v in feeds.items()}
        assert fast.engine.run_checked(feeds) is not None
        got, want = fast.run(feeds), slow.run(feeds)
        for name in want:
            np.testing.assert_array_equal(got[name], want[name])
        for k, v in given.items():
            np.testing.assert_array_equal(feeds[k], v)
        wide = {k: np.asfortranarray(v, np.float64) if v.dtype == np.float32 else
                v.astype(np.int32) for k, v in feeds.items()}
        assert fast.engine.run_checked(wide) is None
        for name in want:  # converted on the long path: the same values
            np.testing.assert_array_equal(fast.run(wide)[name], want[name])
    feeds = feeds_for(model, 1, 2, rng)
    feeds["x"] = feeds["x"].astype(np.int64) if feeds["x"].ndim == 2 else feeds["x"]
    floats = any(v.dtype == np.float32 for v in feeds.values())
    bad = [("nan", {k: np.full_like(v, np.nan) if v.dtype == np.float32 else v
                    for k, v in feeds.items()})] * floats + [
           ("batch", {k: np.concatenate([v, v], axis=1) if k != "x" else v
                      for k, v in feeds.items()})] * (len(feeds) > 1) + [
           ("empty", {**feeds, "x": feeds["x"][:, :0]})]
    for what, feeds in bad:
        got = outcome(fast.run, feeds)
        assert got[0] is InputError and got == outcome(slow.run, feeds), (what, got)


@pytest.mark.parametrize("case, every, sizes", [
    ("lstm2-forecaster", True, [(4 * H, F + H), (4 * H, 2 * H)]),
    ("tm-gru2", True, [(3 * H, F + H), (3 * H, 2 * H)]),
    ("lstm1-tokens-last", False, [(4 * H, H)]),  # token ids: layer 0's input is a row gather
    ("gru3-tokens-hn-lbr0", False, [(3 * H, H), (3 * H, 2 * H), (3 * H, 2 * H)])])
def test_the_bench_floor_reads_what_each_frame_of_a_chain_reads(tmp_path, case, every, sizes):
    from rnnedge.deploy.bench_generic import seq_floor_matrices

    model = export(*CASES[case])
    onnx.save(model, str(tmp_path / "m.onnx"))
    mats, fc, sequence, head_every, time_axis = seq_floor_matrices(tmp_path / "m.onnx")
    assert [m.shape for m in mats] == sizes and fc.shape == (C, H)
    assert (sequence, head_every, time_axis) == ("x", every, 0 if case.startswith("tm") else 1)
    layer = next(n for n in model.graph.node if n.op_type in ("LSTM", "GRU"))
    R = onnx.numpy_helper.to_array(next(t for t in model.graph.initializer
                                        if t.name == layer.input[2]))[0]
    np.testing.assert_array_equal(mats[0][:, -H:], R)  # the recurrent columns, ONNX order
