"""Write the golden models of the test suite: two tiny ONNX files and their io.npz (needs torch).

    python tests/golden/make_golden.py [--out tests/golden]

``tiny_charlm.onnx``: rnnedge's own character model (12 characters, one LSTM layer of 8),
weights from a fixed seed, exported from a checkpoint by ``rnnedge.export.exporter``.
``tiny_kws.onnx``: a user-style streaming keyword spotter (GRU of 8, state in and out, as
``tests/user_models.streaming_kws_gru``) exported by ``rnnedge.export.export_model``.
``io.npz``: for each model, random inputs (fixed seed, several (batch, time) sizes
including 1 and odd ones, non-zero states) and the outputs PyTorch gave for them, keyed
``"<model>/<case>/<in|out>/<name>"``. The runtime's tests (``tests/test_golden.py``) read
these files with neither torch nor data; rerun this script only when the export format
changes, and commit all three files together.
"""

import argparse
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/, for user_models

from user_models import BT, KeywordSpotter  # noqa: E402

VOCAB = tuple(sorted(" Thamletison"))  # 12 characters
SHAPES = ((1, 1), (1, 7), (3, 29))  # (batch, time) of the golden cases
MELS, HIDDEN, WORDS = 6, 8, 3


def charlm_checkpoint(path):
    """A charlm checkpoint of fixed-seed weights (no training: the runtime needs none)."""
    from rnnedge.train import checkpoint
    from rnnedge.train.charlm import CharLM
    from rnnedge.train.config import CharLMConfig

    torch.manual_seed(0)
    config = CharLMConfig(vocab_size=len(VOCAB), embed_dim=8, hidden_size=HIDDEN, num_layers=1,
                          dropout=0.0)
    model = CharLM(config).eval()
    payload = {"task": "charlm", "config": asdict(config), "vocab": list(VOCAB),
               "model": model.state_dict(), "epoch": 0, "metrics": {}}
    checkpoint.save(path, payload)
    return model


def charlm_cases(model):
    from rnnedge.export.validate import torch_charlm
    from rnnedge.runtime.parity import charlm_inputs

    feeds = charlm_inputs(asdict(model.config), SHAPES, seed=1)
    return [(f, torch_charlm(model, f)) for f in feeds]


def kws_cases(module):
    rng = np.random.default_rng(2)
    cases = []
    for batch, time in SHAPES:
        feeds = {"mels": rng.standard_normal((batch, time, MELS)).astype(np.float32),
                 "h": (0.5 * rng.standard_normal((1, batch, HIDDEN))).astype(np.float32)}
        with torch.no_grad():
            scores, h_new = module(torch.from_numpy(feeds["mels"]), torch.from_numpy(feeds["h"]))
        cases.append((feeds, {"scores": scores.numpy(), "h_new": h_new.numpy()}))
    return cases


def make_kws(out):
    from rnnedge.export import export_model

    torch.manual_seed(0)
    module = KeywordSpotter(mels=MELS, hidden=HIDDEN, words=WORDS).eval()
    example = (torch.randn(2, 10, MELS), torch.randn(1, 2, HIDDEN) * 0.5)
    hb = {1: "batch"}
    export_model(module, example, out, input_names=["mels", "h"], output_names=["scores", "h_new"],
                 dynamic_axes={"mels": BT, "h": hb, "scores": BT, "h_new": hb}, states={"h": "h_new"},
                 exporter="torchscript")
    return module


def bundle(name, cases):
    arrays = {}
    for i, (inputs, outputs) in enumerate(cases):
        arrays.update({f"{name}/{i}/in/{k}": v for k, v in inputs.items()})
        arrays.update({f"{name}/{i}/out/{k}": v for k, v in outputs.items()})
    return arrays


def make_golden(out):
    """Write tiny_charlm.onnx, tiny_kws.onnx and io.npz into ``out``; return their paths."""
    from rnnedge.export.exporter import export

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        charlm = charlm_checkpoint(Path(tmp) / "tiny_charlm.pt")
        export(Path(tmp) / "tiny_charlm.pt", out / "tiny_charlm.onnx")
    kws = make_kws(out / "tiny_kws.onnx")
    arrays = {**bundle("charlm", charlm_cases(charlm)), **bundle("kws", kws_cases(kws))}
    np.savez_compressed(out / "io.npz", **arrays)
    return [out / "tiny_charlm.onnx", out / "tiny_kws.onnx", out / "io.npz"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write the three files to")
    for path in make_golden(parser.parse_args().out):
        print(f"{path}: {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
