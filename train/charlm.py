"""The character-level language model of Hamlet: config, model, and its training loop.

Many-to-many: embedding, multilayer recurrent stack (LSTM by default), linear layer
to the vocabulary. Trained with truncated backpropagation through time: the state
flows from one window to the next within an epoch and is detached at each window
boundary; gradients are clipped by global norm; Adam. On several processes (torchrun,
``distributed.py``) each rank trains its own rows of the ``batch_size`` parallel streams, so
each stream's state still flows from window to window on the rank that owns it.
"""

import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rnnedge.data.hamlet import CharCorpus, load_text, stream_windows
from rnnedge.runtime.errors import CheckpointError, InputError

from . import checkpoint, distributed
from .budget import Budget, steps_record
from .common import (TrainLog, finish, pick_device, progress, seed_everything, set_threads,
                     started, to_device)
from .config import CharLMConfig, CharTrainConfig, gather, resumed
from .expect import judge, load_bands
from .precision import Precision

TASK = "charlm"
CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


class CharLM(nn.Module):
    """ids (B, T) -> logits (B, T, V) and the final recurrent state."""

    def __init__(self, config: CharLMConfig):
        super().__init__()
        self.config = config
        c = config
        kwargs = {"nonlinearity": c.nonlinearity} if c.cell == "rnn" else {}
        self.embedding = nn.Embedding(c.vocab_size, c.embed_dim)
        self.rnn = CELLS[c.cell](c.embed_dim, c.hidden_size, c.num_layers, batch_first=True,
                                 dropout=c.dropout if c.num_layers > 1 else 0.0, **kwargs)
        self.fc = nn.Linear(c.hidden_size, c.vocab_size)

    def init_state(self, batch, device="cpu"):
        """Zero state: (h, c) for LSTM, h otherwise; each (layers, B, H)."""
        shape = (self.config.num_layers, batch, self.config.hidden_size)
        dtype = self.embedding.weight.dtype
        h = torch.zeros(shape, device=device, dtype=dtype)
        return (h, torch.zeros(shape, device=device, dtype=dtype)) if self.config.cell == "lstm" else h

    def forward(self, ids, state=None):
        x = self.embedding(ids)  # (B, T, E)
        out, state = self.rnn(x, state)  # (B, T, H)
        return self.fc(out), state  # (B, T, V)


def detach(state):
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def build_model(ckpt):
    """Rebuild the model from a loaded checkpoint dict, in eval mode on the CPU."""
    model = CharLM(CharLMConfig(**ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    return model.eval()


@torch.no_grad()
def evaluate(model, ids, device, batch_size=16, num_steps=200, world=distributed.ONE):
    """Mean next-character cross-entropy in nats over ``ids``, state carried across windows;
    each rank of ``world`` scores its share of the streams, and the sums are reduced."""
    model.eval()
    mine = distributed.shard(batch_size, world)
    state, total, count = None, 0.0, 0
    for x, y in stream_windows(ids, batch_size, num_steps):
        if len(mine) == 0:
            break
        x, y = to_device(x[mine], device), to_device(y[mine], device)
        logits, state = model(x, state)
        total += nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                             reduction="sum").item()
        count += y.numel()
    total, count = distributed.sum_all([total, count], world)
    return total / count


def windows(n_chars, tc, offset):
    """How many windows ``stream_windows`` cuts ``n_chars`` into from ``offset``."""
    return -(-((n_chars - offset - 1) // tc.batch_size) // tc.num_steps)


def train_epoch(model, opt, ids, tc, device, rng, bar, task, world=distributed.ONE, amp=None,
                budget=None):
    """One pass of truncated BPTT over ``ids``, cut short at the first step boundary where
    ``budget`` is spent (none: unlimited); returns (mean loss, chars/s of all ranks,
    (steps done, steps of the pass)).

    ``model`` may be wrapped in DDP (``distributed.wrap``); this rank trains its rows of the
    global batch. ``amp`` is the run's ``Precision`` (float32 when None).
    """
    model.train()
    amp = amp or Precision("fp32", torch.device(device))
    budget = budget or Budget()
    offset = int(rng.integers(0, tc.num_steps))  # a new cut of the windows each epoch
    steps = windows(len(ids), tc, offset)
    state, total, count, done, t0 = None, 0.0, 0, 0, time.perf_counter()
    for x, y in stream_windows(ids, tc.batch_size, tc.num_steps, offset):
        mine, weight = distributed.rows(np.arange(tc.batch_size), world)
        x, y = to_device(x[mine], device), to_device(y[mine], device)  # (B / ranks, T)
        if state is not None:
            state = detach(state)  # truncate BPTT at the window boundary
        with amp.autocast():
            logits, state = model(x, state)
        loss_sum = nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                                               y.reshape(-1), reduction="sum")
        # clip <= 0 trains without clipping (the gradient diagnostic's baseline)
        amp.step(loss_sum * (weight / y.shape[1]), opt, model.parameters(), tc.clip)
        total += loss_sum.item()
        count, done = count + y.numel(), done + 1
        seconds = time.perf_counter() - t0
        bar.update(task, advance=1,
                   info=f"loss {total / count:.3f}  {count * world.size / seconds:,.0f} chars/s")
        budget.trained(count, seconds)
        if budget.spent():
            break
    total, count = distributed.sum_all([total, count], world)
    return total / count, count / (time.perf_counter() - t0), (done, steps)


def fit(model, opt, corpus, tc, save, history, device, budget, log, world=distributed.ONE,
        amp=None):
    """Epochs after ``history`` up to ``tc.epochs``; ``save(record, is_best)`` commits each
    (checkpoints and log record). ``model`` is what steps (DDP-wrapped in a multi-process
    run), validation runs on its module. An epoch cut short by ``budget`` is validated and
    saved like any other, its record saying how far it went (``budget.steps_record``).

    Returns why training stopped: "epochs" or "budget".
    """
    net = getattr(model, "module", model)
    best = min((h["val_nats"] for h in history), default=None)
    n_windows = windows(len(corpus.train), tc, tc.num_steps - 1)  # the fewest of any offset
    with progress(main=world.main) as bar:
        for epoch in range(len(history) + 1, tc.epochs + 1):
            task = bar.add_task(f"epoch {epoch}/{tc.epochs}", total=n_windows, info="")
            rng = np.random.default_rng([tc.seed, epoch])  # resumable: depends on the epoch only
            train_nats, rate, (done, steps) = train_epoch(model, opt, corpus.train, tc, device,
                                                          rng, bar, task, world, amp, budget)
            bar.remove_task(task)
            with budget.scoring(len(corpus.val) // world.size):
                val_nats = evaluate(net, corpus.val, device, world=world)
            record = {"epoch": epoch, "train_nats": train_nats, "val_nats": val_nats,
                      "val_bpc": val_nats / math.log(2), "chars_per_s": rate,
                      "elapsed_s": budget.elapsed(), **steps_record(done, steps)}
            is_best = best is None or val_nats < best
            best = val_nats if is_best else best
            history.append(record)
            save(record, is_best)
            log.say(f"epoch {epoch}: train {train_nats:.3f} nats, val {val_nats:.3f} "
                    f"nats = {record['val_bpc']:.3f} bits/char, {rate:,.0f} chars/s")
            if done < steps or budget.spent():  # the same on every rank (``Budget.spent``)
                log.write({"event": "stop", "reason": "budget", "epoch": epoch,
                           **steps_record(done, steps)}, budget.stop_line(epoch, done, steps))
                return "budget"
    return "epochs"


def _resume_state(path, out, corpus, main=True):
    """The checkpoint at ``path``, trained on ``corpus``'s text; seeds ``out/best.pt`` (on the
    main rank, the one writer)."""
    ckpt = checkpoint.load(path, TASK)
    if tuple(ckpt["vocab"]) != corpus.vocab:
        raise CheckpointError(f"{path} was trained on another text (its vocabulary differs)")
    if main:
        checkpoint.seed_best(out, path)
    return ckpt


@distributed.holding
def train_charlm(out, text=None, data_dir=None, max_minutes=None, device="auto", resume=None,
                 threads=None, echo=print, preset=None, since=None, **settings):
    """Train on ``text`` (Hamlet by default); write best.pt, last.pt and train_log.jsonl to ``out``.

    ``settings`` are fields of ``CharLMConfig`` and ``CharTrainConfig`` (their defaults apply,
    then the ``preset`` file, then these). Returns the metrics of the best epoch (validation
    nats and bits per character), why training stopped ("epochs" or "budget"), the seconds
    it took and, when the preset has an [expect] band, its verdict (``quality``,
    ``expect.py``). ``max_minutes`` bounds the whole call, from ``since`` when given
    (``budget.py``): an epoch can end part-way, and is then validated and saved.
    ``threads``: torch's CPU threads (default on the CPU: the free cores,
    ``common.set_threads``). The call holds ``out`` (``rundir``): a second training into it
    fails at once, and a kill at any point leaves its files in step.
    A fresh run refuses an ``out`` that holds a run already; ``resume`` (a checkpoint or a run
    directory) continues one, into ``out``, by the rule of ``train/config.py``, with the epoch
    after the checkpoint's (also after a partial one). Under torchrun every process calls
    this; rank 0 writes (``distributed``).
    """
    out, budget = Path(out), Budget(max_minutes, since)
    model_settings, train_settings = gather(CharLMConfig, CharTrainConfig, preset, settings)
    bands = load_bands(preset, ("val_bpc",))
    resumed_path = checkpoint.resume_path(out, resume)
    device, world = pick_device(device), distributed.from_env()
    threads = set_threads(threads, device)
    corpus = CharCorpus.from_text(load_text(text, data_dir))
    ckpt = _resume_state(resumed_path, out, corpus, world.main) if resumed_path else None
    tc = (resumed(ckpt, CharTrainConfig, model_settings, train_settings, resumed_path) if ckpt
          else CharTrainConfig(**train_settings))
    if tc.epochs < 1:
        raise InputError(f"--epochs must be at least 1, not {tc.epochs}")
    distributed.local_batch(tc.batch_size, world)
    world, device = distributed.join(device)
    amp = Precision(tc.precision, device)
    seed_everything(tc.seed)
    config = (CharLMConfig(**ckpt["config"]) if ckpt
              else CharLMConfig(len(corpus.vocab), **model_settings))
    model = CharLM(config).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=tc.lr)
    history = checkpoint.restore(ckpt, model, opt) if ckpt else []
    amp.load_state_dict(ckpt and ckpt.get("scaler"))
    where = distributed.trained_on(device, tc.precision, world, threads.count)

    def save(record, is_best):
        if world.main:
            checkpoint.save_epoch(out, {
                "task": TASK, "config": asdict(config), "train_config": asdict(tc),
                "vocab": list(corpus.vocab), "model": model.state_dict(),
                "optimizer": opt.state_dict(), "epoch": record["epoch"], "metrics": record,
                "history": history, **checkpoint.rng_state(), "scaler": amp.state_dict(),
                "trained_on": where}, is_best)

    log = TrainLog(out, echo, world.main)
    log.say(started(device, threads, world))
    budget.plan(len(corpus.val) // world.size)
    stopped = fit(distributed.wrap(model, world), opt, corpus, tc, save, history, device,
                  budget, log, world, amp)
    best = {**min(history, key=lambda h: h["val_nats"]), "stopped": stopped,
            "train_s": budget.elapsed()}
    return finish(best, log, budget, judge(bands, best, history, tc.epochs, max_minutes))
