"""Users' own models after export: load on every engine, stream, verify, bench, int8 with its gate.

The corpus is tests/user_models.py, exported once per session by the ``user_corpus``
fixture (conftest.py). Every check compares engines with each other or with what PyTorch
computed (the golden bundle), at the FP32 level unless the engine is int8.
"""

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest

import rnnedge.runtime as rt
from rnnedge.deploy.verify import verify
from rnnedge.runtime.errors import InputError
from rnnedge.runtime.golden import from_props
from rnnedge.runtime.metadata import props_of
from rnnedge.runtime.tolerances import FP32, compare
from user_models import PASSING, tamper_gru_lbr0

CLI = [sys.executable, "-m", "rnnedge.cli"]
NAMES = sorted(PASSING)


def golden(path):
    return from_props(props_of(onnx.load(str(path))))


@pytest.mark.parametrize("name", NAMES)
def test_every_engine_reproduces_pytorch_on_the_golden_inputs(user_corpus, name):
    path = user_corpus[name][1]
    for engine in ("ort", "numba", "fast"):
        model = rt.load(path, engine=engine)
        assert model.kind == "user"
        for case in golden(path):
            out = model.run(case.inputs)
            assert sorted(out) == sorted(case.outputs)
            for key, expected in case.outputs.items():
                diff = compare(f"{name} {engine} {key}", out[key], expected, FP32)
                assert diff.ok, str(diff)


@pytest.mark.parametrize("name", NAMES)
def test_verify_passes_every_check_of_an_honest_export(user_corpus, name):
    notes = []
    diffs = verify(user_corpus[name][1], notes=notes)
    assert diffs and all(d.ok for d in diffs), [str(d) for d in diffs if not d.ok]
    assert any("vs golden (PyTorch)" in d.name for d in diffs)


def test_streaming_frame_by_frame_equals_the_whole_sequence(user_corpus):
    path = user_corpus["streaming_kws_gru"][1]
    for engine in ("ort", "numba", "fast"):
        model = rt.load(path, engine=engine)
        assert model.states == {"h": "h_new"} and model.states_source == "metadata"
        rng = np.random.default_rng(3)
        mels = rng.standard_normal((1, 37, model.inputs["mels"]["shape"][2])).astype(np.float32)
        h0 = (0.5 * rng.standard_normal(model.zero_states()["h"].shape)).astype(np.float32)
        whole = model.run({"mels": mels, "h": h0})
        stream = model.stream()
        stream.reset({"h": h0})
        steps = [stream.step({"mels": mels[:, t:t + 1]}) for t in range(37)]
        scores = np.concatenate([s["scores"] for s in steps], axis=1)
        assert compare("scores", scores, whole["scores"], FP32).ok
        assert compare("h", stream.states["h"], whole["h_new"], FP32).ok


def test_state_pairs_are_inferred_when_the_file_has_no_rnnedge_metadata(user_corpus, tmp_path):
    proto = onnx.load(str(user_corpus["streaming_kws_gru"][1]))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    model = rt.load(bare)
    assert model.states == {"h": "h_new"} and model.states_source == "inferred"
    info = json.loads(subprocess.run([*CLI, "info", str(bare), "--json"], capture_output=True,
                                     text=True, check=True).stdout)
    assert info["rnnedge_metadata"] is False and info["states"] == {"h": "h_new"}
    assert [n["cell"] for n in info["recurrent_nodes"]] == ["GRU"]


def test_a_gru_tampered_to_linear_before_reset_0_fails_verify(user_corpus, tmp_path):
    proto = onnx.load(str(user_corpus["streaming_kws_gru"][1]))
    tamper_gru_lbr0(proto)
    tampered = tmp_path / "tampered.onnx"
    onnx.save(proto, str(tampered))
    done = subprocess.run([*CLI, "verify", str(tampered)], capture_output=True, text=True)
    assert done.returncode == 1
    assert "vs golden (PyTorch)" in done.stdout and "FAIL" in done.stdout
    # onnxruntime and the reference still agree with each other: only PyTorch's outputs catch it
    assert "numba vs ort: " in done.stdout and "numba vs ort" not in \
        "".join(line for line in done.stdout.splitlines() if line.endswith("FAIL") and "golden" not in line)


def test_external_weights_load_from_any_working_directory(user_corpus, tmp_path):
    proto = onnx.load(str(user_corpus["lstm_forecaster"][1]))
    folder = tmp_path / "model"
    folder.mkdir()
    onnx.save(proto, str(folder / "m.onnx"), save_as_external_data=True, location="m.onnx.data",
              size_threshold=0)
    case = golden(user_corpus["lstm_forecaster"][1])[0]
    for engine in ("ort", "numba"):
        out = rt.load(folder / "m.onnx", engine=engine).run(case.inputs)
        assert compare("forecast", out["forecast"], case.outputs["forecast"], FP32).ok


def test_bad_feeds_are_typed_errors(user_corpus):
    model = rt.load(user_corpus["streaming_kws_gru"][1])
    case = golden(user_corpus["streaming_kws_gru"][1])[0]
    mels = case.inputs["mels"]
    with pytest.raises(InputError, match="lack h"):
        model.run({"mels": mels})
    with pytest.raises(InputError, match="unknown extra"):
        model.run({**case.inputs, "extra": np.zeros(1)})
    with pytest.raises(InputError, match="NaN"):
        model.run({**case.inputs, "mels": np.full_like(mels, np.nan)})
    with pytest.raises(InputError, match="mels must be float32, not int64"):
        model.run({**case.inputs, "mels": mels.astype(np.int64)})
    with pytest.raises(InputError, match="on axis 2"):
        model.run({**case.inputs, "mels": mels[..., :3]})
    with pytest.raises(InputError, match="carried by the stream"):
        model.stream().step(case.inputs)


def test_bench_times_every_engine_after_parity(user_corpus):
    done = subprocess.run([*CLI, "bench", str(user_corpus["streaming_kws_gru"][1]), "--steps", "60",
                           "--warmup", "10", "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["workload"] == "streaming"
    assert set(report["engines"]) == {"ort", "ort-direct", "numba", "fast", "fast-int8", "floor"}
    assert report["engines"]["ort"]["vs_ort"] == 1.0 and report["skipped"] == {}
    whole = json.loads(subprocess.run([*CLI, "bench", str(user_corpus["attention_lstm"][1]), "--steps",
                                       "20", "--warmup", "5", "--json"], capture_output=True,
                                      text=True, check=True).stdout)
    assert whole["workload"] == "whole"


def test_numba_int8_gives_a_gru_model_int8_behind_its_gate(user_corpus, tmp_path):
    from rnnedge.deploy.optimize import optimize

    out = tmp_path / "kws.int8.onnx"
    report = optimize(user_corpus["streaming_kws_gru"][1], out, numba_int8=True)
    gate = report["gate"]
    assert gate["passed"] and gate["engines"] == {"reference": "ort", "candidate": "fast-int8"}
    assert gate["outputs"]["scores"]["argmax_agreement"] >= 0.98
    assert "argmax_agreement" not in gate["outputs"]["h_new"]  # a state, not class scores
    assert gate["outputs"]["h_new"]["range_error"] <= 0.05
    assert json.loads(props_of(onnx.load(str(out)))["rnnedge.variant_gate"])["passed"]


def test_a_failed_generic_gate_writes_nothing_and_force_names_the_fp32_nodes(user_corpus, tmp_path):
    from rnnedge.deploy.gate_generic import GenericGates
    from rnnedge.deploy.optimize import optimize
    from rnnedge.runtime.errors import GateError

    src, out = user_corpus["streaming_kws_gru"][1], tmp_path / "kws.ort-int8.onnx"
    strict = GenericGates(max_range_error=1e-9, min_argmax_agreement=1.0)
    with pytest.raises(GateError, match="of its range"):
        optimize(src, out, int8=True, gates=strict)
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))
    report = optimize(src, out, int8=True, force=True, gates=strict)
    assert not report["gate"]["passed"] and out.exists()
    assert [n["op_type"] for n in report["fp32_weight_nodes"]] == ["GRU"]


def test_optimize_gates_on_the_users_own_inputs(user_corpus, tmp_path):
    from rnnedge.deploy.optimize import optimize

    src = user_corpus["streaming_kws_gru"][1]
    case = golden(src)[0]
    npz = tmp_path / "real.npz"
    np.savez(npz, **{f"0/{k}": v for k, v in case.inputs.items()})
    report = optimize(src, tmp_path / "v.onnx", numba_int8=True, inputs=npz)
    assert report["gate"]["cases"] == 1 and report["gate_inputs"] == str(npz)
    np.savez(npz, mels=case.inputs["mels"])
    with pytest.raises(InputError, match="holds mels; the model takes mels, h"):
        optimize(src, tmp_path / "w.onnx", numba_int8=True, inputs=npz)


@pytest.mark.parametrize("name", NAMES)
def test_every_corpus_model_benches_and_gets_int8_through_its_gate(user_corpus, name, tmp_path):
    from rnnedge.deploy.bench_generic import bench_generic
    from rnnedge.deploy.optimize import optimize

    path = user_corpus[name][1]
    report = bench_generic(path, steps=20, warmup=2, rounds=2)
    assert {"ort", "numba", "fast"} <= set(report["engines"]) | set(report["skipped"])
    assert report["workload"] == ("streaming" if rt.load(path).states else "whole")
    gate = optimize(path, tmp_path / "int8.onnx", numba_int8=True)["gate"]
    assert gate["passed"] and gate["cases"] == len(golden(path)), gate["failures"]
    assert (tmp_path / "int8.onnx").exists()
