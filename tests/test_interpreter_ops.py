"""The numba engine's operator table, one node at a time, against onnxruntime.

Each case is a one-node model built with ``onnx.helper`` and fed random inputs from a
fixed seed; outputs must match onnxruntime in shape, dtype and value (exactly for
integers and booleans, within ``FP32`` for floats). Then what the engine does not
implement must raise ``UnsupportedError`` naming the operator and the attribute.
Needs neither torch nor data.
"""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from rnnedge.runtime.errors import InputError, ModelFileError, UnsupportedError
from rnnedge.runtime.interpreter import Interpreter
from rnnedge.runtime.tolerances import FP32, assert_close

rng = np.random.default_rng(1234)
I64_MAX = np.iinfo(np.int64).max


def f32(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def pos(*shape):
    return (rng.random(shape) + 0.1).astype(np.float32)


def ints(*shape, low=-9, high=10, dtype=np.int64):
    return rng.integers(low, high, shape).astype(dtype)


def i64(*values):
    return np.array(values, np.int64)


def one_node(op, inputs, outputs=1, opset=18, **attrs):
    """A model of one ``op`` node; ``inputs`` are (name, array), name "" for an omitted input."""
    outs = [f"y{i}" for i in range(outputs)]
    node = helper.make_node(op, [name for name, _ in inputs], outs, name=f"the_{op.lower()}",
                            **attrs)
    graph_inputs = [helper.make_tensor_value_info(
        name, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape) for name, a in inputs if name]
    graph = helper.make_graph([node], "g", graph_inputs, [onnx.ValueInfoProto(name=o) for o in outs])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=9)


def assert_matches_ort(model, feeds):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, feeds)
    got = Interpreter(model).run(feeds)
    for name, want in zip([o.name for o in model.graph.output], expected):
        have = got[name]
        assert have.dtype == want.dtype, f"{name}: dtype {have.dtype}, onnxruntime {want.dtype}"
        assert have.shape == want.shape, f"{name}: shape {have.shape}, onnxruntime {want.shape}"
        if np.issubdtype(want.dtype, np.floating):
            assert_close(name, have, want, FP32)
        else:
            np.testing.assert_array_equal(have, want, err_msg=name)


def case(name, op, *inputs, outputs=1, opset=18, **attrs):
    named = [(f"x{i}", np.asarray(a)) if a is not None else ("", None) for i, a in enumerate(inputs)]
    return pytest.param(op, named, outputs, opset, attrs, id=name)


X = f32(2, 3, 4)
BIG = np.array([-100, -20, -1, 0, 1, 20, 100], np.float32)
CASES = [
    # element-wise
    *[case(op, op, X) for op in ("Abs", "Neg", "Exp", "Floor", "Ceil", "Tanh", "Erf", "Relu")],
    *[case(op, op, pos(3, 5)) for op in ("Sqrt", "Log", "Reciprocal")],
    case("Sigmoid", "Sigmoid", np.concatenate([BIG, f32(9)])),
    case("LeakyRelu", "LeakyRelu", X, alpha=0.2),
    case("LeakyRelu-default", "LeakyRelu", X),
    case("Gelu", "Gelu", X, opset=20),
    case("Gelu-tanh", "Gelu", X, opset=20, approximate="tanh"),
    case("Clip-min-max", "Clip", X, np.float32(-0.5), np.float32(0.3)),
    case("Clip-max-only", "Clip", X, None, np.float32(0.3)),
    case("Clip-none", "Clip", X),
    case("Clip-6-attrs", "Clip", X, opset=10, min=-0.5, max=0.3),
    case("Add-broadcast", "Add", X, f32(4)),
    case("Sub", "Sub", f32(3, 1), f32(1, 4)),
    case("Mul-int64", "Mul", ints(3, 4), ints(4)),
    case("Div", "Div", X, pos(3, 4)),
    case("Div-int64-truncates", "Div", ints(40), ints(40, low=1, high=5) * np.where(
        rng.random(40) < 0.5, -1, 1)),
    case("Div-int32", "Div", ints(20, dtype=np.int32), ints(20, low=1, high=4, dtype=np.int32)),
    case("Pow-float", "Pow", pos(3, 4), f32(3, 4)),
    case("Pow-int-exponent", "Pow", X, i64(2)),
    case("Pow-scalar", "Pow", X, np.float32(3.0)),
    case("Max-3", "Max", f32(3, 1), f32(4), f32(3, 4)),
    case("Min-1", "Min", X),
    case("Min-int", "Min", ints(5), ints(5)),
    # comparisons and logic
    *[case(op, op, ints(6, high=3), ints(6, high=3))
      for op in ("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual")],
    case("Less-float", "Less", X, f32(4)),
    case("Not", "Not", rng.random(7) < 0.5),
    *[case(op, op, rng.random((2, 5)) < 0.5, rng.random(5) < 0.5) for op in ("And", "Or", "Xor")],
    case("Where", "Where", rng.random((3, 4)) < 0.5, f32(3, 4), f32(4)),
    # linear algebra and neural-network layers
    case("MatMul-3x2", "MatMul", X, f32(4, 5)),
    case("MatMul-batched", "MatMul", X, f32(2, 4, 3)),
    case("Gemm", "Gemm", f32(3, 4), f32(5, 4), f32(5), transB=1),
    case("Gemm-all", "Gemm", f32(4, 3), f32(4, 5), f32(3, 5), alpha=0.5, beta=2.0, transA=1),
    case("Gemm-no-C", "Gemm", f32(3, 4), f32(4, 2)),
    case("Conv1d", "Conv", f32(2, 3, 9), f32(6, 3, 3), f32(6), pads=[1, 1]),
    case("Conv1d-stride-dilation", "Conv", f32(2, 3, 11), f32(4, 3, 3), pads=[2, 1],
         strides=[2], dilations=[2]),
    case("Conv1d-depthwise", "Conv", f32(1, 4, 8), f32(4, 1, 3), group=4, kernel_shape=[3]),
    case("Conv1d-same-upper", "Conv", f32(2, 3, 8), f32(2, 3, 4), auto_pad="SAME_UPPER",
         strides=[3]),
    case("Conv1d-same-lower", "Conv", f32(2, 3, 8), f32(2, 3, 4), auto_pad="SAME_LOWER"),
    case("Conv1d-valid", "Conv", f32(2, 3, 8), f32(2, 3, 4), auto_pad="VALID"),
    case("Conv2d-group", "Conv", f32(2, 4, 6, 5), f32(6, 2, 3, 2), f32(6), group=2,
         pads=[1, 0, 1, 1], strides=[2, 1], dilations=[1, 2]),
    case("BatchNormalization", "BatchNormalization", f32(2, 3, 5), f32(3), f32(3), f32(3),
         pos(3), opset=15, epsilon=1e-3),
    case("BatchNormalization-2d", "BatchNormalization", f32(2, 3, 4, 2), f32(3), f32(3), f32(3),
         pos(3), opset=9),
    case("LayerNormalization", "LayerNormalization", X, f32(4), f32(4), outputs=3,
         opset=17),
    case("LayerNormalization-axis1-noB", "LayerNormalization", X, f32(3, 4), outputs=3,
         opset=17, axis=1, epsilon=1e-3),
    case("Softmax", "Softmax", X, opset=13, axis=1),
    case("Softmax-default", "Softmax", X, opset=13),
    case("Softmax-11-coerced", "Softmax", X, opset=11, axis=1),
    case("LogSoftmax", "LogSoftmax", X, opset=13, axis=-1),
    case("LogSoftmax-11-coerced", "LogSoftmax", X, opset=11),
    # reductions
    case("ReduceSum-axes-input", "ReduceSum", X, i64(0, -1), keepdims=0),
    case("ReduceSum-all", "ReduceSum", X),
    case("ReduceSum-empty-noop", "ReduceSum", X, i64(), noop_with_empty_axes=1),
    case("ReduceSum-empty-all", "ReduceSum", X, i64(), keepdims=0),
    case("ReduceSum-int32", "ReduceSum", ints(3, 4, dtype=np.int32), i64(1)),
    case("ReduceSum-11-attr", "ReduceSum", X, opset=11, axes=[1]),
    case("ReduceMean-18", "ReduceMean", X, i64(1)),
    case("ReduceMean-17-attr", "ReduceMean", X, opset=17, axes=[-1], keepdims=0),
    case("ReduceMax-18", "ReduceMax", X, i64(2), keepdims=0),
    case("ReduceMax-13-attr", "ReduceMax", X, opset=13, axes=[0, 1]),
    case("ReduceMin-18", "ReduceMin", X, i64(-2)),
    case("ReduceMin-int64", "ReduceMin", ints(3, 4)),
    case("ReduceProd-18", "ReduceProd", X, i64(1), keepdims=0),
    case("ArgMax", "ArgMax", X, axis=1),
    case("ArgMax-flat", "ArgMax", X, axis=-1, keepdims=0),
    case("ArgMax-ties-last", "ArgMax", ints(4, 6, high=2), axis=1, select_last_index=1),
    case("ArgMax-ties-first", "ArgMax", ints(4, 6, high=2), axis=1),
    # shapes, indexing and types
    case("Identity", "Identity", X),
    case("ConstantOfShape", "ConstantOfShape", i64(2, 3)),
    case("ConstantOfShape-int64", "ConstantOfShape", i64(4),
         value=helper.make_tensor("v", TensorProto.INT64, [1], [7])),
    case("ConstantOfShape-scalar", "ConstantOfShape", np.zeros(0, np.int64),
         value=helper.make_tensor("v", TensorProto.FLOAT, [1], [2.5])),
    *[case(f"Cast-to-{TensorProto.DataType.Name(to)}", "Cast", X * 4, to=to)
      for to in (TensorProto.INT32, TensorProto.INT64, TensorProto.INT8, TensorProto.BOOL,
                 TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.INT16)],
    case("Cast-to-UINT8", "Cast", pos(5) * 50, to=TensorProto.UINT8),
    case("Cast-int-to-float", "Cast", ints(5), to=TensorProto.FLOAT),
    case("Cast-bool-to-float", "Cast", rng.random(5) < 0.5, to=TensorProto.FLOAT),
    case("Cast-bool-to-int64", "Cast", rng.random(5) < 0.5, to=TensorProto.INT64),
    case("CastLike", "CastLike", X * 4, ints(1, dtype=np.int32)),
    *[case(f"Shape-{start}-{end}", "Shape", X, **{k: v for k, v in (("start", start), ("end", end))
                                                  if v is not None})
      for start, end in ((0, None), (None, None), (1, None), (-1, None), (0, -1), (-2, -1),
                         (1, 100), (-100, 2), (2, 1), (None, 0))],
    case("Reshape", "Reshape", X, i64(0, -1)),
    case("Reshape-copy-zero", "Reshape", X, i64(2, 0, 2, 2)),
    case("Reshape-allowzero", "Reshape", np.zeros((0, 6), np.float32), i64(3, 0, 2),
         allowzero=1),
    case("Flatten", "Flatten", X, axis=2),
    case("Flatten-0", "Flatten", X, axis=0),
    case("Flatten-default", "Flatten", X),
    case("Squeeze-axes", "Squeeze", f32(1, 3, 1, 2), i64(-2)),
    case("Squeeze-all", "Squeeze", f32(1, 3, 1, 2)),
    case("Squeeze-11-attr", "Squeeze", f32(1, 3, 1, 2), opset=11, axes=[0]),
    case("Unsqueeze", "Unsqueeze", X, i64(0, -1)),
    case("Unsqueeze-11-attr", "Unsqueeze", X, opset=11, axes=[1, 4]),
    case("Unsqueeze-scalar", "Unsqueeze", np.float32(2.0), i64(0)),
    case("Transpose", "Transpose", X, perm=[1, 2, 0]),
    case("Transpose-default", "Transpose", X),
    case("Expand", "Expand", f32(3, 1), i64(2, 1, 4)),
    case("Expand-both-ways", "Expand", f32(1, 4), i64(3, 1)),
    case("Concat", "Concat", X, f32(2, 3, 1), f32(2, 3, 2), axis=-1),
    case("Slice", "Slice", X, i64(1, 0), i64(3, -1), i64(2, 0)),
    case("Slice-steps", "Slice", X, i64(-1, 0), i64(-I64_MAX, 100), i64(1, 2), i64(-1, 2)),
    case("Slice-clamped", "Slice", X, i64(-10), i64(I64_MAX)),
    case("Split-18-uneven", "Split", f32(7, 2), outputs=3, num_outputs=3),
    case("Split-18-sizes", "Split", f32(2, 6), i64(1, 2, 3), outputs=3, axis=1),
    case("Split-13-equal", "Split", f32(2, 6), outputs=2, opset=13, axis=-1),
    case("Split-11-attr", "Split", f32(5, 2), outputs=2, opset=11, split=[2, 3]),
    case("Gather", "Gather", X, i64(2, -1, 0), axis=1),
    case("Gather-scalar", "Gather", X, np.array(-1, np.int64), axis=2),
    case("Gather-int32-2d", "Gather", f32(5, 3), np.array([[0, 4], [3, 3]], np.int32)),
    case("ScatterElements", "ScatterElements", f32(4, 3), i64(1, 0, 3, 2).reshape(4, 1)
         * np.ones((1, 3), np.int64), f32(4, 3)),
    case("ScatterElements-axis1", "ScatterElements", f32(2, 4), i64(3, -1, 0, 1).reshape(2, 2),
         f32(2, 2), axis=1),
    case("Range-int64", "Range", i64(2)[0], i64(17)[0], i64(3)[0]),
    case("Range-float", "Range", np.float32(0.5), np.float32(-2.0), np.float32(-0.75)),
    case("Range-empty", "Range", i64(5)[0], i64(2)[0], i64(1)[0]),
    case("TopK", "TopK", f32(3, 7), i64(3), outputs=2),
    case("TopK-smallest-axis0", "TopK", f32(6, 2), i64(2), outputs=2, axis=0, largest=0),
    case("Pad-constant", "Pad", X, i64(0, 1, 2, 0, 0, 1), np.float32(1.5)),
    case("Pad-axes", "Pad", X, i64(2, 1), None, i64(-1), mode="reflect"),
    case("Pad-edge", "Pad", X, i64(1, 0, 1, 1, 2, 0), mode="edge"),
    case("Dropout", "Dropout", X, np.float32(0.3), outputs=2),
    case("Dropout-training-off", "Dropout", X, np.float32(0.3), np.array(False)),
    case("Dropout-10-attr", "Dropout", X, opset=10, ratio=0.2),
]


@pytest.mark.parametrize("op, inputs, outputs, opset, attrs", CASES)
def test_op_matches_onnxruntime(op, inputs, outputs, opset, attrs):
    model = one_node(op, inputs, outputs, opset, **attrs)
    assert_matches_ort(model, {name: a for name, a in inputs if name})


@pytest.mark.parametrize("attrs", [dict(value=helper.make_tensor("v", TensorProto.INT32, [2, 2],
                                                                  [1, -2, 3, 4])),
                                   dict(value_float=1.5), dict(value_floats=[1.0, -2.0]),
                                   dict(value_int=-3), dict(value_ints=[4, 5, 6])])
def test_constant(attrs):
    model = one_node("Constant", [], **attrs)
    assert_matches_ort(model, {})


def loop_model(trip_count=True, condition=True):
    """A Loop carrying ``acc`` (acc * w + x[i]) and scanning ``acc`` per trip; it reads the
    outer ``x`` and ``w`` and stops when the trip's sum exceeds ``limit``."""
    v = helper.make_tensor_value_info
    body = helper.make_graph([
        helper.make_node("Gather", ["x", "i"], ["row"], axis=0),
        helper.make_node("Mul", ["acc_in", "w"], ["scaled"]),
        helper.make_node("Add", ["scaled", "row"], ["acc_out"]),
        helper.make_node("ReduceSum", ["acc_out"], ["total"], keepdims=0),
        helper.make_node("Less", ["total", "limit"], ["cond_out"]),
        helper.make_node("Identity", ["acc_out"], ["scan"]),
    ], "body", [v("i", TensorProto.INT64, []), v("cond_in", TensorProto.BOOL, []),
                v("acc_in", TensorProto.FLOAT, [3])],
        [v("cond_out", TensorProto.BOOL, []), v("acc_out", TensorProto.FLOAT, [3]),
         v("scan", TensorProto.FLOAT, [3])])
    loop = helper.make_node("Loop", ["M" if trip_count else "", "cond" if condition else "",
                                     "acc0"], ["acc", "scans"], body=body, name="the_loop")
    inputs = [v(n, t, s) for n, t, s in (("x", TensorProto.FLOAT, [None, 3]),
                                         ("M", TensorProto.INT64, []),
                                         ("cond", TensorProto.BOOL, []),
                                         ("acc0", TensorProto.FLOAT, [3]),
                                         ("limit", TensorProto.FLOAT, []))]
    graph = helper.make_graph([loop], "g", inputs, [onnx.ValueInfoProto(name="acc"),
                                                   onnx.ValueInfoProto(name="scans")],
                              initializer=[helper.make_tensor("w", TensorProto.FLOAT, [3],
                                                              [0.5, -1.0, 0.9])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)


@pytest.mark.parametrize("trips, cond, limit, trip_count, condition", [
    (6, True, 100.0, True, True),     # runs all M trips
    (6, True, 1.0, True, True),       # the body's condition stops it early
    (0, True, 100.0, True, True),     # no trip: empty scan output
    (4, True, 100.0, True, False),    # no cond input: M trips ...
    (4, True, -100.0, True, False),   # ... unless the body's condition ends the loop
    (9, True, 2.0, False, True),      # no M: runs while the condition holds
    (9, True, 2.0, False, False),     # neither: runs while the body's condition holds
    (6, False, 100.0, True, True),    # a false initial condition runs nothing
])
def test_loop(trips, cond, limit, trip_count, condition):
    model = loop_model(trip_count, condition)
    feeds = {"x": f32(9, 3), "M": np.array(trips, np.int64), "cond": np.array(cond),
             "acc0": f32(3), "limit": np.array(limit, np.float32)}
    assert_matches_ort(model, feeds)


def test_a_loop_past_the_trip_limit_is_refused_not_run_for_hours(monkeypatch):
    from rnnedge.runtime import interpreter
    from rnnedge.runtime.errors import InputError
    from rnnedge.runtime.interpreter import Interpreter

    monkeypatch.setattr(interpreter, "MAX_LOOP_TRIPS", 5)
    feeds = {"x": f32(9, 3), "M": np.array(10**12, np.int64), "cond": np.array(True),
             "acc0": f32(3), "limit": np.array(1e30, np.float32)}
    with pytest.raises(InputError, match="'the_loop' runs past 5 trips \\(bound 1,000,000,000,000\\)"):
        Interpreter(loop_model()).run(feeds)


def if_model():
    """y = If(c) then x * w else -x, both branches reading outer values."""
    then = helper.make_graph([helper.make_node("Mul", ["x", "w"], ["t"])], "then", [],
                             [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)])
    other = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [],
                              [helper.make_tensor_value_info("e", TensorProto.FLOAT, None)])
    node = helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other, name="if")
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("c", TensorProto.BOOL, []),
                      helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [onnx.ValueInfoProto(name="y")],
        initializer=[helper.make_tensor("w", TensorProto.FLOAT, [3], [2.0, -1.0, 0.5])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)


@pytest.mark.parametrize("cond", [True, False])
def test_if(cond):
    assert_matches_ort(if_model(), {"c": np.array(cond), "x": f32(2, 3)})


def test_nodes_on_constants_are_computed_at_load():
    """A node whose inputs are all initializers runs once at load, with the same result."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [2, 3], f32(2, 3).ravel())
    graph = helper.make_graph(
        [helper.make_node("Transpose", ["w"], ["wt"]), helper.make_node("MatMul", ["x", "wt"], ["y"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 3])],
        [onnx.ValueInfoProto(name="y")], initializer=[w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    assert [step[0].op_type for step in Interpreter(model).graph.steps] == ["MatMul"]
    assert_matches_ort(model, {"x": f32(4, 3)})


def test_initializer_that_is_an_input_is_a_default():
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "b"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, [3])],
        [onnx.ValueInfoProto(name="y")],
        initializer=[helper.make_tensor("b", TensorProto.FLOAT, [3], [1.0, 2.0, 3.0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    x, b = f32(3), f32(3)
    assert_matches_ort(model, {"x": x})
    assert_matches_ort(model, {"x": x, "b": b})


# (op, inputs, opset, attributes, words the message must hold)
UNSUPPORTED = [
    ("LeakyRelu", [X], 18, dict(beta=0.5), ["LeakyRelu", "the_leakyrelu", "beta"]),
    ("Cast", [X], 18, dict(to=TensorProto.STRING), ["Cast", "the_cast", "to=8"]),
    ("Cast", [X], 18, dict(to=TensorProto.BFLOAT16), ["Cast", "to=16"]),
    ("BatchNormalization", [f32(2, 3), f32(3), f32(3), f32(3), pos(3)], 15,
     dict(training_mode=1), ["BatchNormalization", "training_mode"]),
    ("ScatterElements", [f32(2, 2), i64(0, 1).reshape(1, 2), f32(1, 2)], 18,
     dict(reduction="add"), ["ScatterElements", "reduction='add'"]),
    ("Conv", [f32(1, 1, 5), f32(1, 1, 2)], 18, dict(auto_pad="BOGUS"), ["Conv", "auto_pad"]),
    ("LayerNormalization", [X, f32(4)], 18, dict(stash_type=0), ["LayerNormalization",
                                                                 "stash_type"]),
    ("Pad", [X, i64(0, 0, 1, 0, 0, 1)], 18, dict(mode="mirror"), ["Pad", "mode"]),
    ("Constant", [], 18, dict(value=helper.make_tensor("s", TensorProto.STRING, [1], [b"a"])),
     ["Constant", "value"]),
    ("Slice", [X], 9, dict(starts=[0], ends=[1]), ["Slice", "opset 9"]),
    ("Hardmax", [X], 18, {}, ["Hardmax"]),
    ("Sigmoid", [X, X], 18, {}, ["Sigmoid", "2 inputs"]),
]


@pytest.mark.parametrize("op, inputs, opset, attrs, words", UNSUPPORTED,
                         ids=[f"{u[0]}-{i}" for i, u in enumerate(UNSUPPORTED)])
def test_unsupported_raises_at_load(op, inputs, opset, attrs, words):
    model = one_node(op, [(f"x{i}", a) for i, a in enumerate(inputs)], opset=opset, **attrs)
    with pytest.raises(UnsupportedError) as err:
        Interpreter(model)
    for word in words:
        assert word in str(err.value)


def test_unsupported_output_count_and_domain():
    model = one_node("BatchNormalization", [(f"x{i}", a) for i, a in enumerate(
        [f32(2, 3), f32(3), f32(3), f32(3), pos(3)])], outputs=3, opset=15)
    with pytest.raises(UnsupportedError, match="BatchNormalization.*3 outputs"):
        Interpreter(model)
    model = one_node("Relu", [("x", X)])
    model.graph.node[0].domain = "com.microsoft"
    with pytest.raises(UnsupportedError, match="com.microsoft.Relu"):
        Interpreter(model)


def test_dropout_in_training_mode_raises():
    model = one_node("Dropout", [("x", X), ("r", np.asarray(np.float32(0.5))),
                                 ("t", np.array(True))])
    with pytest.raises(UnsupportedError, match="training_mode"):
        Interpreter(model).run({"x": X, "r": np.float32(0.5), "t": np.array(True)})


def test_bad_feeds_raise_input_errors():
    model = one_node("MatMul", [("a", X), ("b", f32(4, 5))])
    with pytest.raises(InputError, match="missing model input b"):
        Interpreter(model).run({"a": X})
    with pytest.raises(InputError, match=r"MatMul node 'the_matmul' failed on inputs shaped "
                                         r"\(\(2, 3, 4\), \(3, 5\)\)"):
        Interpreter(model).run({"a": X, "b": f32(3, 5)})


def test_a_name_no_node_defines_is_a_model_file_error():
    graph = helper.make_graph(
        [helper.make_node("Relu", ["h"], ["y"], name="late"),
         helper.make_node("Neg", ["x"], ["h"], name="early")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [onnx.ValueInfoProto(name="y")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    with pytest.raises(ModelFileError, match="Relu 'late' reads h, which no input"):
        Interpreter(model)
