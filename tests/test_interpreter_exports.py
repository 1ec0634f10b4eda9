"""The numba engine on graphs users bring: torch.onnx.export of typical recurrent models.

A corpus of small user-style models (the recurrent layer and the glue around it that
people write) is exported with both of torch's exporters, once per module, and each
file must run through ``Interpreter`` and match onnxruntime at two input shapes other
than the export shape. A last test asserts that every operator the corpus produced is
one the interpreter implements, so an operator a new exporter starts to emit fails
here first. Needs torch; no data.

Where an exporter cannot take a model the case is left out, not marked: the dynamo
exporter rejects ``pack_padded_sequence`` (a data-dependent size) and ScriptModules,
so the tagger is exported by the TorchScript exporter only and the cell loop is
exported unscripted. Where the dynamo exporter fixes the time dim (it unrolls the
cell loop and the relu RNN step by step) the shapes vary only the batch.
"""

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from rnnedge.runtime.interpreter import IMPLEMENTED, Interpreter
from rnnedge.runtime.tolerances import FP32, assert_close

torch = pytest.importorskip("torch")
nn = torch.nn
H = 8          # hidden size of every model
EXPORT_BT = (2, 3)  # (batch, time) of the example inputs at export


class Forecaster(nn.Module):
    """nn.LSTM over 3 channels, a Linear head on the last step."""

    def __init__(self):
        super().__init__()
        self.lstm, self.head = nn.LSTM(3, H, batch_first=True), nn.Linear(H, 1)

    def forward(self, x):                      # (B, T, 3)
        y, _ = self.lstm(x)
        return self.head(y[:, -1])             # (B, 1)


class Tagger(nn.Module):
    """Bidirectional GRU over packed sequences; per-step log-probabilities."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(4, H, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * H, 5)

    def forward(self, x, lengths):             # (B, T, 4), (B,)
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True,
                                                   enforce_sorted=False)
        y, _ = self.gru(packed)
        y, _ = nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=x.shape[1])
        return self.head(y).log_softmax(-1)    # (B, T, 5)


class Streaming(nn.Module):
    """Two-layer GRU with its hidden state in and out, for step-by-step use."""

    def __init__(self):
        super().__init__()
        self.gru, self.head = nn.GRU(4, H, num_layers=2, batch_first=True), nn.Linear(H, 2)

    def forward(self, x, h):                   # (B, T, 4), (2, B, H)
        y, h = self.gru(x, h)
        return self.head(y), h


class CellLoop(nn.Module):
    """An LSTMCell stepped by a Python loop (scripted: an ONNX Loop)."""

    def __init__(self):
        super().__init__()
        self.cell, self.head = nn.LSTMCell(4, H), nn.Linear(H, 1)

    def forward(self, x):                      # (B, T, 4)
        h = torch.zeros(x.shape[0], self.cell.hidden_size, dtype=x.dtype)
        c = torch.zeros(x.shape[0], self.cell.hidden_size, dtype=x.dtype)
        for t in range(x.shape[1]):
            h, c = self.cell(x[:, t], (h, c))
        return self.head(h)


class ConvGRU(nn.Module):
    """Conv1d + BatchNorm front end into a GRU."""

    def __init__(self):
        super().__init__()
        self.conv, self.norm = nn.Conv1d(3, 6, 3, padding=1), nn.BatchNorm1d(6)
        self.gru, self.head = nn.GRU(6, H, batch_first=True), nn.Linear(H, 2)

    def forward(self, x):                      # (B, 3, T)
        z = torch.relu(self.norm(self.conv(x))).transpose(1, 2)  # (B, T, 6)
        y, _ = self.gru(z)
        return self.head(y[:, -1])


class CRNN(nn.Module):
    """Conv2d over a (frequency, time) map, flattened per step into a GRU; mean over time."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, stride=(2, 1), padding=1)
        self.gru, self.head = nn.GRU(4 * 3, H, batch_first=True), nn.Linear(H, 2)

    def forward(self, spec):                   # (B, 1, 6, T)
        z = torch.relu(self.conv(spec))        # (B, 4, 3, T)
        y, _ = self.gru(z.flatten(1, 2).transpose(1, 2))  # (B, T, H)
        return self.head(y).mean(1)


class AttentionPool(nn.Module):
    """LSTM, softmax attention over time, LayerNorm + GELU + Dropout head."""

    def __init__(self):
        super().__init__()
        self.lstm, self.score = nn.LSTM(4, H, batch_first=True), nn.Linear(H, 1)
        self.head = nn.Sequential(nn.LayerNorm(H), nn.Linear(H, H), nn.GELU(), nn.Dropout(0.1),
                                  nn.Linear(H, 3))

    def forward(self, x):                      # (B, T, 4)
        y, _ = self.lstm(x)                    # (B, T, H)
        w = torch.softmax(self.score(y).squeeze(-1), dim=1)  # (B, T)
        return self.head((w.unsqueeze(-1) * y).sum(1))


class ReluRNN(nn.Module):
    """nn.RNN(nonlinearity="relu"), every step and the last state out."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(4, H, nonlinearity="relu", batch_first=True)
        self.head = nn.Linear(H, 1)

    def forward(self, x):
        y, h = self.rnn(x)
        return self.head(y), h


class EmbedLSTM(nn.Module):
    """Embedding + two-layer LSTM classifier on the last layer's final state."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(20, 6)
        self.lstm, self.head = nn.LSTM(6, H, num_layers=2, batch_first=True), nn.Linear(H, 2)

    def forward(self, tokens):                 # (B, T) int64
        _, (h, _) = self.lstm(self.embed(tokens))
        return self.head(h[-1])


def _float(*shape):
    return lambda rng, b, t: rng.standard_normal([{"B": b, "T": t}.get(d, d) for d in shape]
                                                 ).astype(np.float32)


def _lengths(rng, b, t):
    return rng.integers(1, t + 1, b).astype(np.int64)


def _tokens(rng, b, t):
    return rng.integers(0, 20, (b, t)).astype(np.int64)


# name -> (module, {input: (make(rng, B, T), dynamic axes {dim: name})}, outputs)
CORPUS = {
    "forecaster": (Forecaster, {"x": (_float("B", "T", 3), {0: "B", 1: "T"})}, ["y"]),
    "tagger": (Tagger, {"x": (_float("B", "T", 4), {0: "B", 1: "T"}),
                        "lengths": (_lengths, {0: "B"})}, ["y"]),
    "streaming": (Streaming, {"x": (_float("B", "T", 4), {0: "B", 1: "T"}),
                              "h0": (_float(2, "B", H), {1: "B"})}, ["y", "hn"]),
    "cell_loop": (CellLoop, {"x": (_float("B", "T", 4), {0: "B", 1: "T"})}, ["y"]),
    "conv_gru": (ConvGRU, {"x": (_float("B", 3, "T"), {0: "B", 2: "T"})}, ["y"]),
    "crnn": (CRNN, {"spec": (_float("B", 1, 6, "T"), {0: "B", 3: "T"})}, ["y"]),
    "attention": (AttentionPool, {"x": (_float("B", "T", 4), {0: "B", 1: "T"})}, ["y"]),
    "relu_rnn": (ReluRNN, {"x": (_float("B", "T", 4), {0: "B", 1: "T"})}, ["y", "hn"]),
    "embed_lstm": (EmbedLSTM, {"tokens": (_tokens, {0: "B", 1: "T"})}, ["y"]),
}
NO_DYNAMO = {"tagger"}            # pack_padded_sequence: a data-dependent size
EXPORTS = [(name, "torchscript") for name in CORPUS] + [
    (name, "dynamo") for name in CORPUS if name not in NO_DYNAMO]


def _export(name, exporter, folder):
    cls, inputs, outputs = CORPUS[name]
    torch.manual_seed(0)
    module = cls().eval()
    rng = np.random.default_rng(0)
    args = tuple(torch.from_numpy(make(rng, *EXPORT_BT)) for make, _ in inputs.values())
    path = folder / "model.onnx"
    if exporter == "dynamo":
        dims = {}
        shapes = tuple({i: dims.setdefault(d, torch.export.Dim(d, min=2)) for i, d in axes.items()}
                       for _, axes in inputs.values())
        torch.onnx.export(module, args, path, dynamo=True, input_names=list(inputs),
                          output_names=outputs, dynamic_shapes=shapes)
    else:
        if name == "cell_loop":
            module = torch.jit.script(module)
        torch.onnx.export(module, args, path, dynamo=False, opset_version=17,
                          input_names=list(inputs), output_names=outputs,
                          dynamic_axes={n: axes for n, (_, axes) in inputs.items()})
    return onnx.load(path)  # external data, where the exporter wrote it, from the same folder


@pytest.fixture(scope="module", params=EXPORTS, ids=[f"{n}-{e}" for n, e in EXPORTS])
def exported(request, tmp_path_factory):
    name, exporter = request.param
    folder = tmp_path_factory.mktemp(f"{name}-{exporter}")
    return name, exporter, _export(name, exporter, folder)


def _exported_time(model, name):
    """The time dim the export fixed, or None where it stayed dynamic."""
    first, (_, axes) = model.graph.input[0], next(iter(CORPUS[name][1].values()))
    dim = first.type.tensor_type.shape.dim[next(i for i, d in axes.items() if d == "T")]
    return dim.dim_value or None


@pytest.mark.parametrize("batch, time", [(1, 7), (3, 4)])
def test_interpreter_matches_onnxruntime(exported, batch, time):
    name, exporter, model = exported
    # the dynamo exporter unrolls Python loops (cell_loop) and decomposes nn.RNN(relu)
    # step by step, fixing T; torch 2.13 also fixes crnn's T when it exports crnn after
    # conv_gru in the same process
    time = _exported_time(model, name) or time
    rng = np.random.default_rng(batch * 100 + time)
    feeds = {n: make(rng, batch, time) for n, (make, _) in CORPUS[name][1].items()}
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, feeds)
    got = Interpreter(model).run(feeds)
    for output, want in zip(session.get_outputs(), expected):
        have = got[output.name]
        assert have.dtype == want.dtype and have.shape == want.shape, output.name
        assert_close(f"{name}-{exporter} {output.name}", have, want, FP32)


def test_corpus_operators_are_implemented(exported):
    name, exporter, model = exported
    found = set()

    def walk(graph):
        for node in graph.node:
            found.add(node.op_type if node.domain in ("", "ai.onnx") else
                      f"{node.domain}.{node.op_type}")
            for attribute in node.attribute:
                if attribute.type == attribute.GRAPH:
                    walk(attribute.g)

    walk(model.graph)
    assert found <= IMPLEMENTED, f"{name}-{exporter} emits {sorted(found - IMPLEMENTED)}"
