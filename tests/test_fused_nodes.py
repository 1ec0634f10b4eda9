"""Single LSTM/GRU/RNN nodes on the fused kernels (``bind_node(engine="fast" | "fast-int8")``):
against onnxruntime (FP32, INT8), against their numpy twins (KERNEL), the reference's
``sequence_lens`` semantics, packing at bind time, and the fallback for what they do not run.

Models are single random nodes built with onnx.helper, weights as initializers, in odd
sizes so that the kernels' vector loops have remainders. onnxruntime refuses layout=1 on
CPU, so layout 1 is compared with onnxruntime run on the transposed layout-0 inputs.
"""

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from rnnedge.runtime.errors import InputError, UnsupportedError
from rnnedge.runtime.ops.fused_node import FusedNode
from rnnedge.runtime.reference import bind_node
from rnnedge.runtime.tolerances import FP32, INT8, KERNEL, assert_close, compare

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
INPUTS = ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P")
OUTPUTS = {"LSTM": ["Y", "Y_h", "Y_c"], "GRU": ["Y", "Y_h"], "RNN": ["Y", "Y_h"]}
I, H = 6, 19
CELLS = [("LSTM", {}), ("GRU", {"linear_before_reset": 1}), ("GRU", {"linear_before_reset": 0}),
         ("RNN", {}), ("RNN", {"activations": ["Relu"]})]
TOLERANCE = {"fast": FP32, "fast-int8": INT8}


def random_node(op, T, B, direction="forward", seed=0, zero_length=False, peepholes=False,
                **attributes):
    """(node, initializers, feeds): layout-0 feeds with mixed lengths and random states."""
    rng = np.random.default_rng(seed)
    D, G = (2 if direction == "bidirectional" else 1), GATES[op]
    u = lambda *shape, s=1.0: rng.uniform(-s, s, shape).astype(np.float32)  # noqa: E731
    weights = {"W": u(D, G * H, I, s=1 / np.sqrt(I)), "R": u(D, G * H, H, s=1 / np.sqrt(H)),
               "B": u(D, 2 * G * H, s=0.5)}
    if peepholes:
        weights["P"] = u(D, 3 * H)
    lengths = rng.integers(1, T + 1, B)
    lengths[0] = T  # one entry runs the whole sequence
    if zero_length:
        lengths[-1] = 0
    feeds = {"X": rng.standard_normal((T, B, I)).astype(np.float32),
             "sequence_lens": lengths.astype(np.int32), "initial_h": u(D, B, H)}
    if op == "LSTM":
        feeds["initial_c"] = u(D, B, H, s=2.0)
    names = [n if n in feeds or n in weights else "" for n in INPUTS[:8 if op == "LSTM" else 6]]
    while not names[-1]:
        names.pop()
    node = helper.make_node(op, names, OUTPUTS[op], name=f"{op.lower()}0", hidden_size=H,
                            direction=direction, **attributes)
    initializers = {k: numpy_helper.to_array(numpy_helper.from_array(v, k))
                    for k, v in weights.items()}  # read-only, as the interpreter holds them
    return node, initializers, feeds


def onnxruntime(node, initializers, feeds):
    graph = helper.make_graph(
        [node], node.name,
        [helper.make_tensor_value_info(n, TensorProto.INT32 if n == "sequence_lens"
                                       else TensorProto.FLOAT, None) for n in feeds],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in node.output],
        [numpy_helper.from_array(v, k) for k, v in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=8)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def batch_first(node, feeds, expected):
    """The node, feeds and expected outputs in layout 1."""
    node = helper.make_node(node.op_type, node.input, node.output, name=node.name, layout=1,
                            **{a.name: helper.get_attribute_value(a) for a in node.attribute})
    moved = {k: v.transpose(1, 0, 2) if k in ("X", "initial_h", "initial_c") else v
             for k, v in feeds.items()}
    Y, *states = expected
    return node, moved, [Y.transpose(2, 0, 1, 3)] + [s.transpose(1, 0, 2) for s in states]


def arguments(node, initializers, feeds):
    values = {**initializers, **feeds}
    return [values.get(name) if name else None for name in node.input]


def assert_outputs(what, node, actual, expected, tol):
    assert len(actual) == len(expected) == len(node.output)
    for name, a, e in zip(node.output, actual, expected):
        assert a.dtype == np.float32
        assert_close(f"{what} {node.op_type} {name}", a, e, tol)


@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("T, B", [(1, 1), (7, 3), (12, 5)])
@pytest.mark.parametrize("op, extra", CELLS)
def test_fused_matches_onnxruntime_and_its_twin(op, extra, T, B, layout):
    node, initializers, feeds = random_node(op, T, B, seed=T * 10 + B, **extra)
    expected = onnxruntime(node, initializers, feeds)
    if layout:
        node, feeds, expected = batch_first(node, feeds, expected)
    args = arguments(node, initializers, feeds)
    for engine in ("fast", "fast-int8"):
        bound = bind_node(node, engine=engine, constants=initializers)
        assert bound.engine == engine and bound.fallback is None
        actual = bound(args)
        assert_outputs(f"{engine} vs onnxruntime", node, actual, expected, TOLERANCE[engine])
        twin = FusedNode(op, {"hidden_size": H, "layout": layout, **extra}, node.input,
                         quantize=engine[5:] or None, twin=True)
        assert_outputs(f"{engine} vs twin", node, actual, twin(*args), KERNEL)


@pytest.mark.parametrize("direction", ["reverse", "bidirectional"])
@pytest.mark.parametrize("op, extra", CELLS)
def test_other_directions_match_onnxruntime(op, extra, direction):
    if "activations" in extra and direction == "bidirectional":
        extra = {"activations": extra["activations"] * 2}
    node, initializers, feeds = random_node(op, 6, 4, direction=direction, seed=3, **extra)
    expected = onnxruntime(node, initializers, feeds)
    for engine in ("fast", "fast-int8"):
        actual = bind_node(node, engine=engine, constants=initializers)(
            arguments(node, initializers, feeds))
        assert_outputs(f"{engine} vs onnxruntime", node, actual, expected, TOLERANCE[engine])


@pytest.mark.parametrize("op, extra", CELLS[:3])
def test_zero_length_keeps_the_initial_state_as_the_reference(op, extra):
    """onnxruntime gives a zero Y_h for a length of 0; the reference keeps the initial state."""
    node, initializers, feeds = random_node(op, 5, 3, direction="bidirectional", seed=4,
                                            zero_length=True, **extra)
    args = arguments(node, initializers, feeds)
    Y, *states = bind_node(node, engine="fast")(args)
    assert_outputs("fast vs numba", node, [Y, *states], bind_node(node)(args), FP32)
    assert not Y[:, :, 2].any()
    for state, initial in zip(states, [feeds["initial_h"], feeds.get("initial_c")]):
        np.testing.assert_array_equal(state[:, 2], initial[:, 2])


def test_weights_are_packed_at_bind_time_and_again_for_other_arrays():
    node, initializers, feeds = random_node("GRU", 4, 2, seed=5, linear_before_reset=1)
    bound = bind_node(node, engine="fast", constants=initializers)
    packed = bound.fn.packed
    assert packed and bound.fn.weights[0] is initializers["W"]
    first = bound(arguments(node, initializers, feeds))
    assert bound.fn.packed is packed  # the same arrays: not packed again
    doubled = {k: v * 2 for k, v in initializers.items()}
    second = bound(arguments(node, doubled, feeds))
    assert bound.fn.packed is not packed
    assert compare("Y", first[0], second[0]).max_abs > 100 * FP32.atol
    assert_outputs("repacked vs onnxruntime", node, second,
                   onnxruntime(node, doubled, feeds), FP32)
    unbound = bind_node(node, engine="fast")  # weights not known: packed on the first call
    assert not unbound.fn.packed
    assert_outputs("packed on call", node, unbound(arguments(node, initializers, feeds)),
                   first, KERNEL)


@pytest.mark.parametrize("op, attributes, name", [
    ("LSTM", {"clip": 0.5}, "clip"),
    ("LSTM", {"input_forget": 1}, "input_forget"),
    ("LSTM", {"peepholes": True}, "P"),
    ("GRU", {"clip": 2.0}, "clip"),
    ("RNN", {"activations": ["Relu", "Tanh"], "direction": "bidirectional"}, "activations"),
])
def test_what_it_cannot_run_raises_and_bind_node_falls_back(op, attributes, name):
    node, initializers, feeds = random_node(op, 5, 3, seed=6, **attributes)
    node_attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    node_attributes = {k: v.decode() if isinstance(v, bytes) else v
                       for k, v in node_attributes.items()}
    with pytest.raises(UnsupportedError, match=rf"\b{name}\b"):
        FusedNode(op, node_attributes, node.input)
    args = arguments(node, initializers, feeds)
    for engine in ("fast", "fast-int8"):
        bound = bind_node(node, engine=engine, constants=initializers)
        assert bound.engine == "numba" and name in bound.fallback
        assert_outputs("fallback vs numba", node, bound(args), bind_node(node)(args), KERNEL)


def test_bad_inputs_raise_input_errors():
    node, initializers, feeds = random_node("LSTM", 3, 2, seed=7)
    bound = bind_node(node, engine="fast", constants=initializers)
    args = arguments(node, initializers, {**feeds, "X": np.zeros((3, 2, I + 1), np.float32)})
    with pytest.raises(InputError, match=r"X has shape \(3, 2, 7\).*input_size 6"):
        bound(args)
    with pytest.raises(InputError, match=r"sequence_lens \[4, 1\] must lie in \[0, 3\]"):
        bound(arguments(node, initializers, {**feeds, "sequence_lens": np.array([4, 1])}))
    with pytest.raises(InputError, match=r"R has shape \(1, 76, 5\)"):
        bind_node(node, engine="fast", constants={**initializers,
                                                  "R": np.zeros((1, 4 * H, 5), np.float32)})
