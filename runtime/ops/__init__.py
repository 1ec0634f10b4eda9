"""The ONNX recurrent operators LSTM, GRU and RNN: numba kernels with plain numpy twins.

One operator per module (``lstm``, ``gru``, ``rnn``), each exporting the operator, its
``*_numpy`` twin and its cell equations (``lstm_unit``, ``gru_reset``/``gru_unit``,
``rnn_unit``), which every kernel here runs; ``common`` holds what they share (argument
checks, the activation table, ``schedule``, the loop order). The fused kernels build on
them: ``fused_layer`` (one layer's step), ``fused_stack`` (a whole stack of layers with
its head, every fused engine's kernel) and ``fused_node`` (any single recurrent node). Nothing is re-exported here, so that
``ops.lstm`` stays the module rather than being shadowed by the function of that name.
``rnnedge.runtime.reference`` runs an ONNX node on them.
"""
