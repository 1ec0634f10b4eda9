"""The runtime on the committed golden models: neither torch nor data needed.

``tests/golden`` holds two tiny exported files (rnnedge's character LSTM and a user-style
streaming GRU) and ``io.npz``, the inputs and PyTorch's outputs for them, all written by
``tests/golden/make_golden.py``. Every engine must reproduce the outputs within its
precision's named tolerance, streaming must equal the whole sequence, and the on-device
commands must run where ``import torch`` fails. Only the last test, which regenerates the
files, needs torch.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rnnedge.runtime as rt
from rnnedge.deploy.makers import tolerance
from rnnedge.runtime.engines import ENGINES
from rnnedge.runtime.tolerances import FP32, assert_close

GOLDEN = Path(__file__).resolve().parent / "golden"
FILES = {"charlm": GOLDEN / "tiny_charlm.onnx", "kws": GOLDEN / "tiny_kws.onnx"}


def cases(model, bundle=GOLDEN / "io.npz"):
    """[(inputs, outputs)] of ``model`` ("charlm" or "kws") in the bundle, by case number."""
    found = {}
    with np.load(bundle) as npz:
        for key in npz.files:
            name, case, side, array = key.split("/")
            if name == model:
                found.setdefault(int(case), ({}, {}))[side == "out"][array] = npz[key]
    return [found[i] for i in sorted(found)]


def run(model, name, inputs):
    """All outputs of one call, through the task's own API for the character model."""
    if name == "kws":
        return model.run(inputs)
    logits, state = model.run(inputs["tokens"], {k: v for k, v in inputs.items() if k != "tokens"})
    return {"logits": logits, "hn": state["h0"], "cn": state["c0"]}


def test_the_golden_files_are_small():
    sizes = {p.name: p.stat().st_size for p in GOLDEN.iterdir() if p.suffix in (".onnx", ".npz")}
    assert set(sizes) == {"tiny_charlm.onnx", "tiny_kws.onnx", "io.npz", "format1_charlm.onnx"}
    assert max(sizes.values()) < 50_000, sizes


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", FILES)
def test_every_engine_reproduces_the_bundle(name, engine):
    model = rt.load(FILES[name], engine=engine)
    tol = tolerance(engine)
    for i, (inputs, expected) in enumerate(cases(name)):
        actual = run(model, name, inputs)
        assert sorted(actual) == sorted(expected)
        for output, want in expected.items():
            assert_close(f"{name} case {i} {output} on {engine}", actual[output], want, tol)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_format_1_file_still_loads_and_answers_as_the_bundle_says(engine):
    """``format1_charlm.onnx`` is ``tiny_charlm.onnx`` (same weights) as rnnedge wrote it before
    the one schema: ``rnnedge.task`` and no states, signature or golden keys."""
    model = rt.load(GOLDEN / "format1_charlm.onnx", engine=engine)
    assert model.kind == "charlm" and model.core.states == {"h0": "hn", "c0": "cn"}
    for i, (inputs, expected) in enumerate(cases("charlm")):
        actual = run(model, "charlm", inputs)
        for output, want in expected.items():
            assert_close(f"format 1 case {i} {output} on {engine}", actual[output], want,
                         tolerance(engine))


@pytest.mark.parametrize("name", FILES)
def test_every_file_streams_through_its_graph_model_from_zero_states(name):
    """``GraphModel.stream()`` (no task layer) on every file with state pairs, the char model
    included: its layer axis is fixed in the file, so zero states are made from the graph."""
    core = rt.load(FILES[name], engine="fast").core
    stream = core.stream()
    inputs = cases(name)[-1][0]
    sequence = next(k for k in inputs if k not in core.states)
    frame = inputs[sequence][:1, :1]
    first = stream.step({sequence: frame})
    zeros = core.zero_states(1)
    assert all(z.any() == 0 for z in zeros.values())
    again = core.run({sequence: frame, **zeros})
    for output, value in first.items():
        assert_close(f"{name} {output}", value, again[output], FP32)


def test_info_says_which_engine_path_the_fast_engines_take():
    from rnnedge.runtime.model import describe

    assert describe(FILES["charlm"])["fast_engine"] == "fused stack (chain reader, streaming)"
    assert describe(FILES["kws"])["fast_engine"] == "fused stack (chain reader, streaming)"


@pytest.mark.parametrize("engine", ["ort", "numba", "fast"])
def test_charlm_streamed_one_character_at_a_time_equals_the_whole(engine):
    model = rt.load(FILES["charlm"], engine=engine)
    tokens = cases("charlm")[-1][0]["tokens"][:1]  # (1, 29)
    whole, state = model.run(tokens)
    stream = model.stream()
    steps = np.stack([stream.step_ids(tokens[0, t:t + 1])[0] for t in range(tokens.shape[1])])
    assert_close("streamed logits", steps, whole[0], FP32)
    for name in state:
        assert_close(f"streamed {name}", stream.state[name], state[name], FP32)


@pytest.mark.parametrize("engine", ["ort", "numba", "fast"])
def test_kws_streamed_in_uneven_chunks_equals_the_whole(engine):
    model = rt.load(FILES["kws"], engine=engine)
    inputs, expected = cases("kws")[-1]  # batch 3, 29 frames
    stream = model.stream(batch=3)
    stream.reset({"h": inputs["h"]})
    chunks = [stream.step({"mels": inputs["mels"][:, a:b]})["scores"]
              for a, b in ((0, 1), (1, 6), (6, 29))]
    assert_close("streamed scores", np.concatenate(chunks, axis=1), expected["scores"], FP32)
    assert_close("streamed h_new", stream.states["h"], expected["h_new"], FP32)


@pytest.fixture()
def no_torch_env(tmp_path):
    """The environment of a subprocess in which ``import torch`` fails."""
    blocker = tmp_path / "blocker" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('torch is blocked for this test')\n")
    path = os.pathsep.join([str(blocker.parent), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=path)
    check = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True,
                           text=True)
    assert "torch is blocked" in check.stderr
    return env


def cli(*args, env):
    script = Path(sys.executable).parent / "rnnedge"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "rnnedge.cli"]
    return subprocess.run([*command, *map(str, args)], env=env, capture_output=True, text=True)


@pytest.mark.parametrize("name", FILES)
def test_verify_passes_without_torch_or_data(name, no_torch_env, tmp_path):
    empty = tmp_path / "no-data"
    empty.mkdir()
    extra = ["--data-dir", empty] if name == "charlm" else []
    done = cli("verify", FILES[name], *extra, env=no_torch_env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "numba vs ort" in done.stdout and " 0 failed" in done.stdout + done.stderr
    for engine in ENGINES:  # every engine against what PyTorch computed at export
        assert f"{engine} vs golden (PyTorch)" in done.stdout, done.stdout
    assert "fast-int8 streamed vs whole" in done.stdout
    assert "torch" not in done.stdout


def test_info_describes_both_files_without_torch(no_torch_env):
    charlm = cli("info", FILES["charlm"], "--json", env=no_torch_env)
    assert charlm.returncode == 0, charlm.stderr
    report = json.loads(charlm.stdout)
    assert report["kind"] == "charlm" and report["vocab_size"] == 12
    assert report["config"]["num_layers"] == 1 and report["config"]["hidden_size"] == 8
    kws = cli("info", FILES["kws"], "--json", env=no_torch_env)
    assert kws.returncode == 0, kws.stderr
    report = json.loads(kws.stdout)
    assert report["kind"] == "user" and report["states"] == {"h": "h_new"}
    assert [n["cell"] for n in report["recurrent_nodes"]] == ["GRU"]


def test_regenerating_reproduces_the_bundle(tmp_path):
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"torch is not installed ({exc}): make_golden.py needs it to regenerate the "
                    f"golden files")
    done = subprocess.run([sys.executable, GOLDEN / "make_golden.py", "--out", tmp_path],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for name in FILES:
        fresh = cases(name, tmp_path / "io.npz")
        assert len(fresh) == len(cases(name))
        for i, ((inputs, outputs), (want_in, want_out)) in enumerate(zip(fresh, cases(name))):
            for key, value in want_in.items():
                np.testing.assert_array_equal(inputs[key], value)  # same seed, same inputs
            for key, value in want_out.items():
                assert_close(f"regenerated {name} case {i} {key}", outputs[key], value, FP32)
        model = rt.load(tmp_path / FILES[name].name)
        inputs, expected = cases(name)[-1]
        for key, value in run(model, name, inputs).items():
            assert_close(f"regenerated {name}.onnx {key}", value, expected[key], FP32)
