"""A streaming keyword spotter, written as users write theirs: the README's worked example.

40 log-mel features per 10 ms frame -> one GRU layer of 64 units -> 12 keyword scores per
frame. The hidden state is an input and an output, so a device feeds one frame per call
and carries ``h`` between calls. ``build()`` returns it with seeded random weights (the
pipeline is the point here; train it on your own data before you ship it).

    rnnedge export --model examples/kws.py:build \\
      --input "feats:float32[batch,time,40]" --input "h:float32[1,batch,64]" \\
      --output logits --output h_new --state h=h_new --out runs/demo/kws.onnx
"""

import torch
from torch import nn


class KeywordSpotter(nn.Module):
    def __init__(self, features=40, hidden=64, keywords=12):
        super().__init__()
        self.gru = nn.GRU(features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, keywords)

    def forward(self, feats, h):  # (B, T, 40), (1, B, 64) -> (B, T, 12), (1, B, 64)
        y, h_new = self.gru(feats, h)
        return self.head(y), h_new


def build():
    torch.manual_seed(0)
    return KeywordSpotter().eval()
