"""The operators torch's exporters emit for front ends and heads, on the numba engine.

GatherElements (torch.gather), MaxPool and AveragePool (Conv1d front ends), Pad, CumSum,
the reductions in both forms of ``axes``, Slice with negative steps (torch.flip), Range,
Mod and Einsum: each one node at a time against onnxruntime over random inputs of odd
sizes and a spread of attribute settings, then whole torch models with these operators on
the numba and fast engines. Last, ``rnnedge verify`` fails on a file an engine cannot run
unless ``--allow-skip``. One-node tests need neither torch nor data; the exports need torch.
"""

import itertools
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from rnnedge.runtime.errors import UnsupportedError
from rnnedge.runtime.interpreter import Interpreter
from rnnedge.runtime.tolerances import FP32, compare
from test_interpreter_ops import assert_matches_ort, one_node

rng = np.random.default_rng(2024)
CLI = [sys.executable, "-m", "rnnedge.cli"]
I64_MIN, I64_MAX = np.iinfo(np.int64).min, np.iinfo(np.int64).max


def f32(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def ints(*shape, low=-9, high=10, dtype=np.int64):
    return rng.integers(low, high, shape).astype(dtype)


def i64(*values):
    return np.array(values, np.int64)


def case(name, op, *inputs, outputs=1, opset=18, **attrs):
    named = [(f"x{i}", np.asarray(a)) if a is not None else ("", None) for i, a in enumerate(inputs)]
    return pytest.param(op, named, outputs, opset, attrs, id=name)


def gather_indices(data_shape, axis, index_shape):
    """Valid indices for GatherElements, a fifth of them counted from the end."""
    dim = data_shape[axis]
    index = rng.integers(0, dim, index_shape)
    return np.where(rng.random(index_shape) < 0.2, index - dim, index).astype(np.int64)


X = f32(3, 5, 7)
CASES = [
    # GatherElements: torch.gather, indices no larger than data along the other axes
    case("GatherElements-axis1", "GatherElements", X, gather_indices((3, 5, 7), 1, (3, 2, 7)),
         axis=1),
    case("GatherElements-axis0-smaller", "GatherElements", X,
         gather_indices((3, 5, 7), 0, (4, 3, 5))),
    case("GatherElements-axis-neg", "GatherElements", X, gather_indices((3, 5, 7), 2, (2, 5, 9)),
         axis=-1),
    case("GatherElements-int32-idx", "GatherElements", ints(5, 3),
         gather_indices((5, 3), 1, (5, 1)).astype(np.int32), axis=1, opset=13),
    case("GatherElements-1d", "GatherElements", f32(9), gather_indices((9,), 0, (4,))),
    # Pad: pads and constant_value as inputs, axes of opset 18
    case("Pad-constant-value", "Pad", X, i64(1, 0, 2, 0, 3, 1), np.float32(-2.5)),
    case("Pad-constant-default", "Pad", X, i64(0, 2, 0, 1, 0, 3), opset=13),
    case("Pad-reflect", "Pad", X, i64(0, 2, 3, 0, 1, 4), mode="reflect", opset=13),
    case("Pad-edge-axes", "Pad", X, i64(2, 1, 0, 3), None, i64(0, -1), mode="edge"),
    case("Pad-reflect-axes", "Pad", X, i64(3, 4), None, i64(1), mode="reflect"),
    case("Pad-constant-axes", "Pad", X, i64(1, 2), np.float32(7.0), i64(-2)),
    case("Pad-int64", "Pad", ints(3, 4), i64(1, 1, 2, 0), i64(5)),
    case("Pad-zero", "Pad", X, i64(0, 0, 0, 0, 0, 0), mode="edge"),
    case("Pad-wrap", "Pad", X, i64(2, 0, 1, 3), None, i64(1, 2), mode="wrap", opset=19),
    # CumSum: axis as an input, exclusive and reverse
    *[case(f"CumSum-axis{axis}-ex{ex}-rev{rev}", "CumSum", X, np.array(axis, dtype),
           exclusive=ex, reverse=rev)
      for (axis, dtype), ex, rev in itertools.product(((0, np.int64), (1, np.int32),
                                                       (-1, np.int64)), (0, 1), (0, 1))],
    case("CumSum-int64", "CumSum", ints(4, 5), i64(1), exclusive=1),
    case("CumSum-int32-1d", "CumSum", ints(9, dtype=np.int32), np.array([0], np.int32),
         reverse=1),
    # reductions: axes as an attribute (ReduceSum-11, the others 13) and as an input
    *[case(f"{op}-attr-{axes}-k{keep}", op, X, opset=11 if op == "ReduceSum" else 13,
           keepdims=keep, **({} if axes is None else {"axes": axes}))
      for op in ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin")
      for axes, keep in (([1], 0), ([0, -1], 1), (None, 0), ([-2], 1))],
    *[case(f"{op}-input-{axes}-k{keep}-noop{noop}", op, X,
           None if axes is None else i64(*axes), opset=13 if op == "ReduceSum" else 18,
           keepdims=keep, noop_with_empty_axes=noop)
      for op in ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin")
      for axes, keep, noop in (((2,), 0, 0), ((0, 1), 1, 0), ((), 1, 1), ((), 0, 0),
                               (None, 1, 1), (None, 0, 0), ((-1, -3), 0, 1))],
    case("ReduceMax-int32", "ReduceMax", ints(5, 3, dtype=np.int32), i64(0), keepdims=0),
    # Slice with negative steps: torch.flip is start -1, end INT64_MIN, step -1
    case("Slice-flip", "Slice", X, i64(-1), i64(I64_MIN), i64(1), i64(-1)),
    case("Slice-flip-two-axes", "Slice", X, i64(-1, -1), i64(I64_MIN, I64_MIN), i64(0, 2),
         i64(-1, -1)),
    case("Slice-step-minus-2", "Slice", X, i64(5, 6), i64(0, -100), i64(1, 2), i64(-2, -3)),
    case("Slice-negative-mixed", "Slice", X, i64(0, I64_MAX), i64(3, 1), i64(0, 1),
         i64(2, -1)),
    # Range
    case("Range-int32", "Range", np.int32(-3), np.int32(14), np.int32(4)),
    case("Range-int64-down", "Range", np.int64(9), np.int64(-8), np.int64(-3)),
    case("Range-float-odd", "Range", np.float32(-1.25), np.float32(2.0), np.float32(0.3)),
    # Mod: fmod 0 takes the divisor's sign, fmod 1 the dividend's
    case("Mod-int64", "Mod", ints(41), ints(41, low=1, high=7) * np.where(rng.random(41) < 0.5,
                                                                        -1, 1)),
    case("Mod-int64-fmod", "Mod", ints(41), ints(41, low=1, high=7) * np.where(
        rng.random(41) < 0.5, -1, 1), fmod=1),
    case("Mod-int32-broadcast", "Mod", ints(3, 5, dtype=np.int32), np.array([3, -4, 5, -2, 7],
                                                                           np.int32)),
    case("Mod-float-fmod", "Mod", X * 5, np.float32(-1.3), fmod=1),
    case("Mod-float-fmod-broadcast", "Mod", X * 5, f32(7) + 3, fmod=1),
    # Einsum: batched matmul, bilinear (torch.nn.Bilinear), outer products, implicit output
    case("Einsum-bmm", "Einsum", f32(3, 5, 7), f32(3, 7, 4), equation="bij,bjk->bik"),
    case("Einsum-bmm-transposed", "Einsum", f32(3, 5, 7), f32(3, 4, 7), equation="btf,bsf->bts"),
    case("Einsum-bilinear", "Einsum", f32(3, 5), f32(4, 5, 7), f32(3, 7),
         equation="bn,anm,bm->ba"),
    case("Einsum-outer", "Einsum", f32(3, 5), f32(3, 7), equation="bi,bj->bij"),
    case("Einsum-ellipsis", "Einsum", f32(2, 3, 5, 7), f32(7, 4), equation="...ij,jk->...ik"),
    case("Einsum-implicit", "Einsum", f32(5, 7), f32(7, 3), equation="ij,jk"),
    case("Einsum-spaces-sum", "Einsum", X, equation="abc -> b"),
    case("Einsum-diagonal", "Einsum", f32(5, 5), equation="ii->i"),
]


@pytest.mark.parametrize("op, inputs, outputs, opset, attrs", CASES)
def test_op_matches_onnxruntime(op, inputs, outputs, opset, attrs):
    model = one_node(op, inputs, outputs, opset, **attrs)
    assert_matches_ort(model, {name: a for name, a in inputs if name})


def pool_cases(op, spatial, count):
    """``count`` seeded attribute combinations of ``op`` over ``spatial`` dims of odd sizes."""
    picks = np.random.default_rng(spatial * 10 + len(op))
    cases = []
    while len(cases) < count:
        kernel = picks.integers(1, 4, spatial).tolist()
        attrs = dict(kernel_shape=kernel, strides=picks.integers(1, 4, spatial).tolist(),
                     ceil_mode=int(picks.integers(0, 2)))
        if picks.random() < 0.2:
            attrs["auto_pad"] = "VALID"
        else:
            attrs["pads"] = [int(picks.integers(0, k)) for k in kernel * 2]
        if picks.random() < 0.5:
            attrs["dilations"] = picks.integers(1, 3, spatial).tolist()
        if op == "AveragePool":
            attrs["count_include_pad"] = int(picks.integers(0, 2))
        shape = [int(picks.integers(1, 4)), 3] + (picks.integers(4, 12, spatial) | 1).tolist()
        cases.append(pytest.param(op, shape, attrs, id=f"{op}-{spatial}d-{len(cases)}"))
    return cases


POOLS = [*pool_cases("MaxPool", 1, 16), *pool_cases("MaxPool", 2, 12),
         *pool_cases("AveragePool", 1, 16), *pool_cases("AveragePool", 2, 12),
         pytest.param("MaxPool", [2, 6, 11], dict(kernel_shape=[3], strides=[2], pads=[1, 1],
                                                  ceil_mode=1, dilations=[1]), id="torch-MaxPool1d"),
         pytest.param("AveragePool", [2, 6, 9], dict(kernel_shape=[2], strides=[2], pads=[0, 0],
                                                     ceil_mode=1, count_include_pad=0),
                      id="torch-AvgPool1d"),
         *[pytest.param(op, [1, 2, 1], dict(kernel_shape=[2], strides=[2], ceil_mode=1),
                        id=f"{op}-ceil-window-longer-than-the-input")
           for op in ("MaxPool", "AveragePool")],
         pytest.param("MaxPool", [1, 2, 5, 6, 7], dict(kernel_shape=[2, 3, 2], strides=[2, 1, 2],
                                                       pads=[1, 0, 1, 0, 2, 1]), id="MaxPool-3d")]


@pytest.mark.parametrize("op, shape, attrs", POOLS)
def test_pool_matches_onnxruntime(op, shape, attrs):
    """Opset 19: AveragePool's dilations are read from 19 on; the rest is as in 12-18."""
    x = rng.standard_normal(shape).astype(np.float32)
    assert_matches_ort(one_node(op, [("x", x)], opset=19, **attrs), {"x": x})


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_max_pool_of_integers_pads_with_the_lowest_value(dtype):
    x = rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max, (2, 3, 9), endpoint=True,
                     dtype=dtype)
    model = one_node("MaxPool", [("x", x)], opset=17, kernel_shape=[3], pads=[2, 1], strides=[2],
                     ceil_mode=1)
    assert_matches_ort(model, {"x": x})


# (op, inputs, opset, attributes, outputs, words the message must hold)
UNSUPPORTED = [
    ("MaxPool", [f32(1, 2, 5)], 17, dict(kernel_shape=[2], storage_order=1), 1,
     ["MaxPool", "the_maxpool", "storage_order=1"]),
    ("MaxPool", [f32(1, 2, 5)], 17, dict(kernel_shape=[2]), 2, ["MaxPool", "2 outputs"]),
    ("MaxPool", [f32(1, 2, 5)], 17, dict(kernel_shape=[2], auto_pad="SAME_UPPER"), 1,
     ["MaxPool", "auto_pad='SAME_UPPER'"]),
    ("AveragePool", [f32(1, 2, 5)], 17, dict(kernel_shape=[2], auto_pad="SAME_LOWER"), 1,
     ["AveragePool", "auto_pad='SAME_LOWER'"]),
    ("MaxPool", [f32(1, 2, 5)], 17, {}, 1, ["MaxPool", "kernel_shape"]),
    ("Einsum", [X], 17, {}, 1, ["Einsum", "equation"]),
    ("CumSum", [X, i64(0)], 17, dict(reduction="add"), 1, ["CumSum", "reduction"]),
    ("Hardmax", [X], 17, {}, 1, ["Hardmax"]),
]


@pytest.mark.parametrize("op, inputs, opset, attrs, outputs, words", UNSUPPORTED,
                         ids=[f"{u[0]}-{i}" for i, u in enumerate(UNSUPPORTED)])
def test_unsupported_raises_at_load(op, inputs, opset, attrs, outputs, words):
    model = one_node(op, [(f"x{i}", a) for i, a in enumerate(inputs)], outputs, opset, **attrs)
    with pytest.raises(UnsupportedError) as err:
        Interpreter(model)
    for word in words:
        assert word in str(err.value)


# ---- whole torch models: the front ends and heads above around a recurrent layer ----

def torch_models():
    """name -> (module, example inputs, input names, dynamic axes, feeds(batch, time))."""
    import torch
    from torch import nn

    class ConvPoolGRU(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(4, 6, 3, padding=1)
            self.pool = nn.MaxPool1d(3, 2, padding=1, ceil_mode=True)
            self.avg = nn.AvgPool1d(2, 2, ceil_mode=True, count_include_pad=False)
            self.gru = nn.GRU(6, 8, batch_first=True)

        def forward(self, x):  # (B, T, 4) -> (B, ceil(ceil(T / 2) / 2), 8)
            y = self.avg(self.pool(torch.relu(self.conv(x.transpose(1, 2)))))
            return self.gru(y.transpose(1, 2))[0]

    class LastValidStep(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(5, 7, batch_first=True)
            self.head = nn.Linear(7, 3)

        def forward(self, x, lengths):  # (B, T, 5), (B,) -> (B, 3)
            out, _ = self.gru(x)
            index = (lengths - 1).view(-1, 1, 1).expand(-1, 1, out.shape[2])  # (B, 1, 7)
            return self.head(torch.gather(out, 1, index).squeeze(1))

    class Flipped(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(5, 7, batch_first=True)

        def forward(self, x):  # (B, T, 5) -> (B, T, 7): the LSTM read back to front
            return torch.flip(self.lstm(torch.flip(x, [1]))[0], [1])

    class CumulativeHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(5, 6, batch_first=True)
            self.weight = nn.Parameter(0.3 * torch.randn(2, 6, 6))  # (out, in1, in2)

        def forward(self, x):  # (B, T, 5) -> (B, T, 2)
            out, _ = self.gru(x)
            running = out.cumsum(1) / torch.arange(1, out.shape[1] + 1).view(1, -1, 1)
            scores = torch.einsum("btf,bsf->bts", out, out).amax(-1, keepdim=True)
            bilinear = torch.einsum("btn,anm,btm->bta", running, self.weight, out)
            return bilinear + torch.fmod(scores, 0.5)

    def series(batch, time, gen):
        return {"x": gen.standard_normal((batch, time, 5)).astype(np.float32)}

    def with_lengths(batch, time, gen):
        return {**series(batch, time, gen), "lengths": gen.integers(1, time + 1, batch)}

    BT = {0: "batch", 1: "time"}
    return {
        "conv_maxpool_gru": (ConvPoolGRU(), (torch.randn(2, 11, 4),), ["x"], {"x": BT},
                             lambda b, t, g: {"x": g.standard_normal((b, t, 4)).astype(np.float32)}),
        "gather_last_step": (LastValidStep(), (torch.randn(2, 9, 5), torch.tensor([9, 4])),
                             ["x", "lengths"], {"x": BT, "lengths": {0: "batch"}}, with_lengths),
        "flip": (Flipped(), (torch.randn(2, 9, 5),), ["x"], {"x": BT}, series),
        "cumsum": (CumulativeHead(), (torch.randn(2, 9, 5),), ["x"], {"x": BT}, series),
    }


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch = pytest.importorskip("torch")
    import warnings

    out = tmp_path_factory.mktemp("coverage")
    files = {}
    torch.manual_seed(0)
    for name, (module, example, names, axes, feeds) in torch_models().items():
        path = out / f"{name}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module.eval(), example, str(path), dynamo=False, opset_version=17,
                              input_names=names, output_names=["y"], dynamic_axes=axes)
        files[name] = (path, feeds)
    return files


@pytest.mark.parametrize("name", ["conv_maxpool_gru", "gather_last_step", "flip", "cumsum"])
@pytest.mark.parametrize("engine", ["numba", "fast"])
def test_exported_model_matches_onnxruntime(exported, name, engine):
    import rnnedge.runtime as rt

    path, make_feeds = exported[name]
    ort, model = rt.load(path, engine="ort"), rt.load(path, engine=engine)
    gen = np.random.default_rng(7)
    for batch, time in ((1, 1), (1, 13), (3, 8), (4, 21)):  # lengths not used at export
        feeds = make_feeds(batch, time, gen)
        want, got = ort.run(feeds), model.run(feeds)
        diff = compare(f"{name} {engine} B={batch} T={time}", got["y"], want["y"], FP32)
        assert diff.ok, str(diff)


# ---- rnnedge verify on a file an engine cannot run ----

@pytest.fixture(scope="module")
def hardmax_file(tmp_path_factory):
    """A graph with an operator the numba engines lack (Hardmax); onnxruntime runs it."""
    dims = ["batch", "time", 4]
    graph = helper.make_graph(
        [helper.make_node("Hardmax", ["x"], ["y"], axis=-1, name="head")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path = tmp_path_factory.mktemp("verify") / "hardmax.onnx"
    onnx.save(model, str(path))
    return path


def test_verify_fails_naming_each_engine_that_cannot_run_the_file(hardmax_file):
    done = subprocess.run([*CLI, "verify", str(hardmax_file)], capture_output=True, text=True)
    assert done.returncode == 1, done.stdout + done.stderr
    for engine in ("numba", "fast-int8"):  # fast: onnxruntime, where the readers refuse a graph
        assert f"engine {engine}: could not run the file: the numba engine does not implement " \
               f"Hardmax FAIL" in done.stdout, done.stdout
    assert "engine ort" not in done.stdout and "engine fast:" not in done.stdout
    assert "2 failed" in done.stdout


def test_verify_allow_skip_lists_the_skipped_engines_and_passes(hardmax_file):
    done = subprocess.run([*CLI, "verify", str(hardmax_file), "--allow-skip"], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "engine numba: skipped (--allow-skip): the numba engine does not implement Hardmax" \
        in done.stdout
    assert "0 failed, 2 skipped (numba, fast-int8)" in done.stdout


def test_verify_as_a_library_reports_the_engine_rows(hardmax_file):
    from rnnedge.deploy.verify import verify

    skipped = {}
    rows = verify(hardmax_file, skipped=skipped)
    assert sorted(skipped) == ["fast-int8", "numba"]
    failed = [d for d in rows if not d.ok]
    assert {d.name for d in failed} == {"engine numba", "engine fast-int8"}
    assert all(d.check == "engine" and "Hardmax" in d.message for d in failed)
    assert all(d.ok for d in verify(hardmax_file, allow_skip=True))


def test_verify_counts_an_engine_that_refuses_at_run_as_one_that_cannot_run(tmp_path):
    """Dropout with training_mode as an input loads, and is refused on the first run."""
    from rnnedge.deploy.verify import verify

    graph = helper.make_graph(
        [helper.make_node("Dropout", ["x", "ratio", "training"], ["y"], name="drop")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        initializer=[helper.make_tensor("ratio", TensorProto.FLOAT, [], [0.0]),
                     helper.make_tensor("training", TensorProto.BOOL, [], [True])])
    path = tmp_path / "dropout.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8),
              str(path))
    skipped = {}
    rows = verify(path, skipped=skipped)
    assert "training_mode" in skipped["numba"]
    assert [d.name for d in rows if not d.ok] == [f"engine {e}" for e in skipped]
