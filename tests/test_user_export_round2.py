"""What 26 users' models taught the export: lengths found by name and always in [1, time],
the shortest time length found by running the module, scripted GRUCell/RNNCell loops,
one-step (decoder) models with a time length fixed at 1, dict and tuple arguments as named
tensors, the real cause first when an exporter refuses a layer, and a module's own errors
and exits named as its own. Models are in tests/user_models.py."""

import json
import re
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import rnnedge.runtime as rt
import user_models as um
from rnnedge.cli.export import user_summary
from rnnedge.export import gate, nested, user_spec
from rnnedge.export.from_specs import export_from_specs
from rnnedge.export.user_model import export_model
from rnnedge.runtime import golden
from rnnedge.runtime.errors import InputError, ParityError
from rnnedge.runtime.tolerances import FP32, assert_close

CLI = [sys.executable, "-m", "rnnedge.cli"]


def props_of(path):
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def export(factory, path, **change):
    module, example, kwargs = factory()
    kwargs.update(change)
    return module, export_model(module, example, path, **kwargs)


def module_file(tmp_path, body, name="net.py"):
    """A user's module file importing the corpus (tests/user_models.py) by its path."""
    path = tmp_path / name
    path.write_text(f"import sys\nsys.path.insert(0, {str(um.__file__.rpartition('/')[0])!r})\n"
                    f"import torch\nimport user_models as um\n{body}")
    return path


# -- lengths ----------------------------------------------------------------------------------

def test_a_lengths_input_is_taken_from_its_name(tmp_path):
    _, report = export(um.seq_len_tagger, tmp_path / "t.onnx")
    assert report.notes == ["lengths: taken from the input named seq_len (an int64 (batch,) "
                            "input); pass lengths=... to choose another"]
    props = props_of(report.path)
    assert json.loads(props["rnnedge.lengths"]) == "seq_len"
    for case in golden.from_props(props):
        time, lengths = case.inputs["x"].shape[1], case.inputs["seq_len"]
        assert lengths.min() >= 1 and lengths.max() <= time and lengths[0] == time


@pytest.mark.parametrize("name, dtype, kinds, found", [
    ("lengths", "int64", ["batch"], True), ("seq_len", "int64", ["batch"], True),
    ("lens", "int64", ["batch"], True), ("length", "int64", ["batch"], True),
    ("src_Lengths", "int64", ["batch"], True), ("n", "int64", ["batch"], False),
    ("seq_len", "int32", ["batch"], False), ("seq_len", "int64", ["batch", "time"], False),
    ("seq_len", "int64", [None], False)])
def test_which_inputs_count_as_lengths(name, dtype, kinds, found):
    candidates = [("x", "float32", ["batch", "time", None]), (name, dtype, kinds)]
    assert user_spec.lengths_input(candidates) == (name if found else None)
    two = candidates + [("lens2", "int64", ["batch"])]
    assert user_spec.lengths_input(two) is (None if found else "lens2")  # two: neither


def test_generated_lengths_lie_in_one_to_time():
    _, example, kwargs = um.seq_len_tagger()
    spec = user_spec.io_spec(example, kwargs["input_names"], kwargs["output_names"],
                             kwargs["dynamic_axes"])
    assert spec.lengths == "seq_len"
    rng = np.random.default_rng(0)
    for min_time in (1, 3):
        for batch, time in gate.gate_shapes(2, 10, min_time) + [(2, 1), (4, 2)]:
            lengths = gate.make_feeds(spec, batch, time, rng)["seq_len"]
            assert lengths.shape == (batch,) and 1 <= lengths.min() <= lengths.max() <= time


def test_example_lengths_outside_one_to_time_are_refused(tmp_path):
    module, (x, _), kwargs = um.seq_len_tagger()
    with pytest.raises(InputError, match=r"the example's seq_len holds \[10, 0\]: true lengths "
                                         r"lie in \[1, 10\]"):
        export_model(module, (x, torch.tensor([10, 0])), tmp_path / "t.onnx", **kwargs)


def test_a_module_raising_on_the_gates_inputs_says_so_first(tmp_path):
    """enforce_sorted=True raises on the gate's unsorted batches: the module's error, named."""
    module, (x, _), kwargs = um.seq_len_tagger()
    module = um.SeqLenTagger(enforce_sorted=True)
    with pytest.raises(InputError) as raised:
        export_model(module, (x[:, :7], torch.tensor([7, 3])), tmp_path / "t.onnx", **kwargs)
    first = str(raised.value).splitlines()[0]
    assert first.startswith("your module raised on the gate's inputs: RuntimeError: `lengths` "
                            "array must be sorted in decreasing order")
    lengths = r"seq_len int64 \((\d+),\) = \[(\d+(, \d+)*)\]"
    assert re.search(rf"\(inputs: x float32 \(\d+, \d+, 8\), {lengths}\)$", first)
    assert "no exporter" not in str(raised.value) and list(tmp_path.iterdir()) == []


def test_lengths_the_gate_cannot_recognise_are_named_with_a_hint(tmp_path):
    """The command-line case that read "no exporter could export the module": a lengths input
    named n gets example values 0 and 1, and packing refuses the 0."""
    source = module_file(tmp_path, "def build():\n    return um.SeqLenTagger()\n")
    with pytest.raises(InputError) as raised:
        export_from_specs(f"{source}:build", tmp_path / "t.onnx", outputs=["tags"],
                          inputs=["x:float32[batch,time,8]", "n:int64[batch]"])
    first, hint = str(raised.value).splitlines()
    assert first.startswith("your module raised on the gate's inputs: RuntimeError: Length of all "
                            "samples has to be greater than 0")
    assert first.endswith("(inputs: x float32 (2, 10, 8), n int64 (2,) = [0, 0])")
    assert hint.startswith("if 'n' holds each row's true length, pass lengths='n' (--lengths n)")


# -- the shortest time length -----------------------------------------------------------------

def test_gate_shapes_start_at_the_shortest_time():
    assert (1, 1) in gate.gate_shapes(2, 10)
    shapes = gate.gate_shapes(2, 10, 4)
    assert min(t for _, t in shapes) == 4 and (1, 4) in shapes and len(shapes) == 7
    assert all(t >= 10 for _, t in gate.gate_shapes(2, 10, 10))


def test_the_shortest_time_is_found_by_running_the_module(user_corpus):
    _, path, report = user_corpus["pooled_gru"]
    assert report.min_time == 2 and min(t for _, t in report.shapes) == 2 and (1, 2) in report.shapes
    assert report.notes == [
        "time: the module raised at time 1 (RuntimeError: max_pool1d() Invalid computed output "
        "size: 0) and runs at 2, so the gate ran time lengths of 2 and more; pass min_time=... "
        "(--min-time) to set it"]
    assert json.loads(props_of(path)["rnnedge.export"])["min_time"] == 2
    assert user_corpus["elman_relu"][2].min_time == 1 and user_corpus["elman_relu"][2].notes == []


def test_min_time_given_is_used_as_is(tmp_path):
    _, report = export(um.pooled_gru, tmp_path / "p.onnx", min_time=4)
    assert report.min_time == 4 and min(t for _, t in report.shapes) == 4
    assert report.notes == ["time: min_time=4 given, so the gate ran time lengths of 4 and more"]
    for bad in (0, 11, 2.5):
        with pytest.raises(InputError, match="min_time must be a whole number from 1 to the "
                                             "example's time length 10"):
            export(um.pooled_gru, tmp_path / "q.onnx", min_time=bad)
    with pytest.raises(InputError, match="min_time=2 needs a time axis"):
        export(um.decoder_step, tmp_path / "q.onnx", min_time=2)


def test_the_summary_says_which_shapes_the_gate_ran(tmp_path):
    source = module_file(tmp_path, "def build():\n    return um.PooledGRU()\n")
    report = export_from_specs(f"{source}:build", tmp_path / "p.onnx", inputs=["x:float32[batch,time,8]"],
                               outputs=["y"], min_time=12)
    lines = user_summary(report).splitlines()
    assert "(batch, time) shapes checked: (1, 12) (5, 12) (2, 27) (5, 37) (3, 12) (1, 38)" in lines
    assert "time: min_time=12 given, so the gate ran time lengths of 12 and more" in lines


# -- scripted cells ---------------------------------------------------------------------------

@pytest.mark.parametrize("cell", ["gru-no-bias", "rnn-relu"])
def test_scripted_cell_loops_export_quietly(tmp_path, capfd, cell):
    torch.manual_seed(0)
    loop = um.GRUCellLoop(bias=False) if cell == "gru-no-bias" else um.RNNCellLoop(nonlinearity="relu")
    x = torch.randn(2, 10, 6)
    capfd.readouterr()
    report = export_model(torch.jit.script(loop), (x,), tmp_path / "c.onnx", input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": um.BT, "y": um.BT})
    seen = capfd.readouterr()
    assert seen.out == "" and seen.err == ""
    assert report.exporter == "torchscript" and report.max_abs < 1e-5
    assert "Loop" in {n.op_type for n in onnx.load(str(report.path)).graph.node}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_cell_symbolics_are_gone_after_the_export(user_corpus, tmp_path):
    """The GRUCell symbolic is registered for rnnedge's export only: torch is left as found."""
    module, example, _ = um.scripted_gru_cell_loop()
    with pytest.raises(Exception, match="ONNX symbolic expected node type prim::ListConstruct"):
        torch.onnx.export(module, example, str(tmp_path / "plain.onnx"), dynamo=False)


# -- one-step models --------------------------------------------------------------------------

def test_a_one_step_decoder_varies_batch_only_and_streams(tmp_path):
    module, report = export(um.decoder_step, tmp_path / "d.onnx")
    assert report.shapes == [(1, None), (5, None), (3, None)] and report.min_time is None
    assert report.notes == ["time: fixed at 1 (no input names a time axis and 'token' has a 1 "
                            "after its batch axis: a one-step model), so the gate varied batch only"]
    assert "batch 1, 5, 3 (time fixed)" in user_summary(report)
    model = rt.load(report.path, engine="ort")
    assert model.inputs["token"]["shape"] == ["batch", 1] and model.states == {"h": "h_new"}
    stream, h = model.stream(), torch.zeros(1, 16)
    stream.reset({"h": h.numpy()})
    for token in (3, 17, 0, 29):
        out = stream.step({"token": np.array([[token]], np.int64)})
        logits, h = module(torch.tensor([[token]]), h)
        assert_close("logits", out["logits"], logits.detach().numpy(), FP32)


def test_a_time_length_of_one_is_not_taken_for_an_unnamed_axis(tmp_path):
    """Before: the example's time of 1 matched the (1, B, H) state's first axis and the advice
    was "add {'h': {0: 'time'}}". A decoder step whose time axis is named gets the one-step
    hint when it fails at longer times."""
    module, (mels, h), kwargs = um.streaming_kws_gru()
    export_model(module, (mels[:, :1], h), tmp_path / "k.onnx", **kwargs)
    module, example, kwargs = um.decoder_step()
    kwargs["dynamic_axes"]["token"] = um.BT
    with pytest.raises(InputError) as raised:
        export_model(module, example, tmp_path / "d.onnx", **kwargs)
    first, hint = str(raised.value).splitlines()
    assert first.startswith("your module raised on the gate's inputs: ValueError: GRUCell: "
                            "Expected input to be 1D or 2D, got 3D instead (inputs: token int64")
    assert hint.startswith("a one-step model (a decoder step) fixes its time length at 1")


# -- dicts and tuples -------------------------------------------------------------------------

CALLS = {"dict_kws": lambda m, feats, h: m({"feats": feats, "h": h}),
         "tuple_state_lstm": lambda m, x, h, c: m(x, (h, c))}


@pytest.mark.parametrize("name, exporter", [("dict_kws", "auto"), ("tuple_state_lstm", "auto"),
                                            ("dict_kws", "dynamo")])
def test_nested_arguments_become_named_tensors(tmp_path, name, exporter):
    module, example, kwargs = getattr(um, name)()
    report = export_model(module, example, tmp_path / "n.onnx", exporter=exporter, **kwargs)
    assert report.exporter == ("torchscript" if exporter == "auto" else exporter)
    model = onnx.load(str(report.path))
    assert [v.name for v in model.graph.input] == kwargs["input_names"]
    assert [v.name for v in model.graph.output] == kwargs["output_names"]
    assert json.loads(props_of(report.path)["rnnedge.export"])["module"] == type(module).__name__
    flat = nested.flat_inputs(example, kwargs["input_names"])
    spec = user_spec.io_spec(flat, kwargs["input_names"], kwargs["output_names"],
                             kwargs["dynamic_axes"], kwargs["states"])
    feeds = gate.make_feeds(spec, 3, 17, np.random.default_rng(5))
    got = ort.InferenceSession(str(report.path)).run(None, feeds)
    with torch.no_grad():
        want = CALLS[name](module, *(torch.from_numpy(feeds[n]) for n in spec.inputs))
    want = list(want.values()) if isinstance(want, dict) else [want[0], *want[1]]
    for out, a, b in zip(spec.outputs, got, want):
        assert_close(out, a, b.numpy(), FP32)


def test_nested_names_must_follow_the_keys(tmp_path):
    module, example, kwargs = um.dict_kws()
    with pytest.raises(InputError, match=r"input_names names 'mels' where the example's dict has "
                                         r"'feats'.*input_names=\['feats', 'h'\]"):
        export_model(module, example, tmp_path / "n.onnx", **{**kwargs, "input_names": ["mels", "h"],
                                                              "dynamic_axes": {"mels": um.BT, "h": {1: "batch"}}})
    axes = {"feats": um.BT, "h": {1: "batch"}}
    with pytest.raises(InputError, match=r"output_names names 'logits' where the module's output "
                                         r"dict has 'scores'.*output_names=\['scores', 'h_new'\]"):
        export_model(module, example, tmp_path / "n.onnx", **{**kwargs, "dynamic_axes": axes,
                                                              "output_names": ["logits", "h_new"]})
    with pytest.raises(InputError, match=r"the example holds 2 tensors, each an ONNX input.*"
                                         r"input_names=\['feats', 'h'\]"):
        export_model(module, example, tmp_path / "n.onnx", **{**kwargs, "input_names": ["batch"]})
    with pytest.raises(InputError, match=r"example_inputs\[1\] is NoneType; export_model takes "
                                         r"tensors, or tuples, lists and dicts"):
        export_model(module, (example[0]["feats"], None), tmp_path / "n.onnx", input_names=["x", "h"],
                     output_names=["y"], dynamic_axes={"x": um.BT})
    assert list(tmp_path.iterdir()) == []


# -- the real cause first ---------------------------------------------------------------------

def test_proj_size_is_refused_with_the_cause_first(tmp_path):
    module, example, kwargs = um.proj_lstm()
    with pytest.raises(ParityError) as refused:
        export_model(module, example, tmp_path / "p.onnx", **kwargs)
    lines = str(refused.value).splitlines()
    assert lines[0].startswith("LSTMs with projections (proj_size) are not supported by torch "
                               "2.13's ONNX exporters") and "use proj_size=0" in lines[0]
    assert lines[1].startswith("the dynamo export does not match PyTorch")
    assert list(tmp_path.iterdir()) == []


# -- a module file that exits -----------------------------------------------------------------

EXITS = {"import": ("sys.exit(3)\ndef build():\n    return um.PooledGRU()\n", "importing net.py"),
         "build": ("def build():\n    raise SystemExit(3)\n", "building the module"),
         "forward": ("class Quits(um.PooledGRU):\n    def forward(self, x):\n        sys.exit(3)\n"
                     "def build():\n    return Quits()\n", "running forward on the gate's inputs "
                     "(x float32 (2, 10, 8))")}


@pytest.mark.parametrize("where", sorted(EXITS))
def test_a_module_file_that_exits_is_named(tmp_path, where):
    body, doing = EXITS[where]
    source = module_file(tmp_path, body)
    with pytest.raises(InputError) as raised:
        export_from_specs(f"{source}:build", tmp_path / "m.onnx", inputs=["x:float32[batch,time,8]"],
                          outputs=["y"])
    assert str(raised.value) == (f"{source}:build raised SystemExit(3) while {doing}; a module file "
                                 f"must build and run without exiting: remove the exit")


def test_the_command_exits_2_with_one_line_for_an_exiting_module(tmp_path):
    source = module_file(tmp_path, EXITS["import"][0])
    done = subprocess.run([*CLI, "export", "--model", f"{source}:build", "--input",
                           "x:float32[batch,time,8]", "--output", "y", "--out",
                           str(tmp_path / "m.onnx")], capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (f"rnnedge: error: {source}:build raised SystemExit(3) while importing "
                           f"net.py; a module file must build and run without exiting: remove the exit\n")


def test_the_command_finds_the_lengths_input_and_says_so(tmp_path):
    source = module_file(tmp_path, "def build():\n    return um.SeqLenTagger()\n")
    done = subprocess.run([*CLI, "export", "--model", f"{source}:build", "--input",
                           "x:float32[batch,time,8]", "--input", "seq_len:int64[batch]", "--output",
                           "tags", "--out", str(tmp_path / "t.onnx")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "(batch, time) shapes checked: (1, 1) (5, 1) (1, 10) (2, 23) (5, 31) (3, 6) (1, 32)" in lines
    assert ("lengths: taken from the input named seq_len (an int64 (batch,) input); pass "
            "lengths=... to choose another") in lines
