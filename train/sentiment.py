"""Training the IMDb sentiment classifier (``sentiment_model.py``) and scoring it.

Training: BCE with logits, Adam, gradient clipping by global norm, batches of
similar length (less padding to compute), early stopping on validation accuracy.
The test split is scored once, at the end, from the best checkpoint (by rank 0 alone in a
multi-process run). On several processes (torchrun, ``distributed.py``) every rank draws the
same plan of global batches and trains its rows of each; validation is reduced over ranks.
Not here: the model and its rebuild from a checkpoint (``sentiment_model.py``), the configs
(``config.py``).
"""

import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rnnedge.data.imdb import load_imdb, load_labeled_file, split_train_val
from rnnedge.runtime.errors import DataError, InputError
from rnnedge.runtime.tokenizer import Tokenizer, pad_batch

from . import checkpoint, distributed
from .budget import Budget, balanced_sample, steps_record
from .common import (TrainLog, counted, finish, pick_device, progress, seed_everything,
                     set_threads, started, to_device)
from .config import SentimentConfig, SentimentTrainConfig, gather, resumed
from .expect import judge, load_bands
from .precision import Precision
from .sentiment_model import SentimentModel, build_model

TASK = "sentiment"


def length_batches(lengths, batch_size, rng=None):
    """Index batches of similar length; shuffled pools of 50 batches when ``rng`` is given.

    Without ``rng`` the whole set is sorted by length (evaluation: least padding).
    """
    order = rng.permutation(len(lengths)) if rng is not None else np.arange(len(lengths))
    pool = batch_size * 50 if rng is not None else len(lengths)
    batches = []
    for start in range(0, len(order), pool):
        chunk = order[start:start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    if rng is not None:
        rng.shuffle(batches)
    return batches


def _tensors(rows, batch, device):
    ids, lengths = pad_batch([rows[i] for i in batch])  # (B, T), (B,)
    return to_device(ids, device), to_device(lengths, device)


@torch.no_grad()
def _logits(model, rows, device, batch_size=256, advance=None):
    """Logits (N,) of encoded reviews, in their input order; ``advance(n)`` after each batch
    (a progress bar, ``common.counted``)."""
    model.eval()
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    out = np.empty(len(rows), dtype=np.float32)
    for batch in length_batches(lengths, batch_size):
        out[batch] = model(*_tensors(rows, batch, device)).float().cpu().numpy()
        if advance:
            advance(len(batch))
    return out


def predict_proba(model, tokenizer, texts, batch_size=256):
    """P(positive) for each text, float32 (N,); an empty review is an ``InputError``."""
    rows = tokenizer.encode_rows(texts)
    device = next(model.parameters()).device
    return torch.sigmoid(torch.from_numpy(_logits(model, rows, device, batch_size))).numpy()


def evaluate(model, rows, labels, device, world=distributed.ONE, advance=None):
    """(accuracy, mean BCE) of encoded reviews against 0/1 ``labels``; each rank of
    ``world`` scores its share, and the sums are reduced."""
    mine = distributed.shard(len(rows), world)
    logits, labels = _logits(model, [rows[i] for i in mine], device, advance=advance), labels[mine]
    loss = nn.functional.binary_cross_entropy_with_logits(
        torch.from_numpy(logits), torch.from_numpy(labels.astype(np.float32)), reduction="sum")
    correct = np.sum((logits > 0) == (labels == 1))
    correct, loss, n = distributed.sum_all([correct, loss.item(), len(mine)], world)
    return float(correct / n), float(loss / n)


def train_epoch(model, opt, rows, labels, tc, device, rng, bar, task, budget,
                world=distributed.ONE, amp=None):
    """One pass, cut short at the first step boundary where ``budget`` is spent; returns (mean
    loss, reviews/s of all ranks, (steps done, steps of the pass)). This rank trains its rows
    of each global batch (``distributed.rows``)."""
    model.train()
    amp = amp or Precision("fp32", torch.device(device))
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    batches = length_batches(lengths, tc.batch_size, rng)
    total, count, done, t0 = 0.0, 0, 0, time.perf_counter()
    for batch in batches:
        mine, weight = distributed.rows(batch, world)
        ids, lens = _tensors(rows, mine, device)
        target = to_device(labels[mine].astype(np.float32), device)
        with amp.autocast():
            logits = model(ids, lens)
        loss_sum = nn.functional.binary_cross_entropy_with_logits(logits.float(), target,
                                                                  reduction="sum")
        amp.step(loss_sum * weight, opt, model.parameters(), tc.clip)
        if weight:  # a stand-in row (weight 0) is not data of this rank
            total, count = total + loss_sum.item(), count + len(mine)
        done, seconds = done + 1, time.perf_counter() - t0
        rate = count * world.size / seconds
        bar.update(task, advance=1, info=f"loss {total / max(count, 1):.3f}  {rate:,.0f} reviews/s")
        budget.trained(count, seconds)
        if budget.spent():
            break
    total, count = distributed.sum_all([total, count], world)
    return total / count, count / (time.perf_counter() - t0), (done, len(batches))


def _load_records(data, data_dir):
    """(train, test) records: IMDb, or a labeled file, which has no test split (None)."""
    if data is None:
        return load_imdb("train", data_dir), load_imdb("test", data_dir)
    return load_labeled_file(data), None


def _encode(tokenizer, records, name):
    """(rows of ids, labels int64 (N,)); a review without a single token is a ``DataError``."""
    rows = [tokenizer.encode(r.text) for r in records]
    empty = [r.id for r, row in zip(records, rows) if not row]
    if empty:
        raise DataError(f"{len(empty)} {name} review(s) have no words, first {empty[0]}; "
                        f"remove them from the data")
    return rows, np.array([r.label for r in records], dtype=np.int64)


def _resume_checkpoint(path, out, main=True):
    """The checkpoint at ``path`` to continue from (None for a fresh run); seeds ``out/best.pt``
    (on the main rank, the one writer)."""
    if path is None:
        return None
    ckpt = checkpoint.load(path, TASK)
    if main:
        checkpoint.seed_best(out, path)
    return ckpt


def _config(model_settings):
    """The config of a fresh run; checked before any data is read."""
    return SentimentConfig(**model_settings)


def _setup(ckpt, records, config):
    """(config, tokenizer): from the checkpoint, or ``config`` with a vocabulary of ``records``."""
    if ckpt:
        return SentimentConfig(**ckpt["config"]), Tokenizer.from_dict(ckpt["vocab"])
    tokenizer = Tokenizer.build([r.text for r in records], min_count=config.min_count,
                                max_size=config.max_vocab, max_len=config.max_len, keep=config.keep)
    return replace(config, vocab_size=tokenizer.vocab_size), tokenizer


def _payload(config, tc, tokenizer, model, opt, epoch, record, history, run):
    """The checkpoint of an epoch; ``run`` is (Precision, trained_on dict)."""
    return {"task": TASK, "config": asdict(config), "train_config": asdict(tc),
            "vocab": tokenizer.to_dict(), "model": model.state_dict(),
            "optimizer": opt.state_dict(), "epoch": epoch, "metrics": record,
            "history": history, **checkpoint.rng_state(),
            "scaler": run[0].state_dict(), "trained_on": run[1]}


def _score_test(out, records, device, log, budget, seed):
    """Test accuracy of ``out/best.pt``, also written into its metrics: on every review, or
    on a seeded class-balanced sample of the size that fits the time left (``budget.py``)."""
    n, sample = budget.test_size(), None
    if n < len(records):
        picked = balanced_sample([r.label for r in records], n, seed)
        sample = {"test_n": n, "test_of": len(records), "test_seed": seed, "unit": "reviews"}
        records = [records[i] for i in picked]

    def score(best):
        with counted(f"scoring best.pt on {len(records):,} test reviews", len(records)) as advance:
            rows, labels = _encode(Tokenizer.from_dict(best["vocab"]), records, "test")
            return evaluate(build_model(best).to(device), rows, labels, device, advance=advance)

    return checkpoint.record_test(out, TASK, log, score, sample)


def _stop_reason(history, tc, budget):
    """"budget" (the last epoch was cut short, or no time is left for another step), "early"
    (no better validation accuracy for ``patience`` epochs) or None."""
    if history[-1]["partial"] or budget.spent():  # the same on every rank: see budget.py
        return "budget"
    best = max(history, key=lambda h: h["val_acc"])
    return "early" if history[-1]["epoch"] - best["epoch"] >= tc.patience else None


def fit(model, opt, train, val, tc, save, history, device, budget, log, world=distributed.ONE,
        amp=None):
    """Epochs after ``history`` up to ``tc.epochs``; ``save(record, is_best)`` commits each
    (checkpoints and log record, see ``checkpoint.save_epoch``). ``model`` is what steps
    (DDP-wrapped in a multi-process run), validation runs on its module. An epoch cut short
    by ``budget`` is validated and saved like any other, its record saying how far it went.

    Returns why training stopped: "epochs", "early" or "budget".
    """
    net = getattr(model, "module", model)
    with progress(main=world.main) as bar:
        for epoch in range(len(history) + 1, tc.epochs + 1):
            steps = -(-len(train[0]) // tc.batch_size)
            task = bar.add_task(f"epoch {epoch}/{tc.epochs}", total=steps, info="")
            rng = np.random.default_rng([tc.seed, epoch])  # resumable: depends on the epoch only
            train_loss, rate, (done, steps) = train_epoch(model, opt, *train, tc, device, rng, bar,
                                                          task, budget, world, amp)
            bar.remove_task(task)
            with budget.scoring(len(distributed.shard(len(val[0]), world))):
                val_acc, val_loss = evaluate(net, *val, device, world)
            record = {"epoch": epoch, "train_loss": train_loss, "val_acc": val_acc,
                      "val_loss": val_loss, "reviews_per_s": rate, "elapsed_s": budget.elapsed(),
                      **steps_record(done, steps)}
            is_best = val_acc > max((h["val_acc"] for h in history), default=-1.0)
            history.append(record)
            save(record, is_best)
            log.say(f"epoch {epoch}: train loss {train_loss:.4f}, val accuracy "
                    f"{val_acc:.4f}, val loss {val_loss:.4f}, {rate:,.0f} reviews/s")
            reason = _stop_reason(history, tc, budget)
            if reason:
                line = (budget.stop_line(epoch, done, steps) if reason == "budget" else
                        f"stopped after epoch {epoch}: no better validation accuracy for "
                        f"{tc.patience} epochs")
                log.write({"event": "stop", "reason": reason, "epoch": epoch,
                           **steps_record(done, steps)}, line)
                return reason
    return "epochs"


@distributed.holding
def train_sentiment(out, data=None, data_dir=None, max_minutes=None, device="auto", resume=None,
                    threads=None, echo=print, preset=None, since=None, **settings):
    """Train on IMDb (or the labeled file ``data``); write best.pt, last.pt, train_log.jsonl.

    ``settings`` are fields of ``SentimentConfig`` and ``SentimentTrainConfig`` (their defaults
    apply, then the ``preset`` file, then these). Returns the metrics of the best epoch, why
    training stopped, the seconds it took, for IMDb the test accuracy of best.pt and, when
    the preset has an [expect] band, its verdict (``quality``, ``expect.py``). ``max_minutes``
    bounds the whole call, the test scoring included, from ``since`` when given
    (``budget.py``): an epoch can end
    part-way, and the test split is sampled when it cannot be scored whole in the time left.
    ``threads``: torch's CPU threads (default on the CPU: the free cores). Resume follows the
    rule of ``train/config.py``: it goes on with the epoch after the checkpoint's. Under
    torchrun every process calls this; rank 0 writes (``distributed``).
    """
    out, budget = Path(out), Budget(max_minutes, since)
    model_settings, train_settings = gather(SentimentConfig, SentimentTrainConfig, preset,
                                            settings, fixed=("vocab_size",))
    bands = load_bands(preset, ("val_acc",))
    device, world = pick_device(device), distributed.from_env()
    threads = set_threads(threads, device)
    resumed_path = checkpoint.resume_path(out, resume)
    ckpt = _resume_checkpoint(resumed_path, out, world.main)
    tc = (resumed(ckpt, SentimentTrainConfig, model_settings, train_settings, resumed_path) if ckpt
          else SentimentTrainConfig(**train_settings))
    if tc.epochs < 1:
        raise InputError(f"--epochs must be at least 1, not {tc.epochs}")
    fresh = None if ckpt else _config(model_settings)
    distributed.local_batch(tc.batch_size, world)
    world, device = distributed.join(device)
    amp = Precision(tc.precision, device)
    seed_everything(tc.seed)
    train_records, test_records = _load_records(data, data_dir)
    train_records, val_records = split_train_val(train_records, tc.val_size, tc.seed)
    config, tokenizer = _setup(ckpt, train_records, fresh)
    train = _encode(tokenizer, train_records, "training")
    t0 = time.perf_counter()
    val = _encode(tokenizer, val_records, "validation")
    encode_s = (time.perf_counter() - t0) / len(val_records)  # per review, as the test's will be
    model = SentimentModel(config).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=tc.lr)
    history = checkpoint.restore(ckpt, model, opt) if ckpt else []
    amp.load_state_dict(ckpt and ckpt.get("scaler"))
    run = (amp, distributed.trained_on(device, tc.precision, world, threads.count))

    def save(record, is_best):
        if world.main:
            payload = _payload(config, tc, tokenizer, model, opt, record["epoch"], record,
                               history, run)
            checkpoint.save_epoch(out, payload, is_best)

    log = TrainLog(out, echo, world.main)
    log.say(started(device, threads, world))
    budget.plan(len(distributed.shard(len(val[0]), world)),
                len(test_records) if test_records is not None else 0, encode_s)
    stopped = fit(distributed.wrap(model, world), opt, train, val, tc, save, history, device,
                  budget, log, world, amp)
    metrics = {**max(history, key=lambda h: h["val_acc"]), "stopped": stopped,
               "train_s": budget.elapsed(), "params": sum(p.numel() for p in model.parameters())}
    if test_records is not None and world.main:
        metrics.update(_score_test(out, test_records, device, log, budget, tc.seed))
    return finish(metrics, log, budget, judge(bands, metrics, history, tc.epochs, max_minutes))
