"""The classifier of real-valued frames as a PyTorch module, and its rebuild from a checkpoint.

Many-to-one: recurrent stack over normalised frames (B, T, C), a head that reads the
outputs at the valid frames only (last, mean or max), a linear layer to one logit per
class. Batches are right-padded. A unidirectional stack needs no packing: its output at a
valid frame never depends on what follows, and every head masks the rest, so padding
cannot change an answer. A bidirectional stack runs on packed sequences, because its
backward direction would otherwise start in the padding. The per-channel normalisation
is not in this module: training feeds normalised frames, and the export puts
``(x - mean) / std`` in front of it (``export/series.py``).
"""

import torch
from torch import nn

from rnnedge.runtime.errors import CheckpointError, InputError

from .config import SeriesConfig

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


class SeriesNet(nn.Module):
    """frames (B, T, C) float32 normalised, lengths (B,) int64 -> logits (B, K)."""

    def __init__(self, config: SeriesConfig):
        super().__init__()
        c = config
        if c.channels < 1 or c.num_classes < 2:
            raise InputError(f"a series classifier needs >= 1 channel and >= 2 classes, not "
                             f"{c.channels} and {c.num_classes}")
        self.config = config
        kwargs = {"nonlinearity": c.nonlinearity} if c.cell == "rnn" else {}
        self.rnn = CELLS[c.cell](c.channels, c.hidden_size, c.num_layers, batch_first=True,
                                 dropout=c.dropout if c.num_layers > 1 else 0.0,
                                 bidirectional=c.bidirectional, **kwargs)
        self.drop = nn.Dropout(c.dropout)
        self.fc = nn.Linear(c.hidden_size * (2 if c.bidirectional else 1), c.num_classes)

    def forward(self, frames, lengths):
        if self.config.bidirectional:
            packed = nn.utils.rnn.pack_padded_sequence(frames, lengths.cpu(), batch_first=True,
                                                       enforce_sorted=False)
            y, _ = self.rnn(packed)
            y, _ = nn.utils.rnn.pad_packed_sequence(y, batch_first=True,
                                                    total_length=frames.shape[1])
        else:
            y, _ = self.rnn(frames)  # (B, T, D)
        return self.fc(self.drop(pool(y, lengths, self.config)))  # (B, K)


def pool(y, lengths, config):
    """(B, T, D) outputs -> (B, D) features from the valid frames only."""
    if config.head == "last":
        last = (lengths - 1).view(-1, 1, 1).expand(-1, 1, y.shape[2])  # (B, 1, D)
        feat = y.gather(1, last).squeeze(1)  # (B, D)
        if config.bidirectional:  # the backward direction ends at frame 0
            H = config.hidden_size
            feat = torch.cat([feat[:, :H], y[:, 0, H:]], dim=1)
        return feat
    mask = torch.arange(y.shape[1], device=y.device)[None, :] < lengths[:, None]  # (B, T)
    if config.head == "max":
        return y.masked_fill(~mask[:, :, None], float("-inf")).amax(dim=1)
    return (y * mask[:, :, None]).sum(dim=1) / lengths[:, None].to(y.dtype)


class Normalised(nn.Module):
    """Raw frames in: ``(frames - mean) / std`` per channel, then the classifier.

    frames (B, T, C) raw float32, lengths (B,) int64 -> (logits (B, K), probs (B, K)).
    The constants are buffers, so the export writes them into the graph.
    """

    def __init__(self, net, mean, std):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))  # (C,)
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))  # (C,)

    def forward(self, frames, lengths):
        logits = self.net((frames - self.mean) / self.std, lengths)
        return logits, torch.softmax(logits, dim=-1)


def build_model(ckpt):
    """Rebuild the classifier of a loaded checkpoint, in eval mode on the CPU."""
    model = SeriesNet(SeriesConfig(**ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    return model.eval()


def build_normalised(ckpt):
    """The classifier of a checkpoint behind its stored normalisation (raw frames in)."""
    norm = ckpt.get("norm")
    if not norm or len(norm.get("mean", ())) != ckpt["config"]["channels"]:
        raise CheckpointError("the checkpoint holds no per-channel normalisation for its "
                              "channels; it was not written by `rnnedge train series`")
    return Normalised(build_model(ckpt), norm["mean"], norm["std"]).eval()
