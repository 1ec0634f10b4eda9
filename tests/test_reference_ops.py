"""The LSTM, GRU and RNN reference on random weights: against onnxruntime, numba kernel
against its numpy twin, and the typed errors of ``run_node``.

onnxruntime 1.x refuses ``layout=1`` on CPU ("Batchwise recurrent operations (layout == 1)
are not supported"), so layout 1 is checked against onnxruntime run on the transposed
layout-0 inputs. For a ``sequence_lens`` entry of 0 onnxruntime returns a zero Y_h where
the reference keeps the initial state; that case is compared without an initial state.
"""

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from rnnedge.runtime.errors import InputError, UnsupportedError
from rnnedge.runtime.reference import run_node
from rnnedge.runtime.tolerances import FP32, KERNEL, assert_close, compare

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
INPUTS = {"LSTM": ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"),
          "GRU": ("X", "W", "R", "B", "sequence_lens", "initial_h"),
          "RNN": ("X", "W", "R", "B", "sequence_lens", "initial_h")}
OUTPUTS = {"LSTM": ("Y", "Y_h", "Y_c"), "GRU": ("Y", "Y_h"), "RNN": ("Y", "Y_h")}
DIRECTIONS = ("forward", "reverse", "bidirectional")


def random_feeds(op, seq=5, batch=3, input_size=4, hidden=7, direction="forward",
                 lengths=None, states=True, peepholes=False, seed=0):
    """Layout-0 inputs with weights scaled so the gates are neither saturated nor flat."""
    rng = np.random.default_rng(seed)
    D, G = (2 if direction == "bidirectional" else 1), GATES[op]
    uniform = lambda *shape: rng.uniform(-1, 1, shape).astype(np.float32)  # noqa: E731
    feeds = {"X": rng.standard_normal((seq, batch, input_size)).astype(np.float32),
             "W": uniform(D, G * hidden, input_size) / np.float32(np.sqrt(input_size)),
             "R": uniform(D, G * hidden, hidden) / np.float32(np.sqrt(hidden)),
             "B": uniform(D, 2 * G * hidden) / 2}
    if lengths is not None:
        feeds["sequence_lens"] = np.array(lengths, np.int32)
    if states:
        feeds["initial_h"] = uniform(D, batch, hidden)
        if op == "LSTM":
            feeds["initial_c"] = uniform(D, batch, hidden)
    if peepholes:
        feeds["P"] = uniform(D, 3 * hidden)
    return feeds


def make_node(op, feeds, **attributes):
    names = [name if name in feeds else "" for name in INPUTS[op]]
    while names[-1] == "":
        names.pop()
    attributes = {k: v for k, v in attributes.items() if v is not None}
    return helper.make_node(op, names, list(OUTPUTS[op]), name=f"{op.lower()}0", **attributes)


def reference(op, feeds, engine="numba", **attributes):
    node = make_node(op, feeds, **attributes)
    return run_node(node, [feeds.get(name) for name in node.input], engine=engine)


def onnxruntime(op, feeds, **attributes):
    node = make_node(op, feeds, **attributes)
    types = {name: TensorProto.INT32 if name == "sequence_lens" else TensorProto.FLOAT
             for name in feeds}
    graph = helper.make_graph(
        [node], op, [helper.make_tensor_value_info(n, types[n], None) for n in feeds],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in OUTPUTS[op]])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=8)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def assert_all_close(op, actual, expected, tol=FP32):
    assert len(actual) == len(expected) == len(OUTPUTS[op])
    for name, a, e in zip(OUTPUTS[op], actual, expected):
        assert a.dtype == np.float32
        assert_close(f"{op} {name}", a, e, tol)


def batch_first(feeds):
    """Layout-0 feeds as layout 1: X (N, T, I), states (N, D, H)."""
    moved = {"X": (1, 0, 2), "initial_h": (1, 0, 2), "initial_c": (1, 0, 2)}
    return {k: v.transpose(moved[k]) if k in moved else v for k, v in feeds.items()}


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("op", GATES)
def test_matches_onnxruntime(op, direction):
    feeds = random_feeds(op, direction=direction, lengths=[5, 3, 1], seed=1)
    ours = reference(op, feeds, hidden_size=7, direction=direction)
    assert_all_close(op, ours, onnxruntime(op, feeds, hidden_size=7, direction=direction))
    Y = ours[0]  # (T, D, N, H): zero after each entry's length
    assert not Y[3:, :, 1].any() and not Y[1:, :, 2].any()
    assert np.abs(Y[:3, :, 1]).min() > 0


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("op", GATES)
def test_layout_1_matches_onnxruntime_on_transposed_inputs(op, direction):
    feeds = random_feeds(op, direction=direction, lengths=[2, 5, 4], seed=2)
    ours = reference(op, batch_first(feeds), hidden_size=7, direction=direction, layout=1)
    Y, *states = onnxruntime(op, feeds, hidden_size=7, direction=direction)
    expected = [Y.transpose(2, 0, 1, 3)] + [s.transpose(1, 0, 2) for s in states]
    assert_all_close(op, ours, expected)


@pytest.mark.parametrize("hidden", [1, 7, 64])
@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("op", GATES)
def test_sizes_match_onnxruntime(op, batch, hidden):
    lengths = np.random.default_rng(batch * hidden).integers(1, 7, batch)
    lengths[0] = 6  # one entry runs the full sequence
    feeds = random_feeds(op, seq=6, batch=batch, input_size=3, hidden=hidden,
                         direction="bidirectional", lengths=lengths, seed=3)
    attributes = dict(hidden_size=hidden, direction="bidirectional")
    assert_all_close(op, reference(op, feeds, **attributes), onnxruntime(op, feeds, **attributes))


@pytest.mark.parametrize("op", GATES)
def test_zero_length_matches_onnxruntime_without_initial_state(op):
    feeds = random_feeds(op, seq=4, direction="bidirectional", lengths=[4, 0, 2], states=False)
    attributes = dict(hidden_size=7, direction="bidirectional")
    ours = reference(op, feeds, **attributes)
    assert_all_close(op, ours, onnxruntime(op, feeds, **attributes))
    assert not ours[0][:, :, 1].any()


@pytest.mark.parametrize("op", GATES)
def test_zero_length_keeps_the_initial_state(op):
    feeds = random_feeds(op, seq=4, direction="bidirectional", lengths=[4, 0, 2])
    Y, *states = reference(op, feeds, hidden_size=7, direction="bidirectional")
    assert not Y[:, :, 1].any()
    for state, initial in zip(states, [feeds["initial_h"], feeds.get("initial_c")]):
        np.testing.assert_array_equal(state[:, 1], initial[:, 1])


def test_gru_linear_before_reset_matches_onnxruntime_and_matters():
    feeds = random_feeds("GRU", seq=6, direction="bidirectional", lengths=[6, 4, 1], seed=4)
    results = []
    for flag in (0, 1):
        attributes = dict(hidden_size=7, direction="bidirectional", linear_before_reset=flag)
        results.append(reference("GRU", feeds, **attributes))
        assert_all_close("GRU", results[-1], onnxruntime("GRU", feeds, **attributes))
    assert compare("Y", results[0][0], results[1][0]).max_abs > 100 * FP32.atol


@pytest.mark.parametrize("input_forget", [0, 1])
def test_lstm_peepholes_and_clip_match_onnxruntime(input_forget):
    feeds = random_feeds("LSTM", seq=6, direction="bidirectional", lengths=[6, 2, 5],
                         peepholes=True, seed=5)
    feeds["X"] *= 3  # push the pre-activations past the clip
    attributes = dict(hidden_size=7, direction="bidirectional", input_forget=input_forget)
    clipped = reference("LSTM", feeds, clip=0.5, **attributes)
    assert_all_close("LSTM", clipped, onnxruntime("LSTM", feeds, clip=0.5, **attributes))
    unclipped = reference("LSTM", feeds, **attributes)
    assert compare("Y", clipped[0], unclipped[0]).max_abs > 100 * FP32.atol


@pytest.mark.parametrize("op", ["GRU", "RNN"])
def test_clip_matches_onnxruntime(op):
    feeds = random_feeds(op, seq=5, lengths=[5, 3, 2], seed=6)
    feeds["X"] *= 3
    attributes = dict(hidden_size=7, clip=0.3)
    clipped = reference(op, feeds, **attributes)
    assert_all_close(op, clipped, onnxruntime(op, feeds, **attributes))
    assert compare("Y", clipped[0], reference(op, feeds, hidden_size=7)[0]).max_abs > 0.01


@pytest.mark.parametrize("activations", [["Relu"], ["Sigmoid"], ["Tanh"], ["Relu", "Sigmoid"]])
def test_rnn_activations_match_onnxruntime(activations):
    direction = "bidirectional" if len(activations) == 2 else "forward"
    feeds = random_feeds("RNN", direction=direction, lengths=[5, 4, 2], seed=7)
    attributes = dict(hidden_size=7, direction=direction, activations=activations)
    assert_all_close("RNN", reference("RNN", feeds, **attributes),
                     onnxruntime("RNN", feeds, **attributes))


TWIN_CASES = [("LSTM", {}), ("LSTM", {"clip": 0.7, "input_forget": 1}),
              ("GRU", {"linear_before_reset": 0}),
              ("GRU", {"linear_before_reset": 1, "clip": 0.7}),
              ("RNN", {}), ("RNN", {"activations": ["Relu"]})]


@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("op,extra", TWIN_CASES)
def test_numba_kernel_matches_numpy_twin(op, extra, direction, layout):
    if direction == "bidirectional" and "activations" in extra:
        extra = {"activations": extra["activations"] * 2}
    feeds = random_feeds(op, seq=20, batch=4, hidden=16, direction=direction,
                         lengths=[20, 0, 7, 13], peepholes=op == "LSTM", seed=8)
    if layout:
        feeds = batch_first(feeds)
    attributes = dict(hidden_size=16, direction=direction, layout=layout, **extra)
    fast = reference(op, feeds, engine="numba", **attributes)
    assert_all_close(op, fast, reference(op, feeds, engine="numpy", **attributes), KERNEL)


@pytest.mark.parametrize("engine", ["numba", "numpy"])
@pytest.mark.parametrize("op", GATES)
def test_float64_non_contiguous_and_read_only_inputs(op, engine):
    feeds = random_feeds(op, direction="bidirectional", lengths=[5, 1, 3])
    expected = reference(op, feeds, engine, hidden_size=7, direction="bidirectional")
    odd = {}
    for name, value in feeds.items():
        if name == "sequence_lens":
            odd[name] = value.astype(np.int64)
        else:  # float64, every other element of a wider array, then read-only
            wide = np.repeat(value.astype(np.float64), 2, axis=-1)[..., ::2]
            wide.flags.writeable = False
            odd[name] = wide
    assert not odd["W"].flags.c_contiguous
    actual = reference(op, odd, engine, hidden_size=7, direction="bidirectional")
    for a, e in zip(actual, expected):
        np.testing.assert_array_equal(a, e)


def test_initializer_weights_are_transposed_once():
    from onnx import numpy_helper

    from rnnedge.runtime.ops import common

    feeds = random_feeds("GRU", lengths=[5, 3, 2])
    initializers = {k: numpy_helper.to_array(numpy_helper.from_array(v)) if k in "WRB" else v
                    for k, v in feeds.items()}
    W = initializers["W"]
    assert not W.flags.writeable and common.transposed(W) is common.transposed(W)
    for a, e in zip(reference("GRU", initializers, hidden_size=7),
                    reference("GRU", feeds, hidden_size=7)):
        np.testing.assert_array_equal(a, e)
    key = id(W)
    del W, initializers
    assert key not in common._TRANSPOSED  # forgotten with the array


@pytest.mark.parametrize("direction, expected", [
    (0, [[0, 0, 0], [0, 0, 2], [0, 1, 0], [0, 1, 2], [0, 2, 0]]),
    (1, [[0, 2, 0], [0, 1, 2], [0, 1, 0], [0, 0, 2], [0, 0, 0]]),
    (2, [[0, 0, 0], [0, 0, 2], [0, 1, 0], [0, 1, 2], [0, 2, 0],
         [1, 2, 0], [1, 1, 2], [1, 1, 0], [1, 0, 2], [1, 0, 0]]),
])
def test_schedule_visits_each_valid_step_in_order(direction, expected):
    """Rows (d, t, b): step-major, batch entry 1 (length 0) never, entry 2 its first 2 steps,
    reversed from each entry's own last step."""
    from rnnedge.runtime.ops import common

    visits = common.schedule(np.array([3, 0, 2], np.int32), 4, 2 if direction == 2 else 1,
                             direction)
    assert visits.tolist() == expected


def test_writable_weights_are_read_on_every_call():
    feeds = random_feeds("LSTM", lengths=[5, 3, 2])
    before = reference("LSTM", feeds, hidden_size=7)
    feeds["R"] *= 2  # same array object, new values
    after = reference("LSTM", feeds, hidden_size=7)
    assert compare("Y", before[0], after[0]).max_abs > 100 * FP32.atol
    assert_all_close("LSTM", after, onnxruntime("LSTM", feeds, hidden_size=7))


def test_run_node_aligns_inputs_and_outputs():
    feeds = random_feeds("LSTM", lengths=[5, 2, 4], states=False)
    node = helper.make_node("LSTM", ["X", "W", "R", "", "sequence_lens"], ["", "Y_h"],
                            hidden_size=7)
    short = run_node(node, [feeds["X"], feeds["W"], feeds["R"], feeds["B"]])  # B ignored: ""
    full = run_node(node, [feeds["X"], feeds["W"], feeds["R"], None, feeds["sequence_lens"]])
    assert short[0] is None and full[0] is None and len(full) == 2
    no_bias = {k: v for k, v in feeds.items() if k != "B"}
    _, Y_h, _ = onnxruntime("LSTM", no_bias, hidden_size=7)
    assert_close("Y_h", full[1], Y_h)
    assert compare("lengths matter", short[1], full[1]).max_abs > 100 * FP32.atol


def _lstm(**attributes):
    return helper.make_node("LSTM", ["X", "W", "R"], ["Y"], name="cell",
                            **{"hidden_size": 7, **attributes})


@pytest.mark.parametrize("node,message", [
    (_lstm(activations=["Relu", "Tanh", "Tanh"]), r"LSTM: activations=\['Relu', 'Tanh', 'Tanh'\]"),
    (_lstm(activation_alpha=[0.5]), r"attribute activation_alpha=\[0.5"),
    (_lstm(foo=1), "attribute foo=1 is not supported"),
    (_lstm(direction="sideways"), "direction='sideways'"),
    (_lstm(layout=2), "layout=2"),
    (_lstm(clip=-1.0), "clip=-1.0"),
    (_lstm(input_forget=2), "input_forget=2"),
    (helper.make_node("RNN", ["X", "W", "R"], ["Y"], hidden_size=7, activations=["Elu"]),
     r"RNN: activations=\['Elu'\]"),
    (helper.make_node("Scan", ["X", "W", "R"], ["Y"]), "not Scan"),
    (helper.make_node("LSTM", ["X", "W", "R"], ["Y"]), "no hidden_size"),
])
def test_unsupported_nodes_raise(node, message):
    feeds = random_feeds(node.op_type if node.op_type in GATES else "LSTM")
    with pytest.raises(UnsupportedError, match=message):
        run_node(node, [feeds["X"], feeds["W"], feeds["R"]])


@pytest.mark.parametrize("change,message", [
    ({"W": np.zeros((1, 28, 5), np.float32)}, r"W has shape \(1, 28, 5\), expected \(1, 28, 4\)"),
    ({"R": np.zeros((1, 28, 6), np.float32)}, r"R has shape \(1, 28, 6\), expected \(1, 28, 7\)"),
    ({"initial_h": np.zeros((1, 2, 7), np.float32)},
     r"initial_h has shape \(1, 2, 7\), expected \(1, 3, 7\)"),
    ({"sequence_lens": np.array([5, 6, 1], np.int32)},
     r"sequence_lens \[5, 6, 1\] must lie in \[0, 5\]"),
    ({"X": np.zeros((5, 3), np.float32)}, r"X has shape \(5, 3\)"),
    ({"X": None}, "required input X is missing"),
])
def test_mismatched_inputs_raise(change, message):
    feeds = {**random_feeds("LSTM", lengths=[5, 5, 5]), **change}
    node = helper.make_node("LSTM", list(INPUTS["LSTM"][:6]), ["Y"], hidden_size=7)
    with pytest.raises(InputError, match=message):
        run_node(node, [feeds[name] for name in node.input])


def test_malformed_node_and_input_list_raise():
    feeds = random_feeds("GRU")
    args = [feeds["X"], feeds["W"], feeds["R"]]
    four_outputs = helper.make_node("GRU", ["X", "W", "R"], ["Y", "Y_h", "Y_c", "Z"],
                                    hidden_size=7)
    with pytest.raises(InputError, match="4 outputs; the operator takes at most 6 and 2"):
        run_node(four_outputs, args)
    node = helper.make_node("GRU", ["X", "W", "R"], ["Y"], hidden_size=7)
    with pytest.raises(InputError, match="4 inputs given for a node with 3"):
        run_node(node, args + [feeds["B"]])


def test_unknown_engine_raises():
    with pytest.raises(UnsupportedError, match="engine='cuda'"):
        run_node(_lstm(), [], engine="cuda")
