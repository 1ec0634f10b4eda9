"""``rnnedge verify SERIES.onnx --checkpoint best.pt``: the file against the checkpoint it came from.

A series file carries its golden bundle, so ``verify_generic`` already checks every engine
against PyTorch's outputs at export time. With the checkpoint, PyTorch (``reference``, from
``rnnedge.export.torch_engines``) runs again beside every engine on new random raw frames:
several batch and time sizes, right-padded batches whose lengths were not used at export, drawn
around the stored normalisation so that they look like the training data. A file exported from
another checkpoint, or edited since, fails here by name. Torch-free: PyTorch is handed in.
"""

import numpy as np

from rnnedge.runtime.parity import compare_outputs
from rnnedge.runtime.tolerances import FP32

SHAPES = ((1, 1), (1, 9), (3, 17), (5, 31))  # (batch, time); odd sizes, none of the export's


def raw_frames(norm, batch, time, rng):
    """(frames (B, T, C) float32 raw, lengths (B,) int64), lengths from 1 to T, the first T."""
    mean, std = np.asarray(norm["mean"], np.float32), np.asarray(norm["std"], np.float32)
    frames = (mean + std * rng.standard_normal((batch, time, len(mean)))).astype(np.float32)
    lengths = rng.integers(1, time + 1, batch).astype(np.int64)
    lengths[0] = time
    for b, n in enumerate(lengths):
        frames[b, n:] = 0.0  # right padding, as the runtime pads
    return frames, lengths


def against_checkpoint(reference, engines, tol=FP32, seed=3):
    """Diffs of each loaded engine's logits and probabilities against ``reference``."""
    rng = np.random.default_rng(seed)
    norm = next(iter(engines.values())).norm
    diffs = []
    for batch, time in SHAPES:
        frames, lengths = raw_frames(norm, batch, time, rng)
        expected = reference({"frames": frames, "lengths": lengths})
        for name, model in engines.items():
            got = model.run({"frames": frames, "lengths": lengths})
            got = {k: got[k] for k in expected}  # the states are checked by streaming
            diffs += compare_outputs(f"B={batch} T={time} {name} vs torch", got, expected, tol)
    return diffs
