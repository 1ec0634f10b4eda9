"""The ONNX graphs of the two rnnedge tasks, built from a checkpoint's weights.

charlm: tokens (batch, time) int64, h0 [, c0] (layers, batch, hidden)
        -> logits (batch, time, vocab), hn [, cn]: the state in and out makes streaming explicit.
sentiment: tokens (batch, time) int64, lengths (batch,) int64
        -> logit (batch,), prob (batch,): ``sequence_lens`` of the native operator stops
        each review at its true length, so padding cannot change the answer.
"""

import numpy as np

from .graph import (FLOAT, INT64, Graph, embed_time_major, linear, merge_directions, layer_slice,
                    onnx_weights, recurrent_layer, tensor)


def _numpy_state(state_dict):
    return {k: v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)
            for k, v in state_dict.items()}


def charlm_graph(config, state_dict, metadata, linear_before_reset=1):
    """Embedding, recurrent stack with explicit state, linear layer to the vocabulary."""
    sd = _numpy_state(state_dict)
    cell, H, L = config["cell"], config["hidden_size"], config["num_layers"]
    g = Graph()
    x = embed_time_major(g, "tokens", sd["embedding.weight"])  # (T, B, E)
    hs, cs = [], []
    for layer in range(L):
        h0 = layer_slice(g, "h0", layer, 1)
        c0 = layer_slice(g, "c0", layer, 1) if cell == "lstm" else ""
        Y, Y_h, Y_c = recurrent_layer(
            g, x, onnx_weights(sd, "rnn", layer, cell, H), cell, H, h0=h0, c0=c0,
            nonlinearity=config.get("nonlinearity", "tanh"), linear_before_reset=linear_before_reset)
        x = merge_directions(g, Y, 1)  # (T, B, H)
        hs.append(Y_h)
        cs.append(Y_c)
    out = g.op("Transpose", [x], perm=[1, 0, 2])  # (B, T, H)
    linear_out = linear(g, out, sd["fc.weight"], sd["fc.bias"])
    g.op("Identity", [linear_out], outputs=["logits"])  # (B, T, V)
    g.op("Concat", hs, outputs=["hn"], axis=0)  # (L, B, H)
    state = [L, "batch", H]  # a fixed layer count: stream() makes zero states from the graph
    inputs = [tensor("tokens", INT64, ["batch", "time"]), tensor("h0", FLOAT, state)]
    outputs = [tensor("logits", FLOAT, ["batch", "time", config["vocab_size"]]),
               tensor("hn", FLOAT, state)]
    if cell == "lstm":
        g.op("Concat", cs, outputs=["cn"], axis=0)
        inputs.append(tensor("c0", FLOAT, state))
        outputs.append(tensor("cn", FLOAT, state))
    return g.model("rnnedge_charlm", inputs, outputs, metadata)


def _valid_mask(g, lengths):
    """(T, B, 1) bool: position t of review b is real, t < lengths[b]."""
    T = g.op("Gather", [g.op("Shape", ["tokens"]), g.const("one", np.array(1, np.int64))])
    steps = g.op("Range", [g.const("zero", np.array(0, np.int64)), T,
                           g.const("one", np.array(1, np.int64))])  # (T,)
    t = g.op("Unsqueeze", [steps, g.const("axes", np.array([1], np.int64))])  # (T, 1)
    lens = g.op("Unsqueeze", [lengths, g.const("axes", np.array([0], np.int64))])  # (1, B)
    return g.op("Unsqueeze", [g.op("Less", [t, lens]), g.const("axes", np.array([2], np.int64))])


def _pool(g, head, x, Y_h, num_dir):
    """The many-to-one head's features (B, D*H) from outputs x (T, B, D*H) of the last layer."""
    if head == "last":  # forward state at the last real token; backward state at token 0
        t = g.op("Transpose", [Y_h], perm=[1, 0, 2])  # (B, D, H)
        return g.op("Reshape", [t, g.const("shape", np.array([0, -1], np.int64))])
    if head == "mean":  # onnxruntime writes zeros past each length, as the spec's reference
        total = g.op("ReduceSum", [x, g.const("axes", np.array([0], np.int64))], keepdims=0)
        n = g.op("Unsqueeze", [g.op("Cast", ["lengths"], to=FLOAT),
                               g.const("axes", np.array([1], np.int64))])  # (B, 1)
        return g.op("Div", [total, n])
    masked = g.op("Where", [_valid_mask(g, "lengths"), x,
                            g.const("neg_inf", np.array(-np.inf, np.float32))])
    return g.op("ReduceMax", [masked], axes=[0], keepdims=0)


def sentiment_graph(config, state_dict, metadata, linear_before_reset=1):
    """Embedding, recurrent stack stopped at each true length, head, linear, sigmoid."""
    sd = _numpy_state(state_dict)
    cell, H, L = config["cell"], config["hidden_size"], config["num_layers"]
    num_dir = 2 if config["bidirectional"] else 1
    direction = "bidirectional" if num_dir == 2 else "forward"
    g = Graph()
    seq_lens = g.op("Cast", ["lengths"], to=6)  # int32, as the operator wants
    x = embed_time_major(g, "tokens", sd["embedding.weight"])  # (T, B, E)
    for layer in range(L):
        weights = onnx_weights(sd, "rnn", layer, cell, H, bidirectional=num_dir == 2)
        Y, Y_h, _ = recurrent_layer(g, x, weights, cell, H, direction=direction, seq_lens=seq_lens,
                                    nonlinearity=config.get("nonlinearity", "tanh"),
                                    linear_before_reset=linear_before_reset)
        x = merge_directions(g, Y, num_dir)  # (T, B, D*H)
    feat = _pool(g, config["head"], x, Y_h, num_dir)  # (B, D*H)
    logit = g.op("Squeeze", [linear(g, feat, sd["fc.weight"], sd["fc.bias"]),
                             g.const("axes", np.array([1], np.int64))], outputs=["logit"])
    g.op("Sigmoid", [logit], outputs=["prob"])
    inputs = [tensor("tokens", INT64, ["batch", "time"]), tensor("lengths", INT64, ["batch"])]
    outputs = [tensor("logit", FLOAT, ["batch"]), tensor("prob", FLOAT, ["batch"])]
    return g.model("rnnedge_sentiment", inputs, outputs, metadata)
