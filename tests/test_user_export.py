"""Exporting users' own recurrent modules: the corpus, the parity gate, metadata, typed errors."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

import user_models as um
from rnnedge.export import gate, user_model, user_spec
from rnnedge.export.user_model import export_model
from rnnedge.runtime import golden
from rnnedge.runtime.errors import InputError, ModelFileError, ParityError
from rnnedge.runtime.tolerances import FP32, assert_close

KEYS = {"rnnedge.format", "rnnedge.kind", "rnnedge.signature", "rnnedge.states", "rnnedge.lengths",
        "rnnedge.user", "rnnedge.export", "rnnedge.versions", "rnnedge.golden"}
NAMES = sorted(um.PASSING)


def props_of(path):
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def module_outputs(module, names, feeds, inputs):
    spec = gate.IOSpec(tuple(inputs), tuple(names), {}, {})
    return gate.run_module(module, spec, feeds)


@pytest.mark.parametrize("name", NAMES)
def test_corpus_file_is_checked_and_self_describing(user_corpus, name):
    module, path, report = user_corpus[name]
    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.load(str(path))
    props = props_of(path)
    assert KEYS <= set(props) and props["rnnedge.format"] == "2" and props["rnnedge.kind"] == "user"
    sig = json.loads(props["rnnedge.signature"])
    assert sig == user_model.signature(model)
    assert [i["name"] for i in sig["inputs"]] == [v.name for v in model.graph.input]
    _, _, kwargs = um.PASSING[name]()
    assert json.loads(props["rnnedge.states"]) == kwargs.get("states", {})
    assert json.loads(props["rnnedge.lengths"]) == kwargs.get("lengths")
    for value in sig["inputs"]:
        for axis, axis_name in kwargs["dynamic_axes"].get(value["name"], {}).items():
            assert value["shape"][axis] == axis_name
    export = json.loads(props["rnnedge.export"])
    assert export["exporter"] == report.exporter and export["opset"] >= 17
    assert export["tolerance"] == "fp32" and len(export["checked"]) >= 6
    assert set(json.loads(props["rnnedge.versions"])) == {"torch", "onnx", "onnxruntime", "exporter"}
    assert len(props["rnnedge.golden"]) < 256 * 1024


@pytest.mark.parametrize("name", NAMES)
def test_golden_bundle_holds_the_module_outputs(user_corpus, name):
    module, path, _ = user_corpus[name]
    cases = golden.from_props(props_of(path))
    assert 2 <= len(cases) <= 3
    inputs = [v.name for v in onnx.load(str(path)).graph.input]
    for case in cases:
        assert list(case.inputs) == inputs
        expected = module_outputs(module, list(case.outputs), case.inputs, inputs)
        for out, value in case.outputs.items():
            assert_close(out, value, expected[out], FP32)


@pytest.mark.parametrize("name", NAMES)
def test_written_file_matches_module_at_an_unseen_shape(user_corpus, name):
    module, path, _ = user_corpus[name]
    _, example, kwargs = um.PASSING[name]()
    spec = user_spec.io_spec(example, **{k: kwargs.get(k) for k in (
        "input_names", "output_names", "dynamic_axes", "states", "lengths")})
    assert (4, 17) not in gate.gate_shapes(2, 10)
    feeds = gate.make_feeds(spec, 4, 17, np.random.default_rng(7))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    actual = dict(zip(spec.outputs, session.run(list(spec.outputs), feeds)))
    expected = gate.run_module(module, spec, feeds)
    for out in spec.outputs:
        assert_close(out, actual[out], expected[out], FP32)


def test_recurrent_models_take_torchscript_for_native_ops(user_corpus):
    for name, (_, path, report) in user_corpus.items():
        assert report.exporter == "torchscript", name
        ops = {n.op_type for n in onnx.load(str(path)).graph.node}
        assert ops & {"LSTM", "GRU", "RNN", "Loop"}, name
    assert user_corpus["scripted_cell_loop"][2].skipped["dynamo"].startswith("not tried")


def test_gate_shapes_cover_the_edges():
    shapes = gate.gate_shapes(2, 10)
    assert len(shapes) >= 6 and (2, 10) not in shapes
    assert any(t == 1 for _, t in shapes) and any(t >= 30 for _, t in shapes)
    assert any(b == 1 for b, _ in shapes) and any(b > 2 for b, _ in shapes)


def test_gate_feeds_are_random_padded_and_never_zero():
    _, example, kwargs = um.packed_gru_tagger()
    spec = user_spec.io_spec(example, kwargs["input_names"], kwargs["output_names"],
                             kwargs["dynamic_axes"], lengths="lengths")
    feeds = gate.make_feeds(spec, 6, 9, np.random.default_rng(0))
    assert feeds["lengths"][0] == 9 and feeds["lengths"].min() >= 1 and feeds["lengths"].dtype == np.int64
    assert np.all(feeds["feats"] != 0)  # padding steps are random too


def test_traced_loop_is_refused_and_leaves_nothing(tmp_path):
    module, example, kwargs = um.traced_cell_loop()
    with pytest.raises(ParityError) as caught:
        export_model(module, example, tmp_path / "loop.onnx", **kwargs)
    message = str(caught.value)
    assert "the time axis was frozen at 10: a Python loop over time was traced" in message
    assert "'y'" in message and "(2, 10, 2), PyTorch (2, 23, 2)" in message
    assert "dynamo" in message
    assert list(tmp_path.iterdir()) == []


def test_gru_lbr0_is_rewritten_by_the_gate(user_corpus):
    module, path, _ = user_corpus["streaming_kws_gru"]
    _, example, kwargs = um.streaming_kws_gru()
    spec = user_spec.io_spec(example, kwargs["input_names"], kwargs["output_names"],
                             kwargs["dynamic_axes"], kwargs["states"])
    model = onnx.load(str(path))
    assert um.tamper_gru_lbr0(model) == 1
    passed = gate.check(model, module, spec, "torchscript")
    assert len(passed.rewrites) == 1 and "linear_before_reset 0 -> 1" in passed.rewrites[0]
    before = float(passed.rewrites[0].rsplit("rewrite ", 1)[1].rstrip(")"))
    assert before > 1e-2  # the defect is large, not noise
    assert gate.lbr0_grus(passed.model) == []


def test_gru_lbr0_rewrite_is_reported_by_export(tmp_path, monkeypatch):
    real = user_model.run_exporter

    def defective(*args, **kwargs):
        model, opset = real(*args, **kwargs)
        um.tamper_gru_lbr0(model)
        return model, opset

    monkeypatch.setattr(user_model, "run_exporter", defective)
    module, example, kwargs = um.conv_gru()
    report = export_model(module, example, tmp_path / "m.onnx", **kwargs)
    assert report.rewrites and "linear_before_reset" in report.rewrites[0]
    assert json.loads(props_of(tmp_path / "m.onnx")["rnnedge.export"])["rewrites"] == report.rewrites
    assert gate.lbr0_grus(onnx.load(str(tmp_path / "m.onnx"))) == []


def test_interrupted_export_leaves_nothing(tmp_path, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(gate, "check", interrupt)
    module, example, kwargs = um.elman_relu()
    with pytest.raises(KeyboardInterrupt):
        export_model(module, example, tmp_path / "m.onnx", **kwargs)
    assert list(tmp_path.iterdir()) == []


class Smooth(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 4, 3, padding=1)

    def forward(self, x):  # (B, T, 4) -> (B, T, 4)
        return self.conv(x.transpose(1, 2)).transpose(1, 2)


def smooth_args():
    torch.manual_seed(0)
    return Smooth(), (torch.randn(2, 10, 4),), dict(
        input_names=["x"], output_names=["y"],
        dynamic_axes={"x": {0: "batch", 1: "time"}, "y": {0: "batch", 1: "time"}})


def test_non_recurrent_module_is_refused_unless_allowed(tmp_path):
    module, example, kwargs = smooth_args()
    with pytest.raises(InputError, match="rnnedge is for recurrent models"):
        export_model(module, example, tmp_path / "m.onnx", **kwargs)
    report = export_model(module, example, tmp_path / "m.onnx", require_recurrent=False, **kwargs)
    assert report.exporter == "dynamo" and report.skipped["torchscript"].startswith("not tried")
    assert report.max_abs < 1e-4 and json.loads(props_of(report.path)["rnnedge.export"])["exporter"] == "dynamo"


def bad(**change):
    module, example, kwargs = um.streaming_kws_gru()
    kwargs.update(change)
    return module, example, kwargs


@pytest.mark.parametrize("change, match", [
    (dict(input_names=["mels"]), "1 names for 2 example inputs"),
    (dict(states={"hidden": "h_new"}), "needs 'hidden' in input_names"),
    (dict(states={"h": "h_out"}), "'h_out' in output_names"),
    (dict(lengths="mels"), "must name an integer"),
    (dict(dynamic_axes={"mels": {0: "batch", 1: "time"}, "scores": {0: "batch", 1: "time"}}),
     r"input 'h' has the example's batch size 2 on axis 1.*add \{'h': \{1: 'batch'\}\}"),
    (dict(dynamic_axes={"mels": {0: "batch"}, "h": {1: "batch"}}), "names no time axis"),
    (dict(dynamic_axes={}), "names no 'batch' or 'time' axis"),
    (dict(dynamic_axes={"feats": {0: "batch"}}), "neither an input nor an output"),
    (dict(metadata={"epochs": object()}), "JSON-serialisable"),
    (dict(metadata={1: "one"}), "string keys"),
    (dict(opset=16), "opset must be >= 17"),
    (dict(exporter="tflite"), "exporter must be"),
])
def test_bad_arguments_raise_typed_errors(tmp_path, change, match):
    module, example, kwargs = bad(**change)
    with pytest.raises(InputError, match=match):
        export_model(module, example, tmp_path / "m.onnx", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_an_unnamed_time_axis_is_named_in_the_error():
    example = (torch.randn(2, 10, 3), torch.ones(2, 10))
    with pytest.raises(InputError, match=r"'mask' has the example's time size 10 on axis 1.*"
                                         r"\{'mask': \{1: 'time'\}\}"):
        user_spec.io_spec(example, ["x", "mask"], ["y"], {"x": um.BT, "mask": um.BATCH})


def test_bad_out_paths_raise_typed_errors(tmp_path):
    module, example, kwargs = bad()
    with pytest.raises(InputError, match="is a directory"):
        export_model(module, example, tmp_path, **kwargs)
    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"keep me")
    with pytest.raises(InputError, match="one of the files the export reads"):
        export_model(module, example, weights, sources=[weights], **kwargs)
    assert weights.read_bytes() == b"keep me"


def test_external_data_ends_up_inline(tmp_path, monkeypatch):
    module, example, kwargs = um.lstm_forecaster()
    torch.onnx.export(module.eval(), example, str(tmp_path / "src.onnx"), dynamo=False,
                      input_names=["x"], output_names=["forecast"], dynamic_axes=kwargs["dynamic_axes"])
    onnx.save(onnx.load(str(tmp_path / "src.onnx")), str(tmp_path / "ext.onnx"),
              save_as_external_data=True, location="ext.onnx.data", size_threshold=0)
    assert (tmp_path / "ext.onnx.data").stat().st_size > 1000
    model = user_model.self_contained(tmp_path / "ext.onnx")
    onnx.save(model, str(tmp_path / "inline.onnx"))
    reloaded = onnx.load(str(tmp_path / "inline.onnx"), load_external_data=False)
    assert all(t.data_location == onnx.TensorProto.DEFAULT and not t.external_data
               for t in reloaded.graph.initializer)
    monkeypatch.setattr(user_model, "PROTOBUF_LIMIT", 1000)
    with pytest.raises(ModelFileError, match="above protobuf's 2 GB limit"):
        user_model.self_contained(tmp_path / "ext.onnx")


def test_golden_round_trip_and_corruption():
    cases = [golden.Case({"x": np.arange(6, dtype=np.float32).reshape(2, 3)},
                         {"y": np.ones(2, np.float32)})]
    text = golden.encode(cases)
    (back,) = golden.decode(text)
    np.testing.assert_array_equal(back.inputs["x"], cases[0].inputs["x"])
    np.testing.assert_array_equal(back.outputs["y"], cases[0].outputs["y"])
    assert golden.from_props({}) == []
    with pytest.raises(ModelFileError, match="corrupt"):
        golden.decode(text[:40] + "!!" + text[42:])
    with pytest.raises(ModelFileError, match="corrupt"):
        golden.decode(text[: len(text) // 2])


MODULE_FILE = """
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 8, batch_first=True)
        self.head = nn.Linear(8, 1)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out)

def build():
    return Net()

def broken():
    return "not a module"
"""


def test_load_user_module_and_specs_export_end_to_end(tmp_path):
    source = tmp_path / "net.py"
    source.write_text(MODULE_FILE)
    trained = user_spec.load_user_module(f"{source}:build")
    torch.save(trained.state_dict(), tmp_path / "w.pt")
    module = user_spec.load_user_module(f"{source}:build", tmp_path / "w.pt")
    for a, b in zip(module.state_dict().values(), trained.state_dict().values()):
        assert torch.equal(a, b)
    spec = user_spec.parse_input_spec("x:float32[batch,time,3]")
    assert spec == ("x", "float32", ["batch", "time", 3])
    example, axes = user_spec.example_from_specs([spec], batch=2, time=10)
    assert example[0].shape == (2, 10, 3) and axes == {"x": {0: "batch", 1: "time"}}
    report = export_model(module, example, tmp_path / "net.onnx", input_names=["x"],
                          output_names=["y"], dynamic_axes={**axes, "y": {0: "batch", 1: "time"}},
                          metadata={"trained_on": "sensors"}, sources=[source, tmp_path / "w.pt"])
    assert json.loads(props_of(report.path)["rnnedge.user"]) == {"trained_on": "sensors"}


def test_load_user_module_errors(tmp_path):
    source = tmp_path / "net.py"
    source.write_text(MODULE_FILE)
    with pytest.raises(InputError, match="does not exist"):
        user_spec.load_user_module(f"{tmp_path / 'nope.py'}:build")
    with pytest.raises(InputError, match="has no callable 'make'"):
        user_spec.load_user_module(f"{source}:make")
    with pytest.raises(InputError, match="returned str, not a torch.nn.Module"):
        user_spec.load_user_module(f"{source}:broken")
    torch.save({"lstm.weight_ih_l0": torch.zeros(32, 3), "extra.bias": torch.zeros(1)}, tmp_path / "w.pt")
    with pytest.raises(InputError, match=r"missing keys .*head\.weight.*unexpected keys extra\.bias"):
        user_spec.load_user_module(f"{source}:build", tmp_path / "w.pt")
    with pytest.raises(InputError, match="does not exist"):
        user_spec.load_user_module(f"{source}:build", tmp_path / "none.pt")


def test_spec_parsers():
    assert user_spec.parse_input_spec("tokens:int64[batch, seq]=0..49") == (
        "tokens", "int64", ["batch", "seq"], (0, 49))
    assert user_spec.parse_state_spec("h=h_new") == ("h", "h_new")
    example, axes = user_spec.example_from_specs(
        [("tokens", "int64", ["batch", "seq"], (0, 49)), ("lengths", "int64", ["batch"])],
        batch=3, time=7, lengths="lengths")
    assert example[0].max() <= 49 and example[1][0] == 7 and example[1].min() >= 1
    assert axes == {"tokens": {0: "batch", 1: "seq"}, "lengths": {0: "batch"}}
    for text in ("feats", "feats:float32", "feats:notatype[batch]"):
        with pytest.raises(InputError):
            user_spec.parse_input_spec(text)
    with pytest.raises(InputError, match="neither batch nor time"):
        user_spec.example_from_specs([("x", "float32", ["batch", "channels"])])
    with pytest.raises(InputError, match="input=output"):
        user_spec.parse_state_spec("h")


def test_the_commonest_mistakes_are_one_line_errors_naming_them(tmp_path):
    """Too few output names, and a module that raises on the gate's inputs: typed errors that
    say so (exit 2 on the command line), where the first crashed in its own error path and the
    second read "no exporter could export the module"; no file either way. A module that
    only needs more steps than 1 is no mistake: the gate finds its shortest time length."""
    from torch import nn

    from rnnedge.export import export_model
    from rnnedge.runtime.errors import InputError

    class TwoOut(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(3, 4, batch_first=True)

        def forward(self, x):
            return self.gru(x)

    x = torch.randn(2, 5, 3)
    with pytest.raises(InputError, match="the module returns 2 tensors but the outputs named are 1"):
        export_model(TwoOut(), (x,), tmp_path / "a.onnx", input_names=["x"], output_names=["y"],
                     dynamic_axes={"x": {0: "batch", 1: "time"}})

    class AtMostTwo(TwoOut):
        def forward(self, x):
            if x.shape[0] > 2:
                raise ValueError(f"batch at most 2, got {x.shape[0]}")
            return self.gru(x)[0]

    with pytest.raises(InputError, match=r"^your module raised on the gate's inputs: ValueError: "
                                         r"batch at most 2, got 5 \(inputs: x float32 \(5, 1, 3\)\)$"):
        export_model(AtMostTwo(), (x,), tmp_path / "b.onnx", input_names=["x"],
                     output_names=["y"], dynamic_axes={"x": {0: "batch", 1: "time"}})
    assert list(tmp_path.iterdir()) == []

    class NeedsFiveSteps(TwoOut):
        def forward(self, x):
            if x.shape[1] < 5:
                raise ValueError(f"need at least 5 steps, got {x.shape[1]}")
            return self.gru(x)[0]

    report = export_model(NeedsFiveSteps(), (x,), tmp_path / "c.onnx", input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "batch", 1: "time"}})
    assert report.min_time == 5 and min(t for _, t in report.shapes) == 5
    assert "ValueError: need at least 5 steps, got 1" in report.notes[0]
