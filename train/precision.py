"""Mixed precision for the training step: ``fp32``, ``bf16`` or ``fp16``, one ``Precision`` per run.

``bf16`` and ``fp16`` run the forward pass under ``torch.autocast`` (the weights and the
optimizer stay float32, so checkpoints and exports do not change format); ``fp16``, whose
range is narrow, also scales the loss (``torch.amp.GradScaler``) so that small gradients
do not underflow. On the CPU ``bf16`` works and is how the tests exercise this path;
``fp16`` is refused there: CPU autocast to float16 is slow and partial, and the scaler is
for CUDA. oneDNN has no bf16 LSTM on a CPU without AVX-512 (it fails to build the
primitive); there, bf16 runs with oneDNN off: LSTM and GRU layers compute in float32, the
plain RNN and the linear layers in bf16 (and slower than fp32: it exists there to test the
path; bf16 pays on a GPU). Validation runs in float32, as the exported model does, so that
the best epoch is chosen by what ships.

The precision is a setting of the run (``precision`` in the training configs): it changes
what is computed, so a resume keeps it (``config.py``). Not here: the process group
(``distributed.py``).
"""

import contextlib
import functools

import torch
from torch import nn

from rnnedge.runtime.errors import InputError

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}  # config.PRECISIONS


class Precision:
    """The autocast context and the optimizer step of one precision on one device."""

    def __init__(self, name, device):
        if name not in DTYPES:
            raise InputError(f"precision must be one of {', '.join(DTYPES)}, not {name!r}")
        if name == "fp16" and device.type != "cuda":
            raise InputError("precision fp16 needs a CUDA GPU (its loss scaling is for CUDA); "
                             "on the CPU use --precision bf16 or fp32")
        self.name, self.device = name, device
        self.dtype = DTYPES[name]
        self.scaler = torch.amp.GradScaler(device.type, enabled=name == "fp16")
        self.onednn_off = name == "bf16" and device.type == "cpu" and not cpu_bf16_lstm()

    def autocast(self):
        """The context of a forward pass: autocast to ``dtype``, or nothing for fp32."""
        if self.dtype is None:
            return contextlib.nullcontext()
        if self.onednn_off:
            return fp32_lstm_autocast()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def step(self, loss, opt, params, clip):
        """Backward, clip the global gradient norm at ``clip`` (<= 0: no clipping), step.

        With fp16 the gradients are unscaled before clipping (the norm is of the true
        gradient) and a step with an infinite gradient is skipped by the scaler.
        """
        opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if clip > 0:
            self.scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(params, clip)
        self.scaler.step(opt)
        self.scaler.update()

    def state_dict(self):
        return self.scaler.state_dict()

    def load_state_dict(self, state):
        if state:
            self.scaler.load_state_dict(state)


@functools.cache
def cpu_bf16_lstm():
    """True when oneDNN runs an LSTM in bf16 on this CPU (AVX-512 and newer do, AVX2 not)."""
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            nn.LSTM(2, 2)(torch.zeros(1, 1, 2))
    except RuntimeError:
        return False
    return True


@contextlib.contextmanager
def fp32_lstm_autocast():
    """CPU bf16 autocast with oneDNN off: its LSTM stays float32, the rest runs in bf16."""
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            yield
    finally:
        torch.backends.mkldnn.enabled = before
