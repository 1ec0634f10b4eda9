"""Crafted graphs that onnxruntime refuses, or would run for hours, are refused at load by
every engine that parses the file (``files.check_graph``), with a typed error naming the
cause; ``rnnedge verify`` ends at once with exit 2 instead of hanging."""

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import rnnedge.runtime as rt
from rnnedge.runtime.errors import ModelFileError


def relu_model(opset=17, inputs=("x",), outputs=("y",), node_outputs=("y",)):
    """x -> Relu -> y with the names and opset given (duplicates are the point)."""
    nodes = [helper.make_node("Relu", ["x"], [name]) for name in node_outputs]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3]) for n in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3]) for n in outputs])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def loop_model(trips):
    """A Loop of ``trips`` iterations (a constant) that adds 1 to x each trip."""
    one = numpy_helper.from_array(np.ones((1, 3), np.float32), "one")
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Add", ["v_in", "one"], ["v_out"])], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [1, 3])], [one])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["M", "cond", "x"], ["y"], body=body)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(np.array(trips, np.int64), "M"),
         numpy_helper.from_array(np.array(True), "cond")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


CASES = {
    "opset 99": (relu_model(opset=99), r"declares opset 99 of the ONNX operators; this onnx knows up to \d+"),
    "two inputs named x": (relu_model(inputs=("x", "x")), "two graph inputs are named 'x'"),
    "two outputs named y": (relu_model(outputs=("y", "y")), "two graph outputs are named 'y'"),
    "y made twice": (relu_model(node_outputs=("y", "y")), "two node outputs are named 'y'"),
    "a Loop of 10^12 trips": (loop_model(10 ** 12), r"Loop node .* runs 1,000,000,000,000 trips; "
                                                    r"rnnedge runs at most 1,000,000"),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("engine", ["numba", "fast"])
def test_a_crafted_graph_is_refused_at_load_naming_the_cause(tmp_path, case, engine):
    model, message = CASES[case]
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(ModelFileError, match=message):
        rt.load(path, engine=engine)


def test_onnxruntime_refuses_the_same_names_and_opsets(tmp_path):
    """The rule follows onnxruntime's own: it will not open these either."""
    for case in ("opset 99", "two inputs named x", "y made twice"):
        path = tmp_path / "m.onnx"
        path.write_bytes(CASES[case][0].SerializeToString())
        with pytest.raises(ModelFileError, match="is not an ONNX model"):
            rt.load(path, engine="ort")


def test_a_loop_under_the_bound_still_runs_on_every_engine(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(loop_model(5), str(path))
    x = np.zeros((1, 3), np.float32)
    for engine in ("ort", "numba"):
        out = rt.load(path, engine=engine).run({"x": x})
        np.testing.assert_array_equal(out["y"], np.full((1, 3), 5, np.float32))


def test_verify_refuses_a_loop_bomb_at_once(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(loop_model(10 ** 12), str(path))
    done = subprocess.run([sys.executable, "-m", "rnnedge.cli", "verify", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "runs 1,000,000,000,000 trips" in done.stderr and "Traceback" not in done.stderr
