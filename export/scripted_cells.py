"""ONNX for ``nn.GRUCell`` and ``nn.RNNCell`` stepped by a ``torch.jit.script``ed loop.

torch 2.13's TorchScript exporter turns a scripted loop into an ONNX ``Loop`` and
``nn.LSTMCell`` inside it into an ONNX ``LSTM`` step, but it has no symbolic for
``aten::gru_cell``, ``aten::rnn_tanh_cell`` or ``aten::rnn_relu_cell``, and its
``aten::__contains_`` (the cells' ``input.dim() not in (1, 2)`` check) fails once the
tuple has been folded into a constant tensor. ``scripted_cells(opset)`` registers the four
for the length of one export, through ``torch.onnx.register_custom_op_symbolic``, and
removes them after. Each cell is written as its equations in plain ONNX operators
(``Gemm``, ``Sigmoid``, ``Tanh``, ``Relu``, ``Add``, ``Mul``, ``Sub``), PyTorch's gate
order r, z, n and its GRU (ONNX ``linear_before_reset=1``):

    r = sigmoid(x W_ir' + b_ir + h W_hr' + b_hr)
    z = sigmoid(x W_iz' + b_iz + h W_hz' + b_hz)
    n = tanh(x W_in' + b_in + r * (h W_hn' + b_hn))
    h' = (1 - z) * n + z * h = n + z * (h - n)
"""

import contextlib


def _linear(g, x, weight, bias):
    """x (B, I) @ weight (G, I)' + bias (G,), the bias absent when the cell has none."""
    if bias.node().mustBeNone():
        return g.op("Gemm", x, weight, transB_i=1)
    return g.op("Gemm", x, weight, bias, transB_i=1)


def _gates(g, y):
    """(B, 3H) -> three (B, H) blocks in PyTorch's order (r, z, n)."""
    import torch

    blocks = g.op("Reshape", y, g.op("Constant", value_t=torch.tensor([0, 3, -1])))  # (B, 3, H)
    return [g.op("Gather", blocks, g.op("Constant", value_t=torch.tensor(i)), axis_i=1)
            for i in range(3)]


def gru_cell(g, x, h, w_ih, w_hh, b_ih, b_hh):
    """aten::gru_cell: one step of PyTorch's GRU."""
    x_r, x_z, x_n = _gates(g, _linear(g, x, w_ih, b_ih))
    h_r, h_z, h_n = _gates(g, _linear(g, h, w_hh, b_hh))
    r = g.op("Sigmoid", g.op("Add", x_r, h_r))
    z = g.op("Sigmoid", g.op("Add", x_z, h_z))
    n = g.op("Tanh", g.op("Add", x_n, g.op("Mul", r, h_n)))
    return g.op("Add", n, g.op("Mul", z, g.op("Sub", h, n)))


def _rnn_cell(activation):
    def rnn_cell(g, x, h, w_ih, w_hh, b_ih, b_hh):
        """aten::rnn_{tanh,relu}_cell: h' = act(x W_ih' + b_ih + h W_hh' + b_hh)."""
        return g.op(activation, g.op("Add", _linear(g, x, w_ih, b_ih), _linear(g, h, w_hh, b_hh)))
    return rnn_cell


def _constant(value):
    """The flat list of a constant's values (a folded tensor or a list of constants), or None."""
    node = value.node()
    if node.kind() == "onnx::Constant":
        return node.t("value").flatten().tolist()
    if node.kind() == "prim::ListConstruct":
        items = [_constant(v) for v in node.inputs()]
        return None if any(i is None for i in items) else [x for item in items for x in item]
    return None


def contains(g, sequence, element):
    """aten::__contains_ of constants, whether the list is still a list or already a tensor."""
    import torch
    from torch.onnx.errors import SymbolicValueError

    items, found = _constant(sequence), _constant(element)
    if items is None or found is None or len(found) != 1:
        raise SymbolicValueError("Unsupported: ONNX export of __contains__ for non-constant list "
                                 "or element.", sequence)
    return g.op("Constant", value_t=torch.tensor(found[0] in items))


SYMBOLICS = {"aten::gru_cell": gru_cell, "aten::rnn_tanh_cell": _rnn_cell("Tanh"),
             "aten::rnn_relu_cell": _rnn_cell("Relu"), "aten::__contains_": contains}


@contextlib.contextmanager
def scripted_cells(opset):
    """The symbolics above, registered for one TorchScript export at ``opset``."""
    from torch.onnx import register_custom_op_symbolic, unregister_custom_op_symbolic

    for name, symbolic in SYMBOLICS.items():
        register_custom_op_symbolic(name, symbolic, opset)
    try:
        yield
    finally:
        for name in SYMBOLICS:
            unregister_custom_op_symbolic(name, opset)
