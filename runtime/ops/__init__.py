"""The ONNX recurrent operators LSTM, GRU and RNN: numba kernels with plain numpy twins.

One operator per module (``lstm``, ``gru``, ``rnn``), each exporting the operator and its
``*_numpy`` twin; ``common`` holds what they share. Nothing is re-exported here, so that
``ops.lstm`` stays the module rather than being shadowed by the function of that name.
``rnnedge.runtime.reference`` runs an ONNX node on them.
"""
