"""Users' whole-sequence classifiers with bidirectional layers or a pooled head on the fast
engines (``fast_chain.FastPooledEngine``: ``chain_graph.read_chain`` into the sequence
engine's kernel).

Small ``nn.GRU/LSTM/RNN`` modules, batch-first or time-major, frames or token ids, a mean or
max over time of the top outputs into ``nn.Linear``, exported by ``torch.onnx.export``:
fp32 and int8 against onnxruntime and the plain twins, ``make_engine`` choosing the engine,
the one-pass feed check, and the bench floor over what each step reads.
"""

import io

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from rnnedge.runtime.engines import OrtEngine, make_engine
from rnnedge.runtime.errors import InputError, UnsupportedError
from rnnedge.runtime.fast_chain import FastChainEngine, FastPooledEngine
from rnnedge.runtime.tolerances import FP32, INT8, KERNEL, assert_close

F, H, C, V = 5, 7, 4, 11


class Pooled(nn.Module):
    def __init__(self, kind, layers, bidirectional, pool, tokens, batch_first):
        super().__init__()
        self.embed = nn.Embedding(V, F) if tokens else None
        self.rnn = getattr(nn, kind)(F, H, num_layers=layers, bidirectional=bidirectional,
                                     batch_first=batch_first)
        self.fc = nn.Linear(H * (2 if bidirectional else 1), C)
        self.pool, self.time = pool, 1 if batch_first else 0

    def forward(self, x):
        x = self.embed(x) if self.embed is not None else x
        y, _ = self.rnn(x)
        return self.fc(y.mean(self.time) if self.pool == "mean" else y.amax(self.time))


def export(kind, layers=1, bidirectional=True, pool="mean", tokens=False, batch_first=True):
    torch.manual_seed(layers + 3 * bidirectional)
    module = Pooled(kind, layers, bidirectional, pool, tokens, batch_first).eval()
    shape = (2, 3) if batch_first else (3, 2)
    x = torch.randint(0, V, shape) if tokens else torch.randn(*shape, F)
    axes = {0: "batch", 1: "time"} if batch_first else {0: "time", 1: "batch"}
    buf = io.BytesIO()
    torch.onnx.export(module, (x,), buf, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": axes, "y": {0: "batch"}}, opset_version=17,
                      dynamo=False)
    return onnx.load_from_string(buf.getvalue())


def feeds(model, batch, time, seed):
    rng = np.random.default_rng(seed)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    shape = (time, batch) if dims[0].dim_param == "time" else (batch, time)
    return {"x": rng.integers(0, V, shape) if len(dims) == 2 else
            rng.standard_normal((*shape, F)).astype(np.float32)}


CASES = {
    "bigru-mean": ("GRU",),
    "bilstm2-max": ("LSTM", 2, True, "max"),
    "gru-mean-forward": ("GRU", 1, False, "mean"),
    "birnn2-mean-tokens": ("RNN", 2, True, "mean", True),
    "bilstm-mean-time-major": ("LSTM", 1, True, "mean", False, False),
    "bigru2-max-tokens-time-major": ("GRU", 2, True, "max", True, False),
}


@pytest.mark.parametrize("case", CASES)
def test_matches_onnxruntime_and_the_twins(case):
    model = export(*CASES[case])
    ort = OrtEngine(model)
    for quantize, level in ((None, FP32), ("int8", INT8)):
        fast = FastPooledEngine(model, quantize)
        twin = FastPooledEngine(model, quantize, twin=True)
        assert type(make_engine("fast-int8" if quantize else "fast", model)) is FastPooledEngine
        for k, (B, T) in enumerate([(1, 1), (1, 9), (3, 4)]):
            f = feeds(model, B, T, k)
            want, got = ort.run(f)["y"], fast.run(f)["y"]
            assert got.shape == want.shape == (B, C)
            assert_close(f"{case} {quantize} B={B} T={T}", got, want, level)
            assert_close(f"{case} {quantize} twin", got, twin.run(f)["y"], KERNEL)


def test_the_chain_engine_leaves_them_and_the_one_pass_takes_their_common_case():
    from rnnedge.runtime.graph_model import GraphModel
    from rnnedge.runtime.model import signature

    model = export("GRU")
    with pytest.raises(UnsupportedError, match="FastPooledEngine"):
        FastChainEngine(model)
    with pytest.raises(UnsupportedError, match="FastChainEngine"):
        FastPooledEngine(_forward_chain())
    fast, slow = (GraphModel(FastPooledEngine(model), signature(model)) for _ in "ab")
    slow.run_checked = None
    f = feeds(model, 2, 6, 1)
    assert fast.engine.run_checked(f) is not None
    np.testing.assert_array_equal(fast.run(f)["y"], slow.run(f)["y"])
    bad = {"x": np.full((1, 2, F), np.nan, np.float32)}
    with pytest.raises(InputError, match="x holds NaN"):
        fast.run(bad)
    with pytest.raises(InputError, match=r"expected frames \(batch, time >= 1, 5\)"):
        fast.engine.run({"x": np.zeros((1, 2, F + 1), np.float32)})


def _forward_chain():
    """A forward GRU whose linear head reads every step: the chain engine's, not this one's."""
    class Every(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.fc = nn.GRU(F, H, batch_first=True), nn.Linear(H, C)

        def forward(self, x):
            return self.fc(self.rnn(x)[0])
    buf = io.BytesIO()
    torch.onnx.export(Every().eval(), (torch.randn(2, 3, F),), buf, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "batch", 1: "time"}},
                      opset_version=17, dynamo=False)
    return onnx.load_from_string(buf.getvalue())


@pytest.mark.parametrize("case, sizes", [
    ("bilstm2-max", [(4 * H, F + H)] * 2 + [(4 * H, 2 * H + H)] * 2),
    ("birnn2-mean-tokens", [(H, H)] * 2 + [(H, 2 * H + H)] * 2)])
def test_the_bench_floor_reads_each_direction(tmp_path, case, sizes):
    from rnnedge.deploy.bench_generic import seq_floor_matrices

    onnx.save(export(*CASES[case]), str(tmp_path / "m.onnx"))
    mats, fc, sequence, every, time_axis = seq_floor_matrices(tmp_path / "m.onnx")
    assert [m.shape for m in mats] == sizes and fc.shape == (C, 2 * H)
    assert (sequence, every, time_axis) == ("x", False, 1)


def test_a_pooled_model_with_state_inputs_or_outputs_is_not_taken():
    """Its states would be read as zeros and its final states returned as logits: refused,
    and the fast engine falls back to the interpreter, which runs it as the graph says."""
    class WithState(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.fc = nn.GRU(F, H, batch_first=True), nn.Linear(H, C)

        def forward(self, x, h):
            y, hn = self.rnn(x, h)
            return self.fc(y.mean(1)), hn
    buf = io.BytesIO()
    torch.onnx.export(WithState().eval(), (torch.randn(2, 3, F), torch.randn(1, 2, H)), buf,
                      input_names=["x", "h"], output_names=["y", "h_new"],
                      dynamic_axes={"x": {0: "batch", 1: "time"}, "h": {1: "batch"}},
                      opset_version=17, dynamo=False)
    model = onnx.load_from_string(buf.getvalue())
    with pytest.raises(UnsupportedError, match="not state inputs or outputs"):
        FastPooledEngine(model)
    engine = make_engine("fast", model)
    assert not isinstance(engine, FastPooledEngine)
    f = {"x": np.random.default_rng(0).standard_normal((1, 4, F)).astype(np.float32),
         "h": np.full((1, 1, H), 0.5, np.float32)}
    want = OrtEngine(model).run(f)
    for name, value in engine.run(f).items():
        assert_close(f"fallback {name}", value, want[name], FP32)
