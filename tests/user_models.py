"""A corpus of user-style recurrent models for ``rnnedge.export.user_model``.

Each model is written the way users write them (batch_first, a head on top, state as an
argument), small (hidden 8-16), with a factory returning ``(module, example_inputs,
export kwargs)``. ``PASSING`` names the factories that must export and pass the gate;
``traced_cell_loop`` and ``proj_lstm`` must be refused; the others after ``PASSING`` pass
with something inferred or flattened (tests/test_user_export_round2.py).
``tamper_gru_lbr0`` rewrites a GRU file the way a defective exporter would
(linear_before_reset=0).
"""

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

BT = {0: "batch", 1: "time"}
BATCH = {0: "batch"}


def _seeded(factory):
    def build():
        torch.manual_seed(0)
        return factory()
    build.__name__ = factory.__name__
    build.__doc__ = factory.__doc__
    return build


class Forecaster(nn.Module):
    def __init__(self, channels=3, hidden=16, layers=2):
        super().__init__()
        self.lstm = nn.LSTM(channels, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x):  # (B, T, 3) -> (B, T, 1)
        out, _ = self.lstm(x)
        return self.head(out)


@_seeded
def lstm_forecaster():
    """A two-layer LSTM over 3 sensor channels, one forecast per step."""
    x = torch.randn(2, 10, 3) * 4.0 + 1.0
    return Forecaster(), (x,), dict(input_names=["x"], output_names=["forecast"],
                                    dynamic_axes={"x": BT, "forecast": BT})


class Tagger(nn.Module):
    def __init__(self, feats=8, hidden=12, tags=5):
        super().__init__()
        self.gru = nn.GRU(feats, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, tags)

    def forward(self, feats, lengths):  # (B, T, F), (B,) -> (B, T, tags)
        packed = pack_padded_sequence(feats, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=feats.shape[1])
        return self.out(out)


@_seeded
def packed_gru_tagger():
    """A bidirectional GRU tagger over padded batches, packed by their true lengths."""
    feats, lengths = torch.randn(2, 10, 8), torch.tensor([10, 6])
    return Tagger(), (feats, lengths), dict(
        input_names=["feats", "lengths"], output_names=["tags"],
        dynamic_axes={"feats": BT, "lengths": BATCH, "tags": BT}, lengths="lengths")


class KeywordSpotter(nn.Module):
    def __init__(self, mels=10, hidden=16, words=4):
        super().__init__()
        self.gru = nn.GRU(mels, hidden, batch_first=True)
        self.classify = nn.Linear(hidden, words)

    def forward(self, mels, h):  # (B, T, mels), (1, B, H)
        out, h_new = self.gru(mels, h)
        return self.classify(out), h_new


@_seeded
def streaming_kws_gru():
    """Keyword spotting that streams: the GRU's hidden state goes in and comes back out."""
    mels, h = torch.randn(2, 10, 10), torch.randn(1, 2, 16) * 0.5
    hb = {1: "batch"}
    return KeywordSpotter(), (mels, h), dict(
        input_names=["mels", "h"], output_names=["scores", "h_new"],
        dynamic_axes={"mels": BT, "h": hb, "scores": BT, "h_new": hb}, states={"h": "h_new"})


class CellLoop(nn.Module):
    """An LSTMCell stepped by a Python loop: tracing unrolls it at the example's length."""

    def __init__(self, feats=6, hidden=12):
        super().__init__()
        self.hidden = hidden
        self.cell = nn.LSTMCell(feats, hidden)
        self.head = nn.Linear(hidden, 2)

    def forward(self, x):  # (B, T, F) -> (B, T, 2)
        h = x.new_zeros(x.shape[0], self.hidden)
        c = x.new_zeros(x.shape[0], self.hidden)
        outs = []
        for t in range(x.shape[1]):
            h, c = self.cell(x[:, t], (h, c))
            outs.append(h)
        return self.head(torch.stack(outs, dim=1))


@_seeded
def traced_cell_loop():
    """Must be refused: a traced loop over time freezes the time axis at 10."""
    x = torch.randn(2, 10, 6)
    return CellLoop(), (x,), dict(input_names=["x"], output_names=["y"],
                                  dynamic_axes={"x": BT, "y": BT})


@_seeded
def scripted_cell_loop():
    """The same loop under torch.jit.script: the loop becomes an ONNX Loop over time."""
    x = torch.randn(2, 10, 6)
    return torch.jit.script(CellLoop()), (x,), dict(
        input_names=["x"], output_names=["y"], dynamic_axes={"x": BT, "y": BT})


class ConvGRU(nn.Module):
    def __init__(self, feats=12, channels=16, hidden=16, classes=3):
        super().__init__()
        self.conv = nn.Conv1d(feats, channels, kernel_size=3, padding=1)
        self.gru = nn.GRU(channels, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):  # (B, T, F) -> (B, classes)
        z = torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)  # (B, T, C)
        _, h = self.gru(z)
        return self.head(h[-1])


@_seeded
def conv_gru():
    """A Conv1d front end into a GRU, classified from the last hidden state."""
    x = torch.randn(2, 10, 12)
    return ConvGRU(), (x,), dict(input_names=["x"], output_names=["logits"],
                                 dynamic_axes={"x": BT, "logits": BATCH})


class AttentionPool(nn.Module):
    def __init__(self, feats=5, hidden=16, classes=3):
        super().__init__()
        self.lstm = nn.LSTM(feats, hidden, batch_first=True)
        self.score = nn.Linear(hidden, 1)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):  # (B, T, F) -> (B, classes), (B, T)
        out, _ = self.lstm(x)
        weights = torch.softmax(self.score(out).squeeze(-1), dim=1)  # (B, T)
        pooled = (weights.unsqueeze(-1) * out).sum(dim=1)  # (B, H)
        return self.head(pooled), weights


@_seeded
def attention_lstm():
    """Attention pooling (softmax over time) over an LSTM; the weights are an output too."""
    x = torch.randn(2, 10, 5)
    return AttentionPool(), (x,), dict(
        input_names=["x"], output_names=["logits", "attention"],
        dynamic_axes={"x": BT, "logits": BATCH, "attention": BT})


class Elman(nn.Module):
    def __init__(self, feats=4, hidden=8):
        super().__init__()
        self.rnn = nn.RNN(feats, hidden, nonlinearity="relu", batch_first=True)
        self.out = nn.Linear(hidden, feats)

    def forward(self, x):  # (B, T, F) -> (B, T, F)
        out, _ = self.rnn(x)
        return self.out(out)


@_seeded
def elman_relu():
    """An Elman RNN with ReLU predicting the next frame."""
    x = torch.randn(2, 10, 4) * 0.5
    return Elman(), (x,), dict(input_names=["x"], output_names=["next"],
                               dynamic_axes={"x": BT, "next": BT})


class TokenClassifier(nn.Module):
    def __init__(self, vocab=50, embed=8, hidden=16, classes=4):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, tokens):  # (B, T) int64 -> (B, classes)
        out, _ = self.lstm(self.embed(tokens))
        return self.head(out.mean(dim=1))


@_seeded
def token_lstm():
    """Embedding + LSTM classifier over token ids, mean-pooled over time."""
    tokens = torch.randint(0, 50, (2, 10))
    return TokenClassifier(), (tokens,), dict(
        input_names=["tokens"], output_names=["logits"],
        dynamic_axes={"tokens": BT, "logits": BATCH})


class GRUCellLoop(nn.Module):
    """A GRUCell stepped over time, as users write a loop they mean to script."""

    def __init__(self, feats=6, hidden=12, bias=True):
        super().__init__()
        self.hidden = hidden
        self.cell = nn.GRUCell(feats, hidden, bias=bias)
        self.head = nn.Linear(hidden, 2)

    def forward(self, x):  # (B, T, F) -> (B, T, 2)
        h = x.new_zeros(x.shape[0], self.hidden)
        outs = []
        for t in range(x.shape[1]):
            h = self.cell(x[:, t], h)
            outs.append(h)
        return self.head(torch.stack(outs, dim=1))


class RNNCellLoop(GRUCellLoop):
    def __init__(self, feats=6, hidden=12, nonlinearity="tanh"):
        super().__init__(feats, hidden)
        self.cell = nn.RNNCell(feats, hidden, nonlinearity=nonlinearity)


@_seeded
def scripted_gru_cell_loop():
    """A scripted loop over an nn.GRUCell: an ONNX Loop whose body is the GRU equations."""
    x = torch.randn(2, 10, 6)
    return torch.jit.script(GRUCellLoop()), (x,), dict(
        input_names=["x"], output_names=["y"], dynamic_axes={"x": BT, "y": BT})


@_seeded
def scripted_rnn_cell_loop():
    """A scripted loop over an nn.RNNCell (tanh)."""
    x = torch.randn(2, 10, 6)
    return torch.jit.script(RNNCellLoop()), (x,), dict(
        input_names=["x"], output_names=["y"], dynamic_axes={"x": BT, "y": BT})


class PooledGRU(nn.Module):
    """MaxPool1d(2) halves the frame rate before the GRU: it needs at least 2 frames."""

    def __init__(self, mels=8, hidden=16, classes=3):
        super().__init__()
        self.pool = nn.MaxPool1d(2)
        self.gru = nn.GRU(mels, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):  # (B, T, mels) -> (B, T // 2, classes)
        z = self.pool(x.transpose(1, 2)).transpose(1, 2)
        out, _ = self.gru(z)
        return self.head(out)


@_seeded
def pooled_gru():
    """A front end with a minimum time length of 2: the gate finds it and runs T >= 2."""
    x = torch.randn(2, 10, 8)
    return PooledGRU(), (x,), dict(input_names=["x"], output_names=["y"],
                                   dynamic_axes={"x": BT, "y": BT})


PASSING = {f.__name__: f for f in (lstm_forecaster, packed_gru_tagger, streaming_kws_gru,
                                   scripted_cell_loop, conv_gru, attention_lstm, elman_relu,
                                   token_lstm, scripted_gru_cell_loop, scripted_rnn_cell_loop,
                                   pooled_gru)}


class SeqLenTagger(nn.Module):
    """Packs by true lengths; its lengths input is called seq_len and nobody says so."""

    def __init__(self, feats=8, hidden=12, tags=5, enforce_sorted=False):
        super().__init__()
        self.enforce_sorted = enforce_sorted
        self.lstm = nn.LSTM(feats, hidden, batch_first=True)
        self.out = nn.Linear(hidden, tags)

    def forward(self, x, seq_len):  # (B, T, F), (B,) -> (B, T, tags)
        packed = pack_padded_sequence(x, seq_len.cpu(), batch_first=True,
                                      enforce_sorted=self.enforce_sorted)
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return self.out(out)


@_seeded
def seq_len_tagger():
    """Exported without lengths=: the gate takes seq_len as the lengths input by its name."""
    x, seq_len = torch.randn(2, 10, 8), torch.tensor([10, 6])
    return SeqLenTagger(), (x, seq_len), dict(
        input_names=["x", "seq_len"], output_names=["tags"],
        dynamic_axes={"x": BT, "seq_len": BATCH, "tags": BT})


class DecoderStep(nn.Module):
    """One step of a GRU decoder: a token and the state in, logits and the state out."""

    def __init__(self, vocab=30, embed=8, hidden=16):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.cell = nn.GRUCell(embed, hidden)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, token, h):  # (B, 1) int64, (B, H) -> (B, vocab), (B, H)
        h = self.cell(self.embed(token).squeeze(1), h)
        return self.out(h), h


@_seeded
def decoder_step():
    """A one-step model: no time axis is named and the token's time length is a literal 1."""
    token, h = torch.randint(0, 30, (2, 1)), torch.randn(2, 16) * 0.5
    return DecoderStep(), (token, h), dict(
        input_names=["token", "h"], output_names=["logits", "h_new"],
        dynamic_axes={"token": BATCH, "h": BATCH, "logits": BATCH, "h_new": BATCH},
        states={"h": "h_new"})


class DictKWS(nn.Module):
    """Takes and returns dicts, as a training loop's batches are."""

    def __init__(self, mels=10, hidden=16, words=4):
        super().__init__()
        self.gru = nn.GRU(mels, hidden, batch_first=True)
        self.classify = nn.Linear(hidden, words)

    def forward(self, batch):  # {"feats": (B, T, mels), "h": (1, B, H)}
        out, h_new = self.gru(batch["feats"], batch["h"])
        return {"scores": self.classify(out), "h_new": h_new}


@_seeded
def dict_kws():
    """A forward over a dict: its keys name the ONNX inputs and outputs."""
    batch = {"feats": torch.randn(2, 10, 10), "h": torch.randn(1, 2, 16) * 0.5}
    hb = {1: "batch"}
    return DictKWS(), (batch,), dict(
        input_names=["feats", "h"], output_names=["scores", "h_new"],
        dynamic_axes={"feats": BT, "h": hb, "scores": BT, "h_new": hb}, states={"h": "h_new"})


class StatefulLSTM(nn.Module):
    """An LSTM whose state goes in and out as the (h, c) tuple nn.LSTM takes."""

    def __init__(self, feats=5, hidden=8):
        super().__init__()
        self.lstm = nn.LSTM(feats, hidden, batch_first=True)

    def forward(self, x, state):  # (B, T, F), ((1, B, H), (1, B, H))
        y, (h, c) = self.lstm(x, state)
        return y, (h, c)


@_seeded
def tuple_state_lstm():
    """A nested (h, c) argument: one ONNX input per tensor, named in order."""
    x, h, c = torch.randn(2, 10, 5), torch.randn(1, 2, 8) * 0.5, torch.randn(1, 2, 8) * 0.5
    hb = {1: "batch"}
    return StatefulLSTM(), (x, (h, c)), dict(
        input_names=["x", "h", "c"], output_names=["y", "h_new", "c_new"],
        dynamic_axes={"x": BT, "h": hb, "c": hb, "y": BT, "h_new": hb, "c_new": hb},
        states={"h": "h_new", "c": "c_new"})


class ProjectedLSTM(nn.Module):
    def __init__(self, feats=4, hidden=8, proj=3):
        super().__init__()
        self.lstm = nn.LSTM(feats, hidden, proj_size=proj, batch_first=True)

    def forward(self, x):  # (B, T, F) -> (B, T, proj)
        return self.lstm(x)[0]


@_seeded
def proj_lstm():
    """Must be refused, the cause first: neither exporter handles proj_size."""
    x = torch.randn(2, 10, 4)
    return ProjectedLSTM(), (x,), dict(input_names=["x"], output_names=["y"],
                                       dynamic_axes={"x": BT, "y": BT})


def tamper_gru_lbr0(model):
    """Set linear_before_reset=0 on every GRU node of an onnx ModelProto, in place."""
    import onnx

    tampered = 0
    for node in model.graph.node:
        if node.op_type == "GRU":
            kept = [a for a in node.attribute if a.name != "linear_before_reset"]
            del node.attribute[:]
            node.attribute.extend(kept + [onnx.helper.make_attribute("linear_before_reset", 0)])
            tampered += 1
    return tampered
