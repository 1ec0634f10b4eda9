"""The classifier of real-valued frames as a PyTorch module, and its rebuild from a checkpoint.

Many-to-one: recurrent stack over normalised frames (B, T, C), a head that reads the
outputs at the valid frames only (last, mean or max), a linear layer to one logit per
class. Batches are right-padded. A unidirectional stack needs no packing: its output at a
valid frame never depends on what follows, and every head masks the rest, so padding
cannot change an answer. A bidirectional stack runs on packed sequences, because its
backward direction would otherwise start in the padding. The per-channel normalisation
is not in this module: training feeds normalised frames, and the export puts
``(x - mean) / std`` in front of it (``export/series.py``). ``Streaming`` is what a forward
model is exported as: the same net, packed so that its states stop at the true lengths,
with the recurrent and pooling states as inputs and outputs.
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


class Streaming(nn.Module):
    """A forward classifier with its recurrent and pooling state as inputs and outputs.

    frames (B, T, C) raw, lengths (B,) int64, h (L, B, H) [, c (L, B, H)] [, pooled (B, H),
    seen (B, 1)] -> logits, probs (B, K), then the same states after each row's last valid
    frame: feeding a case chunk by chunk from zero states equals feeding it whole, and the
    probabilities of every chunk are those of the frames so far. ``pooled`` is the head's
    feature so far, the running mean or maximum of the top outputs, and ``seen`` the frame
    count (float32, exact below 2**24); the last head needs neither, its feature is the
    final h of the top layer. A length above the chunk's frame count means all of them, so
    a stream may pass its case's full length with every frame. The stack runs packed, so
    the states stop at the true lengths (ONNX ``sequence_lens``); zero states give
    ``Normalised``'s answers.
    """

    def __init__(self, normalised):
        super().__init__()
        c = normalised.net.config
        if c.bidirectional:
            raise InputError("a bidirectional model reads each case whole: it has no stream")
        self.net, self.config = normalised.net, c
        self.register_buffer("mean", normalised.mean)  # (C,)
        self.register_buffer("std", normalised.std)  # (C,)

    def forward(self, frames, lengths, *states):
        T = frames.shape[1]
        steps = torch.clamp(lengths, max=T)  # (B,)
        lstm = self.config.cell == "lstm"
        cell, pool = (states[:2], states[2:]) if lstm else (states[:1], states[1:])
        packed = nn.utils.rnn.pack_padded_sequence((frames - self.mean) / self.std, steps.cpu(),
                                                   batch_first=True, enforce_sorted=False)
        y, final = self.net.rnn(packed, tuple(cell) if lstm else cell[0])
        y, _ = nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=T)  # (B, T, H)
        final = final if lstm else (final,)
        feat, pool = self.pool(y, steps, final[0][-1], pool)
        logits = self.net.fc(feat)
        return (logits, torch.softmax(logits, dim=-1), *final, *pool)

    def pool(self, y, steps, h_top, pool):
        """(feature (B, H), new pooling states) of this chunk's outputs and the carried ones."""
        if self.config.head == "last":
            return h_top, ()
        pooled, seen = pool  # (B, H), (B, 1)
        mask = torch.arange(y.shape[1], device=y.device)[None, :] < steps[:, None]  # (B, T)
        seen = seen + steps[:, None].to(y.dtype)
        if self.config.head == "max":
            chunk = y.masked_fill(~mask[:, :, None], float("-inf")).amax(dim=1)
            before = seen > steps[:, None].to(y.dtype)  # frames before this chunk: a maximum
            pooled = torch.where(before, torch.maximum(pooled, chunk), chunk)
            return pooled, (pooled, seen)
        # the running mean, not the sum: a state that stays in the outputs' range however
        # long the stream, so its rounding error (int8 above all) does not grow with it
        chunk = (y * mask[:, :, None]).sum(dim=1)  # (B, H)
        pooled = pooled + (chunk - steps[:, None].to(y.dtype) * pooled) / seen
        return pooled, (pooled, seen)


def state_names(config):
    """{state input: state output} of ``Streaming`` for a series config, in forward's order."""
    names = ["h", "c"] if config["cell"] == "lstm" else ["h"]
    names += [] if config["head"] == "last" else ["pooled", "seen"]
    return {n: f"{n}_new" for n in names}
