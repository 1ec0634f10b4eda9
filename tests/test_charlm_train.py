"""Training the character model: checkpoints, truncated BPTT, clipping, resume, budget."""

import json
import re

import pytest
import torch

from rnnedge.runtime.errors import CheckpointError, InputError
from rnnedge.train import charlm, checkpoint
from rnnedge.train.charlm import CharLMConfig, train_charlm
from conftest import TINY_CHARLM


def test_checkpoints_load_safely_and_hold_everything(charlm):
    ckpt = torch.load(charlm[0], weights_only=True)
    for key in ("config", "vocab", "model", "optimizer", "epoch", "metrics", "history"):
        assert key in ckpt
    assert ckpt["task"] == "charlm" and ckpt["config"]["hidden_size"] == 32
    assert ckpt["metrics"]["val_bpc"] == pytest.approx(ckpt["metrics"]["val_nats"] / 0.6931471805599453)
    files = sorted(p.name for p in charlm[0].parent.iterdir())
    assert {"best.pt", "last.pt", "train_log.jsonl"} <= set(files)
    assert not [f for f in files if f.endswith(".tmp")]
    log = [json.loads(l) for l in (charlm[0].parent / "train_log.jsonl").read_text().splitlines()]
    epochs = [r for r in log if "event" not in r]
    assert epochs[-1]["epoch"] == 1 and epochs[-1]["chars_per_s"] > 0
    assert log[-1]["event"] == "end" and log[-1]["budget_s"] is None


def test_same_seed_same_weights_and_resume_equals_one_run(tmp_path, data_dir):
    kw = {**TINY_CHARLM, "dropout": 0.2, "epochs": 2, "data_dir": data_dir, "echo": None,
          "threads": 1}  # equal weights need equal thread counts
    train_charlm(tmp_path / "a", **kw)
    train_charlm(tmp_path / "b", **{**kw, "epochs": 1})
    train_charlm(tmp_path / "b", resume=tmp_path / "b", **kw)  # a run directory: its last.pt
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert b["epoch"] == 2 and len(b["history"]) == 2
    for name, tensor in a["model"].items():
        torch.testing.assert_close(b["model"][name], tensor, rtol=0, atol=0)


def test_a_fresh_run_refuses_an_occupied_out_dir(charlm, data_dir):
    out = charlm[0].parent
    before = {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in out.iterdir()}
    message = f"{out} already holds a training run; pass --resume {out} to continue it"
    with pytest.raises(InputError, match=re.escape(message)):
        train_charlm(out, data_dir=data_dir, echo=None, **TINY_CHARLM)
    assert {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in out.iterdir()} == before


def test_state_flows_across_windows_detached(monkeypatch):
    """Window w+1 starts from window w's final state, cut off from its graph (TBPTT)."""
    model = charlm.CharLM(CharLMConfig(vocab_size=5, embed_dim=3, hidden_size=4, num_layers=1))
    seen, forward = [], model.forward

    def recording(ids, state=None):
        seen.append(state)
        logits, new = forward(ids, state)
        seen.append(new)
        return logits, new

    monkeypatch.setattr(model, "forward", recording)
    clips = []
    real_clip = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_",
                        lambda params, max_norm: clips.append(max_norm) or real_clip(params, max_norm))
    tc = charlm.CharTrainConfig(batch_size=2, num_steps=4, clip=0.5)
    ids = torch.randint(0, 5, (41,)).numpy()
    opt = torch.optim.Adam(model.parameters())

    class Bar:
        update = staticmethod(lambda *a, **k: None)

    charlm.train_epoch(model, opt, ids, tc, "cpu", __import__("numpy").random.default_rng(0), Bar, 0)
    assert seen[0] is None  # zero state at the start of the epoch only
    for prev_out, next_in in zip(seen[1::2], seen[2::2]):
        for a, b in zip(prev_out, next_in):
            torch.testing.assert_close(a, b)
            assert a.requires_grad and not b.requires_grad
    assert clips and set(clips) == {0.5}


def test_a_spent_time_budget_stops_at_the_first_step(tmp_path, data_dir):
    best = train_charlm(tmp_path, data_dir=data_dir, echo=None, max_minutes=1e-6,
                        **{**TINY_CHARLM, "epochs": 5})
    assert (best["epoch"], best["stopped"], best["steps"], best["partial"]) == (1, "budget", 1, True)


def test_bad_settings_and_foreign_checkpoints_are_typed_errors(tmp_path, data_dir, charlm):
    with pytest.raises(InputError, match="cell must be"):
        CharLMConfig(vocab_size=3, cell="transformer")
    with pytest.raises(InputError, match="--device"):
        train_charlm(tmp_path, data_dir=data_dir, device="tpu", echo=None)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable"):
        checkpoint.load(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="expected 'sentiment'"):
        checkpoint.load(charlm[0], task="sentiment")
    other = tmp_path / "other.txt"
    other.write_text("xyz " * 100)
    with pytest.raises(CheckpointError, match="another text"):
        train_charlm(tmp_path / "o", text=other, resume=charlm[0], echo=None, **TINY_CHARLM)
