"""The torch-free runtime: streaming, sampling, both engines, typed errors."""

import subprocess
import sys

import numpy as np
import onnx
import pytest

import rnnedge.runtime as rt
from rnnedge.runtime.errors import InputError, ModelFileError
from rnnedge.runtime.tolerances import FP32, assert_close

PROMPT = "To be, or not to be, that is the Question:\nWhether 'tis Nobler in the minde to suffer"


@pytest.mark.parametrize("engine", ["ort", "numba"])
def test_streaming_one_character_at_a_time_equals_one_call(charlm, engine):
    model = rt.load(charlm[1], engine=engine)
    whole, state = model.run(model.encode(PROMPT)[None, :])
    stream = model.stream()
    steps = np.concatenate([stream.step(ch) for ch in PROMPT])
    assert_close("logits", steps, whole[0], FP32)
    for name in ("h0", "c0"):
        assert_close(name, stream.state[name], state[name], FP32)


def test_engines_agree_on_real_text(charlm):
    ids = rt.load(charlm[1]).encode(PROMPT)[None, :]
    ort_logits, ort_state = rt.load(charlm[1], engine="ort").run(ids)
    nb_logits, nb_state = rt.load(charlm[1], engine="numba").run(ids)
    assert_close("logits", nb_logits, ort_logits, FP32)
    assert_close("c0", nb_state["c0"], ort_state["c0"], FP32)


def test_streams_are_independent_and_reset_restarts(charlm):
    model = rt.load(charlm[1])
    a, b = model.stream(), model.stream()
    first = a.step("Ham")
    b.step("Ophelia")
    np.testing.assert_array_equal(a.step("let")[-1], model.run(model.encode("Hamlet")[None])[0][0, -1])
    a.reset()
    np.testing.assert_array_equal(a.step("Ham"), first)


def test_generate_is_reproducible_and_follows_top_k(charlm):
    model = rt.load(charlm[1])
    text = model.generate("The ", 80, top_k=5, seed=7)
    assert text.startswith("The ") and len(text) == 84
    assert model.generate("The ", 80, top_k=5, seed=7) == text
    assert model.generate("The ", 80, top_k=5, seed=8) != text
    greedy = model.generate("The ", 20, top_k=1, seed=1)
    assert greedy == model.generate("The ", 20, top_k=1, seed=2)
    logits = model.stream().step("The ")[-1]
    assert greedy[4] == model.vocab[int(np.argmax(logits))]


def test_sampling_never_leaves_the_top_k():
    from rnnedge.runtime.charlm import sample

    rng = np.random.default_rng(0)
    logits = np.array([0.0, 5.0, 1.0, 4.0, 3.0])
    draws = {sample(logits, rng, temperature=3.0, top_k=2) for _ in range(200)}
    assert draws == {1, 3}


@pytest.mark.parametrize("bad, error, message", [
    ("", InputError, "prompt is empty"),
    ("Hamlet§µ", InputError, "'§', 'µ'"),
])
def test_bad_prompts_are_typed_errors(charlm, bad, error, message):
    with pytest.raises(error, match=message):
        rt.load(charlm[1]).generate(bad, 10)


def test_wrong_state_shape_is_a_typed_error(charlm):
    model = rt.load(charlm[1])
    with pytest.raises(InputError, match=r"h0 has shape \(2, 1, 31\), expected \(2, 1, 32\)"):
        model.run(np.zeros((1, 3), np.int64), {"h0": np.zeros((2, 1, 31)), "c0": np.zeros((2, 1, 32))})


def test_bad_model_files_are_typed_errors(tmp_path, charlm):
    with pytest.raises(ModelFileError, match="does not exist"):
        rt.load(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\x00\x01 not protobuf at all" * 10)
    with pytest.raises(ModelFileError, match="not an ONNX model"):
        rt.load(tmp_path / "junk.onnx")
    (tmp_path / "folder.onnx").mkdir()
    with pytest.raises(ModelFileError, match="is a directory, not a file"):
        rt.load(tmp_path / "folder.onnx")


def test_a_file_without_rnnedge_metadata_loads_as_a_generic_model(tmp_path, charlm):
    bare = onnx.load(str(charlm[1]))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    model = rt.load(tmp_path / "bare.onnx")
    assert model.kind == "user" and model.states_source == "inferred"
    assert model.states == {"h0": "hn", "c0": "cn"}
    ids = rt.load(charlm[1]).encode(PROMPT)[None, :]
    state = rt.load(charlm[1]).zero_state(1)
    out = model.run({"tokens": ids, **state})
    assert_close("logits", out["logits"], rt.load(charlm[1]).run(ids)[0], FP32)
    done = subprocess.run([sys.executable, "-m", "rnnedge.cli", "generate", str(tmp_path / "bare.onnx")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "is a user model (your own module's export, or a file without rnnedge metadata); this command needs a charlm model" in done.stderr


@pytest.mark.parametrize("args, message", [
    (["generate", "{model}", "--prompt", "§"], "characters not in the model's vocabulary: '§'"),
    (["generate", "{model}", "--prompt", ""], "prompt is empty"),
    (["info", "{missing}"], "does not exist"),
])
def test_cli_errors_are_one_line_and_exit_2(charlm, tmp_path, args, message):
    args = [a.format(model=charlm[1], missing=tmp_path / "none.onnx") for a in args]
    done = subprocess.run([sys.executable, "-m", "rnnedge.cli", *args],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr
    assert "Traceback" not in done.stderr
