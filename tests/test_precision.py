"""--precision: autocast on the forward pass, recorded in the checkpoint and the ONNX metadata.

The CUDA-only parts (fp16 with its loss scaler, nccl) run in ``benchmarks/gpu_check.sh`` on
a GPU machine; here bf16 autocast on the CPU exercises the same plumbing.
"""

import json

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from rnnedge.runtime.errors import InputError
from rnnedge.train.checkpoint import on_cpu
from rnnedge.train.config import CharTrainConfig, SeriesTrainConfig, resumed
from rnnedge.train.precision import Precision

CPU = torch.device("cpu")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    path = tmp_path_factory.mktemp("reviews") / "reviews.jsonl"
    rng = np.random.default_rng(1)
    words = "the a film plot cast great superb loved awful dull hated".split()
    with path.open("w") as fh:
        for i in range(120):
            mood = words[5:8] if i % 2 else words[8:]
            fh.write(json.dumps({"text": " ".join(rng.choice(words[:5] + mood, size=12)),
                                 "label": i % 2}) + "\n")
    return path


def test_bf16_autocast_computes_in_bf16_and_fp32_does_not():
    layer, x = nn.Linear(4, 3), torch.randn(2, 4)
    with Precision("bf16", CPU).autocast():
        assert layer(x).dtype == torch.bfloat16
    with Precision("fp32", CPU).autocast():
        assert layer(x).dtype == torch.float32


def test_fp16_on_the_cpu_and_unknown_precisions_are_typed_errors(tmp_path, reviews):
    from rnnedge.train.sentiment import train_sentiment

    with pytest.raises(InputError, match="precision fp16 needs a CUDA GPU.*use --precision bf16"):
        train_sentiment(tmp_path / "run", data=reviews, precision="fp16", device="cpu", echo=None)
    assert not (tmp_path / "run").exists()
    with pytest.raises(InputError, match="precision must be one of fp32, bf16, fp16, not 'fp8'"):
        SeriesTrainConfig(precision="fp8")


def test_a_resume_keeps_the_precision_of_the_run():
    ckpt = {"config": {}, "train_config": {"precision": "bf16", "epochs": 1}}
    assert resumed(ckpt, CharTrainConfig, {}, {"epochs": 3}, "run").precision == "bf16"
    with pytest.raises(InputError, match="precision 'bf16' in the checkpoint, 'fp32' given"):
        resumed(ckpt, CharTrainConfig, {}, {"precision": "fp32"}, "run")
    older = {"config": {}, "train_config": {"epochs": 1}}  # before precision was a setting
    with pytest.raises(InputError, match="precision 'fp32' in the checkpoint, 'bf16' given"):
        resumed(older, CharTrainConfig, {}, {"precision": "bf16"}, "run")


def test_checkpoint_tensors_are_stored_on_the_cpu_in_their_structure():
    t = torch.ones(2, requires_grad=True) * 2
    out = on_cpu({"model": {"w": t}, "state": [(t, 3)], "n": 1})
    assert out["model"]["w"].device.type == "cpu" and not out["model"]["w"].requires_grad
    assert isinstance(out["state"][0], tuple) and out["state"][0][1] == 3 and out["n"] == 1


def test_a_bf16_run_records_where_it_trained_and_exports_like_any_other(tmp_path, reviews):
    from rnnedge.export.exporter import export
    from rnnedge.train.sentiment import train_sentiment

    train_sentiment(tmp_path / "run", data=reviews, precision="bf16", device="cpu", epochs=1,
                    embed_dim=8, hidden_size=8, val_size=20, min_count=1, batch_size=16,
                    echo=None)
    ckpt = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert ckpt["trained_on"] == {"device": "cpu", "precision": "bf16", "world_size": 1,
                                  "threads": torch.get_num_threads()}
    assert ckpt["train_config"]["precision"] == "bf16"
    assert all(t.dtype == torch.float32 for t in ckpt["model"].values() if t.is_floating_point())
    path, diffs = export(tmp_path / "run" / "best.pt", tmp_path / "model.onnx")
    assert diffs and all(d.ok for d in diffs)
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(props["rnnedge.trained_on"]) == ckpt["trained_on"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 loss scaling needs a CUDA GPU")
def test_fp16_on_cuda_scales_the_loss_and_steps(tmp_path, reviews):
    from rnnedge.train.sentiment import train_sentiment

    train_sentiment(tmp_path / "run", data=reviews, precision="fp16", device="cuda", epochs=1,
                    embed_dim=8, hidden_size=8, val_size=20, min_count=1, batch_size=16,
                    echo=None)
    ckpt = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert ckpt["trained_on"]["device"] == "cuda" and ckpt["scaler"]["scale"] > 0


def test_the_cuda_random_states_go_into_the_checkpoint_and_come_back(monkeypatch):
    """Dropout on a GPU draws from each device's generator: a resumed run must continue
    them (stand-in devices: the plumbing; a resume on a real GPU has not run)."""
    from rnnedge.train import checkpoint

    devices = {0: torch.tensor([1, 2], dtype=torch.uint8), 1: torch.tensor([3], dtype=torch.uint8)}
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: list(devices.values()))
    saved = checkpoint.rng_state()
    assert [t.tolist() for t in saved["cuda_rng"]] == [[1, 2], [3]]
    assert torch.equal(saved["torch_rng"], torch.get_rng_state())

    restored = {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # resumed on fewer GPUs
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, d: restored.__setitem__(d, s))
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ckpt = {"model": model.state_dict(), "optimizer": opt.state_dict(), **saved, "history": []}
    checkpoint.restore(ckpt, model, opt)
    assert list(restored) == [0] and restored[0].tolist() == [1, 2]
    restored.clear()
    checkpoint.restore({**ckpt, "cuda_rng": None}, model, opt)  # saved on a CPU: nothing to set
    assert restored == {}

    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    assert checkpoint.rng_state()["cuda_rng"] is None  # CUDA never used: no state saved
