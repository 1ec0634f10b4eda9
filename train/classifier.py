"""One training loop for the classifiers of reviews (``sentiment.py``) and frames (``series.py``).

The loop: epochs of batches of similar length (shuffled pools, drawn from the seed and the
epoch, so that a resumed run draws the plan an uninterrupted one would), the time budget
checked at every step boundary (``budget.py``: an epoch can end part-way and is validated
and saved like any other), validation after each epoch, best.pt by validation (or the mean
weights of the late epochs, ``averaging.py``), early stopping after ``patience`` epochs
without a better one, each epoch one commit of checkpoints and log (``checkpoint.save_epoch``),
resume by the rule of ``config.py``, and at the end the test split scored from best.pt, on a
class-balanced sample when the budget leaves no room for all of it. On several processes
(torchrun, ``distributed.py``) every rank draws the same plan of global batches and trains
its rows of each; validation is reduced over ranks, the test split is scored by rank 0 alone.

What differs between kinds is a ``Kind``, an adapter: its data and what the checkpoint keeps
of it (a vocabulary; classes and a normalisation), how items become model inputs, the
objective (one logit or one per class), the ranking of epochs, augmentation and weight
averaging. Not here: the models (``sentiment_model.py``, ``series_model.py``), the configs
(``config.py``).
"""

import time
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from . import checkpoint, distributed
from .budget import Budget, balanced_sample, steps_record
from .common import (TrainLog, counted, finish, pick_device, progress, seed_everything,
                     set_threads, started, to_device)
from .config import gather, resumed
from .expect import judge, load_bands
from .precision import Precision


class Binary:
    """One logit per item (B,), P(class 1) its sigmoid: binary cross-entropy."""

    def target(self, labels):
        return labels.astype(np.float32)

    def loss(self, logits, target):
        return nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="sum")

    def predict(self, logits):
        return (logits > 0).astype(np.int64)

    def shape(self, config):
        return ()


class Multiclass:
    """One logit per class (B, K): cross-entropy."""

    def target(self, labels):
        return labels

    def loss(self, logits, target):
        return nn.functional.cross_entropy(logits, target, reduction="sum")

    def predict(self, logits):
        return logits.argmax(axis=1)

    def shape(self, config):
        return (config.num_classes,)


class Prepared(NamedTuple):
    """What ``Kind.prepare`` hands the loop."""

    config: object  # the model config: the checkpoint's, or the fresh one completed from the data
    train: tuple  # (items, labels int64 (N,))
    val: tuple
    test_items: int = 0  # items of the test split scored at the end; 0: there is none
    prepare_s: float = 0.0  # seconds to prepare one test item before it is scored


class Kind:
    """A kind of classifier, as the loop sees it; one per training call, holding its data.

    A subclass sets the class attributes and writes
    ``prepare(ckpt, fresh, tc)``: a ``Prepared``, the model config being the checkpoint's
    (resumed) or ``fresh`` completed from the data;
    ``inputs(items, batch, device)``: the model's input tensors for the items ``batch``;
    ``state()``: what the checkpoint keeps of the data beside the weights (``vocab``, ...);
    ``test_labels()``: the test split's labels, int64 (N,), and ``test_items(best, picked)``:
    its items ``picked``, prepared as the checkpoint ``best`` wants them.
    The other hooks have the defaults of a plain early-stopped classifier.
    """

    task = unit = None  # the checkpoint's task; what an item is called in logs ("reviews")
    config = train_config = None  # the config dataclasses (``config.py``)
    model = build = None  # the model class (config -> module); its rebuild from a checkpoint
    objective = Multiclass()
    ranked_by = "validation accuracy"  # what ``rank`` orders epochs by, for the stop line
    average = None  # a ``WeightAverage`` when ``average_from`` can turn averaging on

    def rank(self, record):
        """An epoch's standing: best.pt holds the epoch of the highest."""
        return record["val_acc"]

    def average_from(self, tc):
        """The epoch from which best.pt holds the mean weights (no early stopping); 0: never."""
        return 0

    def augment(self, inputs, tc):
        """The inputs of a training step, perturbed; as they are by default."""
        return inputs


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


def lengths_of(items):
    return np.fromiter(map(len, items), dtype=np.int64, count=len(items))


@torch.no_grad()
def logits_of(kind, model, items, device, batch_size=256, advance=None):
    """Logits, (N,) or (N, K), of ``items`` in their input order; ``advance(n)`` after each
    batch (a progress bar, ``common.counted``)."""
    model.eval()
    out = np.empty((len(items), *kind.objective.shape(model.config)), dtype=np.float32)
    for batch in length_batches(lengths_of(items), batch_size):
        out[batch] = model(*kind.inputs(items, batch, device)).float().cpu().numpy()
        if advance:
            advance(len(batch))
    return out


def evaluate(kind, model, items, labels, device, world=distributed.ONE, advance=None):
    """(accuracy, mean loss) of ``items`` against int ``labels``; each rank of ``world`` scores
    its share, and the sums are reduced."""
    mine = distributed.shard(len(items), world)
    logits = logits_of(kind, model, [items[i] for i in mine], device, advance=advance)
    labels = labels[mine]
    target = torch.from_numpy(kind.objective.target(labels))
    loss = kind.objective.loss(torch.from_numpy(logits), target).item()
    correct = np.sum(kind.objective.predict(logits) == labels)
    correct, loss, n = distributed.sum_all([correct, loss, len(mine)], world)
    return float(correct / n), float(loss / n)


def train_epoch(kind, model, opt, items, labels, tc, device, rng, bar, task, budget,
                world=distributed.ONE, amp=None):
    """One pass, cut short at the first step boundary where ``budget`` is spent; returns (mean
    loss, items/s of all ranks, (steps done, steps of the pass)). This rank trains its rows
    of each global batch (``distributed.rows``)."""
    model.train()
    amp = amp or Precision("fp32", torch.device(device))
    batches = length_batches(lengths_of(items), tc.batch_size, rng)
    total, count, done, t0 = 0.0, 0, 0, time.perf_counter()
    for batch in batches:
        mine, weight = distributed.rows(batch, world)
        inputs = kind.augment(kind.inputs(items, mine, device), tc)
        target = to_device(kind.objective.target(labels[mine]), device)
        with amp.autocast():
            logits = model(*inputs)
        loss_sum = kind.objective.loss(logits.float(), target)
        amp.step(loss_sum * weight, opt, model.parameters(), tc.clip)
        if weight:  # a stand-in row (weight 0) is not data of this rank
            total, count = total + loss_sum.item(), count + len(mine)
        done, seconds = done + 1, time.perf_counter() - t0
        rate = count * world.size / seconds
        bar.update(task, advance=1,
                   info=f"loss {total / max(count, 1):.3f}  {rate:,.0f} {kind.unit}/s")
        budget.trained(count, seconds)
        if budget.spent():
            break
    total, count = distributed.sum_all([total, count], world)
    return total / count, count / (time.perf_counter() - t0), (done, len(batches))


def fit(kind, model, opt, train, val, tc, save, history, device, budget, log,
        world=distributed.ONE, amp=None):
    """Epochs after ``history`` up to ``tc.epochs``; ``save(record, is_best, scored)`` commits
    each, ``scored`` being the weights validated. ``model`` is what steps (DDP-wrapped in a
    multi-process run), validation runs on its module. From epoch ``kind.average_from(tc)``
    on (when set) ``kind.average`` takes each epoch's weights, and its mean is validated and
    is the best.

    Returns why training stopped: "epochs", "early" (no better ``kind.rank`` for ``patience``
    epochs; never while averaging) or "budget" (an epoch cut short, or no time left for a step).
    """
    net, start = getattr(model, "module", model), kind.average_from(tc)
    with progress(main=world.main) as bar:
        for epoch in range(len(history) + 1, tc.epochs + 1):
            steps = -(-len(train[0]) // tc.batch_size)
            task = bar.add_task(f"epoch {epoch}/{tc.epochs}", total=steps, info="")
            rng = np.random.default_rng([tc.seed, epoch])  # resumable: depends on the epoch only
            train_loss, rate, (done, steps) = train_epoch(kind, model, opt, *train, tc, device,
                                                          rng, bar, task, budget, world, amp)
            bar.remove_task(task)
            averaging = bool(start) and epoch >= start
            if averaging:
                kind.average.update(net)
            scored = kind.average.model(net) if averaging else net
            with budget.scoring(len(distributed.shard(len(val[0]), world))):
                val_acc, val_loss = evaluate(kind, scored, *val, device, world)
            record = {"epoch": epoch, "train_loss": train_loss, "val_acc": val_acc,
                      "val_loss": val_loss, f"{kind.unit}_per_s": rate,
                      "elapsed_s": budget.elapsed(), **steps_record(done, steps),
                      **({"averaged_epochs": kind.average.count} if averaging else {})}
            is_best = averaging or not history or kind.rank(record) > max(map(kind.rank, history))
            history.append(record)
            save(record, is_best, scored)
            log.say(f"epoch {epoch}: train loss {train_loss:.4f}, val accuracy {val_acc:.4f}, "
                    f"val loss {val_loss:.4f}, {rate:,.0f} {kind.unit}/s")
            reason = stop_reason(kind, history, tc, budget, start)
            if reason:
                line = (budget.stop_line(epoch, done, steps) if reason == "budget" else
                        f"stopped after epoch {epoch}: no better {kind.ranked_by} for "
                        f"{tc.patience} epochs")
                log.write({"event": "stop", "reason": reason, "epoch": epoch,
                           **steps_record(done, steps)}, line)
                return reason
    return "epochs"


def stop_reason(kind, history, tc, budget, average_from):
    """"budget" (the last epoch was cut short, or no time is left for another step), "early"
    (no better epoch for ``patience`` epochs, unless averaging) or None."""
    if history[-1]["partial"] or budget.spent():  # the same on every rank: see budget.py
        return "budget"
    best = best_record(kind, history)["epoch"]
    return "early" if not average_from and history[-1]["epoch"] - best >= tc.patience else None


def best_record(kind, history):
    """The record of best.pt: the last averaged epoch, else the first of the highest rank."""
    averaged = [r for r in history if "averaged_epochs" in r]
    return averaged[-1] if averaged else max(history, key=kind.rank)


def score_test(kind, out, device, log, budget, seed):
    """Test accuracy of ``out/best.pt``, also written into its metrics: on every item, or on
    a seeded class-balanced sample of the size that fits the time left (``budget.py``)."""
    labels = kind.test_labels()
    picked, n, sample = np.arange(len(labels)), budget.test_size(), None
    if n < len(labels):
        picked = balanced_sample(labels, n, seed)
        sample = {"test_n": n, "test_of": len(labels), "test_seed": seed, "unit": kind.unit}

    def score(best):
        what = f"scoring best.pt on {len(picked):,} test {kind.unit}"
        with counted(what, len(picked)) as advance:
            items = kind.test_items(best, picked)
            return evaluate(kind, kind.build(best).to(device), items, labels[picked], device,
                            advance=advance)

    return checkpoint.record_test(out, kind.task, log, score, sample)


def train(kind, out, settings, max_minutes=None, device="auto", resume=None, threads=None,
          echo=print, preset=None, since=None):
    """The call of ``sentiment.train_sentiment`` and ``series.train_series`` (their docstrings
    say what it does) for ``kind``, a new ``Kind`` holding where the data is."""
    out, budget = Path(out), Budget(max_minutes, since)
    model_settings, train_settings = gather(kind.config, kind.train_config, preset, settings)
    bands = load_bands(preset, ("val_acc",))
    device, world = pick_device(device), distributed.from_env()
    threads = set_threads(threads, device)
    resumed_path = checkpoint.resume_path(out, resume)
    ckpt = checkpoint.load(resumed_path, kind.task) if resumed_path else None
    if ckpt and world.main:  # the one writer
        checkpoint.seed_best(out, resumed_path)
    tc = (resumed(ckpt, kind.train_config, model_settings, train_settings, resumed_path) if ckpt
          else kind.train_config(**train_settings))
    fresh = None if ckpt else kind.config(**model_settings)  # typed errors before any data is read
    distributed.local_batch(tc.batch_size, world)
    world, device = distributed.join(device)
    amp = Precision(tc.precision, device)
    seed_everything(tc.seed)
    data = kind.prepare(ckpt, fresh, tc)
    model = kind.model(data.config).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=tc.lr)
    history = checkpoint.restore(ckpt, model, opt) if ckpt else []
    amp.load_state_dict(ckpt and ckpt.get("scaler"))
    where = distributed.trained_on(device, tc.precision, world, threads.count)

    def save(record, is_best, scored):
        if world.main:
            payload = {"task": kind.task, "config": asdict(data.config), "train_config": asdict(tc),
                       **kind.state(), "model": model.state_dict(), "optimizer": opt.state_dict(),
                       "epoch": record["epoch"], "metrics": record, "history": history,
                       **checkpoint.rng_state(), "scaler": amp.state_dict(), "trained_on": where}
            best = None if scored is model else {**payload, "model": scored.state_dict()}
            checkpoint.save_epoch(out, payload, is_best, best)

    log = TrainLog(out, echo, world.main)
    log.say(started(device, threads, world))
    budget.plan(len(distributed.shard(len(data.val[0]), world)), data.test_items, data.prepare_s)
    stopped = fit(kind, distributed.wrap(model, world), opt, data.train, data.val, tc, save,
                  history, device, budget, log, world, amp)
    metrics = {**best_record(kind, history), "stopped": stopped, "train_s": budget.elapsed(),
               "params": sum(p.numel() for p in model.parameters())}
    if data.test_items and world.main:
        metrics.update(score_test(kind, out, device, log, budget, tc.seed))
    return finish(metrics, log, budget, judge(bands, metrics, history, tc.epochs, max_minutes))
