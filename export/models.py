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
    state = ["layers", "batch", H]
    inputs = [tensor("tokens", INT64, ["batch", "time"]), tensor("h0", FLOAT, state)]
    outputs = [tensor("logits", FLOAT, ["batch", "time", config["vocab_size"]]),
               tensor("hn", FLOAT, state)]
    if cell == "lstm":
        g.op("Concat", cs, outputs=["cn"], axis=0)
        inputs.append(tensor("c0", FLOAT, state))
        outputs.append(tensor("cn", FLOAT, state))
    return g.model("rnnedge_charlm", inputs, outputs, metadata)
