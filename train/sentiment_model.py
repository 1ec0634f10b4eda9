"""The IMDb sentiment classifier as a PyTorch module, and its rebuild from a checkpoint.

Many-to-one: embedding (padding id 0), recurrent stack (LSTM by default), a head that
reads the outputs at the valid positions only, and a linear layer to one logit.
Batches are right-padded. A unidirectional stack needs no packing: the output at a
valid position never depends on what follows it, and every head masks the rest, so
padding cannot change a review's logit. A bidirectional stack runs on packed
sequences, because its backward direction would otherwise start in the padding.
Not here: the config (``config.py``) and training (``sentiment.py``).
"""

import torch
from torch import nn

from rnnedge.runtime.errors import InputError

from .config import SentimentConfig

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


class SentimentModel(nn.Module):
    """ids (B, T) int64 right-padded with 0, lengths (B,) int64 -> logit (B,)."""

    def __init__(self, config: SentimentConfig):
        super().__init__()
        c = config
        if c.vocab_size < 3:
            raise InputError(f"vocab_size must be at least 3 (<pad>, <unk>, a word), "
                             f"not {c.vocab_size}")
        self.config = config
        self.embedding = nn.Embedding(c.vocab_size, c.embed_dim, padding_idx=0)
        kwargs = {"nonlinearity": c.nonlinearity} if c.cell == "rnn" else {}
        self.rnn = CELLS[c.cell](c.embed_dim, c.hidden_size, c.num_layers, batch_first=True,
                                 dropout=c.dropout if c.num_layers > 1 else 0.0,
                                 bidirectional=c.bidirectional, **kwargs)
        self.drop = nn.Dropout(c.dropout)
        self.fc = nn.Linear(c.hidden_size * (2 if c.bidirectional else 1), 1)

    def forward(self, ids, lengths):
        x = self.drop(self.embedding(ids))  # (B, T, E)
        if self.config.bidirectional:
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True,
                                                       enforce_sorted=False)
            y, _ = self.rnn(packed)
            y, _ = nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=ids.shape[1])
        else:
            y, _ = self.rnn(x)  # (B, T, D)
        return self.fc(self.drop(self._pool(y, lengths))).squeeze(-1)  # (B,)

    def _pool(self, y, lengths):
        """(B, T, D) outputs -> (B, D) features from the valid positions only."""
        if self.config.head == "last":
            last = (lengths - 1).view(-1, 1, 1).expand(-1, 1, y.shape[2])  # (B, 1, D)
            feat = y.gather(1, last).squeeze(1)  # (B, D)
            if self.config.bidirectional:  # the backward direction ends at position 0
                H = self.config.hidden_size
                feat = torch.cat([feat[:, :H], y[:, 0, H:]], dim=1)
            return feat
        mask = torch.arange(y.shape[1], device=y.device)[None, :] < lengths[:, None]  # (B, T)
        if self.config.head == "max":
            return y.masked_fill(~mask[:, :, None], float("-inf")).amax(dim=1)
        return (y * mask[:, :, None]).sum(dim=1) / lengths[:, None].to(y.dtype)


def build_model(ckpt):
    """Rebuild the model from a loaded checkpoint dict, in eval mode on the CPU."""
    model = SentimentModel(SentimentConfig(**ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    return model.eval()
