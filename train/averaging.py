"""The running mean of a model's weights over epochs: stochastic weight averaging (SWA).

Izmailov et al. (2018), "Averaging Weights Leads to Wider Optima and Better Generalization":
the mean of the weights an optimizer visits late in training generalises better than any
one of them, and needs no validation split to pick an epoch. On Japanese Vowels (270 training
utterances, so a validation split of 27 that ties often) the mean of epochs 30-60 of a
bidirectional GRU beats the early-stopped best epoch (README, "The three workloads").

``WeightAverage`` holds the mean in float32 on the CPU and its count; ``state()`` goes into the
checkpoint so that a resumed run goes on averaging where it stopped. The networks averaged
here have no batch-norm statistics to recompute.
"""

import copy

import torch


class WeightAverage:
    def __init__(self, state=None):
        state = state or {"mean": None, "count": 0}
        self.mean = dict(state["mean"]) if state["mean"] else None  # name -> float32 (CPU)
        self.count = int(state["count"])

    def update(self, net):
        """Fold ``net``'s current weights into the mean (equal weight per call)."""
        self.count += 1
        weights = {k: v.detach().float().cpu() for k, v in net.state_dict().items()}
        if self.mean is None:
            self.mean = {k: v.clone() for k, v in weights.items()}
            return
        for name, value in weights.items():
            self.mean[name] += (value - self.mean[name]) / self.count

    def model(self, net):
        """A copy of ``net`` holding the mean weights, in ``net``'s dtypes and device."""
        averaged = copy.deepcopy(net)
        own = net.state_dict()
        averaged.load_state_dict({k: v.to(own[k].dtype) for k, v in self.mean.items()})
        return averaged

    def state(self):
        return {"mean": self.mean, "count": self.count}


def load_average(ckpt):
    """The checkpoint's running mean, or a new one."""
    return WeightAverage((ckpt or {}).get("average"))

