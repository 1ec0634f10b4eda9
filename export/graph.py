"""Building ONNX graphs by hand from PyTorch weights: native ``LSTM``/``GRU``/``RNN`` nodes.

Translating once, by hand, keeps the exported graph exactly what we intend (no
tracing, no unrolled loops, every attribute explicit) and puts the two silent
pitfalls in one visible place: the gate order (PyTorch i,f,g,o -> ONNX i,o,f,c for
LSTM; r,z,n -> z,r,h for GRU) and ``linear_before_reset=1`` for PyTorch's GRU.
Weights arrive as numpy arrays; this module imports neither torch nor train/.
"""

import numpy as np
from onnx import TensorProto, helper, numpy_helper

OPSET = 17

# Per cell: number of gates, and the PyTorch gate blocks in ONNX order.
GATE_ORDER = {"lstm": [0, 3, 1, 2], "gru": [1, 0, 2], "rnn": [0]}
ONNX_OP = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}


class Graph:
    """Accumulates nodes and initializers with unique names."""

    def __init__(self):
        self.nodes, self.initializers, self._count = [], [], 0

    def fresh(self, stem):
        self._count += 1
        return f"{stem}_{self._count}"

    def const(self, stem, array):
        name = self.fresh(stem)
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type, inputs, n_out=1, outputs=None, **attrs):
        outputs = outputs or [self.fresh(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=self.fresh(op_type), **attrs))
        return outputs if len(outputs) > 1 else outputs[0]

    def model(self, name, inputs, outputs, metadata):
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="rnnedge")
        helper.set_model_props(model, metadata)
        return model


def tensor(name, dtype, dims):
    """A graph input/output; string dims are dynamic axes."""
    return helper.make_tensor_value_info(name, dtype, dims)


FLOAT, INT64 = TensorProto.FLOAT, TensorProto.INT64


def _gates(w, cell, hidden):
    """Reorder the gate blocks of a PyTorch (G*H, ...) weight or (G*H,) bias into ONNX order."""
    blocks = w.reshape(len(GATE_ORDER[cell]), hidden, *w.shape[1:])
    return blocks[GATE_ORDER[cell]].reshape(w.shape)


def onnx_weights(state, prefix, layer, cell, hidden, bidirectional=False):
    """ONNX (W, R, B) of one layer from a PyTorch state dict (numpy arrays).

    W: (D, G*H, I), R: (D, G*H, H), B: (D, 2*G*H) with the input bias first.
    """
    suffixes = ["", "_reverse"] if bidirectional else [""]
    Ws, Rs, Bs = [], [], []
    for sfx in suffixes:
        get = lambda kind: np.asarray(state[f"{prefix}.{kind}_l{layer}{sfx}"], dtype=np.float32)
        Ws.append(_gates(get("weight_ih"), cell, hidden))
        Rs.append(_gates(get("weight_hh"), cell, hidden))
        Bs.append(np.concatenate([_gates(get("bias_ih"), cell, hidden),
                                  _gates(get("bias_hh"), cell, hidden)]))
    return np.stack(Ws), np.stack(Rs), np.stack(Bs)


def recurrent_layer(g, x, weights, cell, hidden, *, direction="forward", seq_lens="",
                    h0="", c0="", nonlinearity="tanh", linear_before_reset=1):
    """One native recurrent node on x (T, B, I); returns (Y (T, D, B, H), Y_h, Y_c or None).

    ``linear_before_reset`` is a parameter only so that tests can build the wrong
    GRU on purpose; PyTorch's GRU is 1.
    """
    W, R, B = (g.const(n, a) for n, a in zip("WRB", weights))
    attrs = {"hidden_size": hidden, "direction": direction}
    inputs = [x, W, R, B, seq_lens, h0]
    if cell == "lstm":
        inputs.append(c0)
        Y, Y_h, Y_c = g.op("LSTM", inputs, n_out=3, **attrs)
        return Y, Y_h, Y_c
    if cell == "gru":
        attrs["linear_before_reset"] = linear_before_reset
    else:
        num_dir = 2 if direction == "bidirectional" else 1  # the spec wants one per direction
        attrs["activations"] = ["Relu" if nonlinearity == "relu" else "Tanh"] * num_dir
    Y, Y_h = g.op(ONNX_OP[cell], inputs, n_out=2, **attrs)
    return Y, Y_h, None


def merge_directions(g, Y, num_dir):
    """(T, D, B, H) -> (T, B, D*H): the input of the next layer."""
    if num_dir == 1:
        return g.op("Squeeze", [Y, g.const("axes", np.array([1], np.int64))])
    t = g.op("Transpose", [Y], perm=[0, 2, 1, 3])  # (T, B, D, H)
    return g.op("Reshape", [t, g.const("shape", np.array([0, 0, -1], np.int64))])


def layer_slice(g, state, layer, num_dir):
    """Rows of layer ``layer`` of a (L*D, B, H) state input, as PyTorch lays them out."""
    starts = g.const("starts", np.array([layer * num_dir], np.int64))
    ends = g.const("ends", np.array([(layer + 1) * num_dir], np.int64))
    return g.op("Slice", [state, starts, ends, g.const("axes", np.array([0], np.int64))])


def embed_time_major(g, tokens, table):
    """Token ids (B, T) -> embeddings (T, B, E)."""
    emb = g.op("Gather", [g.const("embedding", table), tokens])  # (B, T, E)
    return g.op("Transpose", [emb], perm=[1, 0, 2])  # (T, B, E)


def linear(g, x, weight, bias):
    """x (..., in) @ weight.T + bias with a PyTorch (out, in) weight."""
    y = g.op("MatMul", [x, g.const("fc_weight", np.ascontiguousarray(weight.T))])
    return g.op("Add", [y, g.const("fc_bias", bias)])
