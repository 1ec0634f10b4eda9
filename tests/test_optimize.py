"""``rnnedge optimize``: int8, fp16, numba int8 and ORT-format variants, their metadata, gates
and writes; ``rnnedge info`` on an ORT-format file."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from onnx import TensorProto, numpy_helper

import rnnedge.runtime as rt
from rnnedge.deploy.gates import Gates, bits_per_char
from rnnedge.deploy.optimize import optimize, summary
from rnnedge.runtime.files import sha256
from rnnedge.runtime.errors import GateError, InputError, ModelFileError, UnsupportedError
from rnnedge.runtime.files import read_onnx
from rnnedge.runtime.metadata import read_metadata
from rnnedge.runtime.model import describe
from rnnedge.runtime.tolerances import FP16, FP32, INT8, assert_close

CHARS = 4000  # Hamlet validation characters the charlm gate reads here
REVIEWS = 200  # IMDb test reviews the sentiment gate reads here


def props(path):
    return read_metadata(read_onnx(path), path).props


def charlm_feeds(model, seed=0):
    """(tokens, state) pairs of random ids and states over several (batch, time) shapes."""
    rng = np.random.default_rng(seed)
    for batch, time in [(1, 1), (3, 17), (2, 64)]:
        tokens = rng.integers(0, len(model.vocab), (batch, time))
        state = {k: rng.normal(0, 0.5, v.shape).astype(np.float32)
                 for k, v in model.zero_state(batch).items()}
        yield tokens, state


def assert_same_charlm(actual, expected, tol):
    for tokens, state in charlm_feeds(expected):
        logits, next_state = actual.run(tokens, state)
        want_logits, want_state = expected.run(tokens, state)
        assert_close(f"logits B,T={tokens.shape}", logits, want_logits, tol)
        for name in want_state:
            assert_close(f"{name} B,T={tokens.shape}", next_state[name], want_state[name], tol)


def assert_kept_and_extended(out, src, variant, gate):
    kept, added = props(src), props(out)
    assert {k: added[k] for k in kept} == kept
    assert added["rnnedge.variant"] == variant
    assert added["rnnedge.variant_of"] == sha256(src)
    assert json.loads(added["rnnedge.variant_gate"]) == gate


def int8_weight_peak(path):
    """max |w| over the file's int8 weight matrices (what onnxruntime multiplies by u8 inputs)."""
    return max(int(np.abs(numpy_helper.to_array(t).astype(np.int32)).max())
               for t in read_onnx(path).graph.initializer
               if t.data_type == TensorProto.INT8 and sum(d > 1 for d in t.dims) >= 2)


def test_int8_charlm_quantizes_lstm_and_passes_its_gate(charlm, data_dir, tmp_path):
    src, out = charlm[1], tmp_path / "int8.onnx"
    report = optimize(src, out, int8=True, data_dir=data_dir, limit=CHARS)
    after = report["op_types"]["after"]
    assert after["DynamicQuantizeLSTM"] == 2 and "LSTM" not in after and "MatMulInteger" in after
    assert report["fp32_weight_nodes"] == []
    assert out.stat().st_size < src.stat().st_size
    # onnxruntime on x86 without VNNI adds u8 x s8 product pairs in int16: 255 * 64 * 2 fits
    assert int8_weight_peak(out) <= 64
    gate = report["gate"]
    assert gate["chars"] == CHARS and gate["passed"] and gate["failures"] == []
    assert gate["bpc"] <= gate["bpc_fp32"] * (1 + Gates().max_bpc_rise)
    assert gate["bpc_rise"] == pytest.approx(gate["bpc"] / gate["bpc_fp32"] - 1)
    assert 0.9 <= gate["top1_agreement"] <= 1
    assert "DynamicQuantizeLSTM x2" in summary(report) and "gate passed" in summary(report)
    assert_kept_and_extended(out, src, "int8", gate)
    model = rt.load(out, engine="ort")
    assert_same_charlm(model, rt.load(src), INT8)
    assert model.generate("The ", length=20, seed=0).startswith("The ")
    with pytest.raises(UnsupportedError, match="DynamicQuantizeLSTM"):
        rt.load(out, engine="numba")
    with pytest.raises(InputError, match="already a variant"):
        optimize(out, tmp_path / "again.onnx", fp16=True, data_dir=data_dir, limit=CHARS)


def test_int8_gru_keeps_gru_in_fp32_and_says_so(charlm_gru, data_dir, tmp_path):
    src, out = charlm_gru[1], tmp_path / "int8.onnx"
    report = optimize(src, out, int8=True, force=True, data_dir=data_dir, limit=CHARS)
    assert report["op_types"]["after"]["GRU"] == report["op_types"]["before"]["GRU"] == 2
    assert "MatMulInteger" in report["op_types"]["after"]
    assert [n["op_type"] for n in report["fp32_weight_nodes"]] == ["GRU", "GRU"]
    names = [n["name"] for n in report["fp32_weight_nodes"]]
    assert all(name in summary(report) for name in names)
    assert "no recurrent node quantized" in summary(report)
    assert rt.load(out).generate("The ", length=5, seed=0).startswith("The ")


def test_int8_sentiment_reports_accuracy_and_agreement(sentiment, data_dir, tmp_path):
    src, out = sentiment[1], tmp_path / "int8.onnx"
    report = optimize(src, out, int8=True, force=True, data_dir=data_dir, limit=REVIEWS)
    assert report["op_types"]["after"]["DynamicQuantizeLSTM"] == 2
    gate = report["gate"]
    assert gate["reviews"] == REVIEWS
    assert gate["accuracy_drop"] == pytest.approx(gate["accuracy_fp32"] - gate["accuracy"])
    assert gate["passed"] == (gate["accuracy_drop"] <= 0.005 + 1e-12 and gate["agreement"] >= 0.99)
    assert f"gate on {REVIEWS} IMDb test reviews" in summary(report)
    assert_kept_and_extended(out, src, "int8", gate)
    probs = rt.load(out).classify(["A wonderful, moving film.", "Dull and far too long."])
    assert probs.shape == (2,) and np.all((probs >= 0) & (probs <= 1))


def test_fp16_halves_the_weights_and_matches_fp32(charlm, data_dir, tmp_path):
    src, out = charlm[1], tmp_path / "fp16.onnx"
    report = optimize(src, out, fp16=True, data_dir=data_dir, limit=CHARS)
    initializers = [numpy_helper.to_array(t) for t in read_onnx(src).graph.initializer]
    floats = sum(a.nbytes for a in initializers if a.dtype == np.float32)
    others = sum(a.nbytes for a in initializers if a.dtype != np.float32)
    assert report["initializer_bytes"] == {"before": floats + others, "after": floats // 2 + others}
    stored = {t.data_type for t in read_onnx(out).graph.initializer}
    assert TensorProto.FLOAT not in stored and TensorProto.FLOAT16 in stored
    assert report["gate"]["passed"]
    assert_kept_and_extended(out, src, "fp16", report["gate"])
    assert_same_charlm(rt.load(out), rt.load(src), FP16)


def test_failed_gate_writes_nothing_and_says_by_how_much(charlm, data_dir, tmp_path):
    out = tmp_path / "int8.onnx"
    impossible = Gates(max_bpc_rise=-0.5)
    with pytest.raises(GateError, match=r"rose -?\d+\.\d+% \(.* -> .*\), more than the -50\.00%"):
        optimize(charlm[1], out, int8=True, data_dir=data_dir, limit=CHARS, gates=impossible)
    assert list(tmp_path.iterdir()) == []
    report = optimize(charlm[1], out, int8=True, force=True, data_dir=data_dir, limit=CHARS,
                      gates=impossible)
    assert not report["gate"]["passed"] and len(report["gate"]["failures"]) == 1
    assert "GATE FAILED, written because of --force" in summary(report)
    assert json.loads(props(out)["rnnedge.variant_gate"])["passed"] is False


@pytest.mark.parametrize("int8", [False, True], ids=["fp32", "int8"])
def test_ort_format_loads_through_the_runtime_and_matches_onnx(charlm, data_dir, tmp_path, int8):
    onnx_path = charlm[1]
    if int8:
        onnx_path = tmp_path / "int8.onnx"
        optimize(charlm[1], onnx_path, int8=True, force=True, data_dir=data_dir, limit=CHARS)
    out = tmp_path / "model.ort"
    report = optimize(charlm[1], out, int8=int8, ort_format=True, force=True, data_dir=data_dir,
                      limit=CHARS)
    model = rt.load(out, engine="ort")
    assert model.meta.props["rnnedge.variant"] == ("int8+ort" if int8 else "ort")
    assert json.loads(model.meta.props["rnnedge.variant_gate"]) == report["gate"]
    assert_same_charlm(model, rt.load(onnx_path), FP32)
    assert model.generate("The ", length=20, seed=1) == rt.load(onnx_path).generate(
        "The ", length=20, seed=1)
    with pytest.raises(UnsupportedError, match="ORT format"):
        rt.load(out, engine="numba")
    with pytest.raises(ModelFileError, match="ORT format"):
        optimize(out, tmp_path / "again.onnx", fp16=True)


def hamlet_val(data_dir):
    from rnnedge.data.hamlet import CharCorpus, load_text

    return CharCorpus.from_text(load_text(None, data_dir)).val


def test_numba_int8_gates_the_fast_int8_engine_on_the_fp32_graph(charlm, data_dir, tmp_path):
    src, out = charlm[1], tmp_path / "numba-int8.onnx"
    report = optimize(src, out, numba_int8=True, data_dir=data_dir)  # the whole text: ~1 s
    gate, val = report["gate"], hamlet_val(data_dir)
    assert gate["chars"] == len(val) and gate["passed"] and gate["failures"] == []
    assert gate["engines"] == {"reference": "ort", "candidate": "fast-int8"}
    # the gate's numbers are those of the engines it names, recomputed here
    assert gate["bpc_fp32"] == bits_per_char(rt.load(src, engine="ort"), val)[0]
    bpc_int8, _ = bits_per_char(rt.load(src, engine="fast-int8"), val)
    assert gate["bpc"] == bpc_int8 != gate["bpc_fp32"]
    assert gate["bpc"] <= gate["bpc_fp32"] * (1 + Gates().max_bpc_rise)
    assert_kept_and_extended(out, src, "numba-int8", gate)
    settings = json.loads(props(out)["rnnedge.variant_settings"])
    assert settings["engine"] == "fast-int8" and settings["accumulation"].startswith("int32")
    assert "one float32 scale per row" in settings["weights"]
    assert read_onnx(out).graph == read_onnx(src).graph  # fp32 weights, nothing else changed
    assert report["out_bytes"] >= report["source_bytes"]
    assert report["initializer_bytes"]["after"] == report["initializer_bytes"]["before"]
    text = summary(report)
    assert "--engine fast-int8" in text and "other engine runs it in fp32" in text
    assert "only in memory" in text and "gate passed" in text
    assert rt.load(out, engine="fast-int8").generate("The ", 20, seed=0).startswith("The ")
    with pytest.raises(InputError, match="already a variant"):
        optimize(out, tmp_path / "again.onnx", numba_int8=True, data_dir=data_dir)


def test_numba_int8_failed_gate_writes_nothing_and_says_by_how_much(charlm, data_dir, tmp_path):
    out, val = tmp_path / "numba-int8.onnx", hamlet_val(data_dir)[:CHARS]
    bpc_fp32, _ = bits_per_char(rt.load(charlm[1], engine="ort"), val)
    bpc, _ = bits_per_char(rt.load(charlm[1], engine="fast-int8"), val)
    tiny = Gates(max_bpc_rise=bpc / bpc_fp32 - 1 - 1e-6)  # just below the real rise
    rise = f"{bpc / bpc_fp32 - 1:.2%} ({bpc_fp32:.4f} -> {bpc:.4f})"
    with pytest.raises(GateError, match=re.escape(f"rose {rise}, more than the")):
        optimize(charlm[1], out, numba_int8=True, data_dir=data_dir, limit=CHARS, gates=tiny)
    assert list(tmp_path.iterdir()) == []


def test_numba_int8_passes_its_gate_on_a_sentiment_model(sentiment, data_dir, tmp_path):
    out = tmp_path / "x.onnx"
    report = optimize(sentiment[1], out, numba_int8=True, data_dir=data_dir, limit=REVIEWS)
    gate = report["gate"]
    assert gate["passed"] and gate["reviews"] == REVIEWS and gate["agreement"] >= 0.99
    assert gate["engines"] == {"reference": "ort", "candidate": "fast-int8"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.onnx"]  # no temp file left
    assert "IMDb test reviews (fp32 ort -> fast-int8)" in summary(report)


def test_info_describes_an_ort_format_file_from_its_session(charlm, data_dir, tmp_path):
    out = tmp_path / "model.ort"
    optimize(charlm[1], out, ort_format=True, data_dir=data_dir, limit=CHARS)
    ort_info, onnx_info = describe(out), describe(charlm[1])
    assert (ort_info["file_format"], onnx_info["file_format"]) == ("ort", "onnx")
    assert ort_info["opset"] is None and onnx_info["opset"]["ai.onnx"] >= 1
    assert ort_info["variant"] == "ort" and onnx_info["variant"] is None
    assert ort_info["signature"]["inputs"] == onnx_info["signature"]["inputs"]
    layers = onnx_info["config"]["num_layers"]  # the offline optimization inferred this axis
    assert ort_info["signature"]["outputs"] == [
        {**o, "shape": [layers if d == "layers" else d for d in o["shape"]]}
        for o in onnx_info["signature"]["outputs"]]
    assert ort_info["signature"]["inputs"][0] == {"name": "tokens", "type": "int64",
                                                  "shape": ["batch", "time"]}
    assert ort_info["recurrent_nodes"] is None  # an ORT-format session does not show its nodes
    assert [n["cell"] for n in onnx_info["recurrent_nodes"]] == ["LSTM", "LSTM"]
    same = ("kind", "format", "config", "metrics", "vocab_size", "checkpoint_sha256", "versions",
            "rnnedge_metadata")
    assert {k: ort_info[k] for k in same} == {k: onnx_info[k] for k in same}
    assert ort_info["file_bytes"] == out.stat().st_size
    done = subprocess.run([sys.executable, "-m", "rnnedge.cli", "info", str(out), "--json"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"command": "info", **ort_info}


def test_requests_that_cannot_work_are_input_errors(charlm, tmp_path):
    src = charlm[1]
    cases = [dict(), dict(int8=True, fp16=True),
             dict(numba_int8=True, int8=True), dict(numba_int8=True, fp16=True),
             dict(numba_int8=True, ort_format=True, out=tmp_path / "x.ort"),
             dict(fp16=True, ort_format=True, out=tmp_path / "x.ort"),
             dict(int8=True, out=tmp_path / "x.ort"),
             dict(ort_format=True, out=tmp_path / "x.onnx"),
             dict(int8=True, out=src), dict(int8=True, limit=0)]
    for case in cases:
        out = case.pop("out", tmp_path / "x.onnx")
        with pytest.raises(InputError):
            optimize(src, out, **case)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flag", ["--numba-int8", "--int8"])
def test_a_plain_torch_export_is_optimized_given_real_inputs(tmp_path, flag):
    """A file without rnnedge metadata (plain torch.onnx.export) gates on ``--inputs`` and
    its variant is a file of kind user that every command reads back."""
    torch = pytest.importorskip("torch")

    class Tagger(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gru, self.fc = torch.nn.GRU(8, 16, batch_first=True), torch.nn.Linear(16, 3)

        def forward(self, x):
            return self.fc(self.gru(x)[0])

    torch.manual_seed(0)
    source, out = tmp_path / "plain.onnx", tmp_path / "plain.variant.onnx"
    torch.onnx.export(Tagger().eval(), (torch.randn(1, 5, 8),), str(source), input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "batch", 1: "time"},
                                                        "y": {0: "batch", 1: "time"}},
                      dynamo=False, opset_version=17)
    np.savez(tmp_path / "real.npz", x=np.random.default_rng(0).normal(size=(4, 20, 8)).astype(np.float32))
    done = subprocess.run([sys.executable, "-m", "rnnedge.cli", "optimize", str(source), flag,
                           "--out", str(out), "--inputs", str(tmp_path / "real.npz")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "gate passed" in done.stdout
    meta = read_metadata(read_onnx(out))
    assert meta.kind == "user" and meta.variant == flag.removeprefix("--")
