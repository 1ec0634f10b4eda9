"""Training the classifier of real-valued frames (``series_model.py``) and scoring it.

Data: Japanese Vowels by default, or any ``.ts``/``.npz``/``.csv`` file (``data/series.py``).
A stratified, seeded validation split is carved out of the training data for early
stopping; the per-channel mean and standard deviation are fitted on what is left (never
on validation or test frames) and stored in the checkpoint as ``norm``; the test split
only gives the final number, from best.pt. Cross-entropy, Adam, gradient clipping by
global norm, batches of similar length. On several processes (torchrun,
``distributed.py``) every rank draws the same plan of global batches and trains its rows of
each; validation is reduced over ranks, the test split is scored by rank 0 alone. Not here:
the model (``series_model.py``), the configs (``config.py``).
"""

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rnnedge.data.series import load_series, load_vowels, relabel, split_stratified
from rnnedge.runtime.errors import DataError
from rnnedge.runtime.series import pad_cases

from . import checkpoint, distributed
from .averaging import load_average
from .budget import Budget, balanced_sample, steps_record
from .common import (TrainLog, counted, finish, pick_device, progress, seed_everything,
                     set_threads, started, to_device)
from .config import SeriesConfig, SeriesTrainConfig, gather, resumed
from .expect import judge, load_bands
from .precision import Precision
from .sentiment import length_batches
from .series_model import SeriesNet, build_model

TASK = "series"
STD_FLOOR = 1e-6  # a constant channel is divided by 1, not by zero


def fit_norm(X):
    """{"mean", "std"}: per-channel lists over every frame of the cases ``X`` [(T, C)]."""
    frames = np.concatenate(X, axis=0).astype(np.float64)  # (sum T, C)
    std = frames.std(axis=0)
    return {"mean": frames.mean(axis=0).tolist(),
            "std": np.where(std > STD_FLOOR, std, 1.0).tolist()}


def normalise(X, norm):
    mean, std = np.float32(norm["mean"]), np.float32(norm["std"])
    return [((x - mean) / std).astype(np.float32) for x in X]


def pad(X, batch, device):
    """frames (B, T, C) right-padded with zeros and lengths (B,) of cases ``batch``."""
    frames, lengths = pad_cases([X[i] for i in batch])
    return to_device(frames, device), to_device(lengths, device)


@torch.no_grad()
def logits_of(model, X, device, batch_size=256, advance=None):
    """Logits (N, K) of normalised cases, in their input order; ``advance(n)`` after each
    batch (a progress bar, ``common.counted``)."""
    model.eval()
    lengths = np.array([len(x) for x in X], dtype=np.int64)
    out = np.empty((len(X), model.config.num_classes), dtype=np.float32)
    for batch in length_batches(lengths, batch_size):
        out[batch] = model(*pad(X, batch, device)).float().cpu().numpy()
        if advance:
            advance(len(batch))
    return out


def evaluate(model, X, labels, device, world=distributed.ONE, advance=None):
    """(accuracy, mean cross-entropy) of normalised cases against int ``labels``; each rank
    of ``world`` scores its share, and the sums are reduced."""
    mine = distributed.shard(len(X), world)
    logits, labels = logits_of(model, [X[i] for i in mine], device, advance=advance), labels[mine]
    loss = nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels),
                                       reduction="sum").item()
    correct = np.sum(logits.argmax(axis=1) == labels)
    correct, loss, n = distributed.sum_all([correct, loss, len(mine)], world)
    return float(correct / n), float(loss / n)


def train_epoch(model, opt, X, labels, tc, device, rng, bar, task, budget,
                world=distributed.ONE, amp=None):
    """One pass, cut short at the first step boundary where ``budget`` is spent; returns (mean
    loss, cases/s of all ranks, (steps done, steps of the pass)). This rank trains its rows
    of each global batch (``distributed.rows``)."""
    model.train()
    amp = amp or Precision("fp32", torch.device(device))
    batches = length_batches(np.array([len(x) for x in X]), tc.batch_size, rng)
    total, count, done, t0 = 0.0, 0, 0, time.perf_counter()
    for batch in batches:
        mine, weight = distributed.rows(batch, world)
        target = to_device(labels[mine], device)
        frames, lengths = pad(X, mine, device)
        if tc.noise:  # augmentation on the normalised frames; padding is masked anyway
            frames = frames + tc.noise * torch.randn_like(frames)
        with amp.autocast():
            logits = model(frames, lengths)
        loss_sum = nn.functional.cross_entropy(logits.float(), target, reduction="sum")
        amp.step(loss_sum * weight, opt, model.parameters(), tc.clip)
        if weight:  # a stand-in row (weight 0) is not data of this rank
            total, count = total + loss_sum.item(), count + len(mine)
        done += 1
        bar.update(task, advance=1, info=f"loss {total / max(count, 1):.3f}")
        budget.trained(count, time.perf_counter() - t0)
        if budget.spent():
            break
    total, count = distributed.sum_all([total, count], world)
    return total / count, count / (time.perf_counter() - t0), (done, len(batches))


def fit(model, opt, train, val, tc, save, history, device, budget, log, world=distributed.ONE,
        amp=None, average=None):
    """Epochs after ``history`` up to ``tc.epochs``; ``save(record, is_best, scored)`` commits
    each, ``scored`` being the weights validated. ``model`` is what steps (DDP-wrapped in a
    multi-process run), validation runs on its module. From epoch ``tc.average_from`` on (when
    set) ``average`` (``averaging.WeightAverage``) takes each epoch's weights, and its mean is
    validated and is the best. An epoch cut short by ``budget`` is validated and saved like
    any other, its record saying how far it went.

    Returns why training stopped: "epochs", "early" (no better validation accuracy for
    ``patience`` epochs; ties go to the lower validation loss; never while averaging) or
    "budget".
    """
    net = getattr(model, "module", model)
    with progress(main=world.main) as bar:
        for epoch in range(len(history) + 1, tc.epochs + 1):
            task = bar.add_task(f"epoch {epoch}/{tc.epochs}", total=-(-len(train[0]) // tc.batch_size),
                                info="")
            rng = np.random.default_rng([tc.seed, epoch])  # resumable: depends on the epoch only
            train_loss, rate, (done, steps) = train_epoch(model, opt, *train, tc, device, rng, bar,
                                                          task, budget, world, amp)
            bar.remove_task(task)
            averaging = bool(tc.average_from) and epoch >= tc.average_from
            if averaging:
                average.update(net)
            scored = average.model(net) if averaging else net
            with budget.scoring(len(distributed.shard(len(val[0]), world))):
                val_acc, val_loss = evaluate(scored, *val, device, world)
            record = {"epoch": epoch, "train_loss": train_loss, "val_acc": val_acc,
                      "val_loss": val_loss, "cases_per_s": rate, "elapsed_s": budget.elapsed(),
                      **steps_record(done, steps),
                      **({"averaged_epochs": average.count} if averaging else {})}
            is_best = averaging or not history or _rank(record) > max(map(_rank, history))
            history.append(record)
            save(record, is_best, scored)
            log.say(f"epoch {epoch}: train loss {train_loss:.4f}, val accuracy {val_acc:.4f}, "
                    f"val loss {val_loss:.4f}, {rate:,.0f} cases/s")
            best = best_record(history)["epoch"]
            early = not tc.average_from and epoch - best >= tc.patience
            # done < steps is the same on every rank, so all call ``spent`` alike (budget.py)
            reason = "budget" if done < steps or budget.spent() else "early" if early else None
            if reason:
                line = (budget.stop_line(epoch, done, steps) if reason == "budget" else
                        f"stopped after epoch {epoch}: no better validation for {tc.patience} epochs")
                log.write({"event": "stop", "reason": reason, "epoch": epoch,
                           **steps_record(done, steps)}, line)
                return reason
    return "epochs"


def _rank(record):
    """Validation accuracy first; a small validation split ties often, so loss breaks ties."""
    return record["val_acc"], -record["val_loss"]


def best_record(history):
    """The record of best.pt: the last averaged epoch, else the best by validation."""
    averaged = [r for r in history if "averaged_epochs" in r]
    return averaged[-1] if averaged else max(history, key=_rank)


def load_splits(data, test, data_dir, missing="error"):
    """(training Series, test Series or None): Japanese Vowels when ``data`` is None;
    ``missing`` is ``data.series``'s policy for missing values in the user's files."""
    if data is None:
        return load_vowels("train", data_dir), load_vowels("test", data_dir) if test is None \
            else load_series(test, missing)
    return load_series(data, missing), None if test is None else load_series(test, missing)


def _setup(ckpt, train, train_idx, model_settings):
    """(config, norm, class names): the checkpoint's, or fitted on the training cases."""
    if ckpt:
        return SeriesConfig(**ckpt["config"]), ckpt["norm"], tuple(ckpt["vocab"])
    config = SeriesConfig(**{**model_settings, "channels": train.channels,
                             "num_classes": len(train.classes)})
    return config, fit_norm([train.X[i] for i in train_idx]), train.classes


def _payload(config, tc, classes, norm, model, opt, epoch, record, history, run, average):
    """The checkpoint of an epoch; ``run`` is (Precision, trained_on dict)."""
    return {"average": average.state(), "task": TASK, "config": asdict(config), "train_config": asdict(tc),
            "vocab": list(classes), "norm": norm, "model": model.state_dict(),
            "optimizer": opt.state_dict(), "epoch": epoch, "metrics": record,
            "history": history, **checkpoint.rng_state(),
            "scaler": run[0].state_dict(), "trained_on": run[1]}


def _score_test(out, test, classes, device, log, budget, seed):
    """Test accuracy of ``out/best.pt``, also written into its metrics: on every case, or on
    a seeded class-balanced sample of the size that fits the time left (``budget.py``)."""
    labels = relabel(test, classes, f"the test data {test.name}")
    picked, n, sample = np.arange(len(labels)), budget.test_size(), None
    if n < len(labels):
        picked = balanced_sample(labels, n, seed)
        sample = {"test_n": n, "test_of": len(labels), "test_seed": seed, "unit": "cases"}

    def score(best):
        X = normalise([test.X[i] for i in picked], best["norm"])
        with counted(f"scoring best.pt on {len(picked):,} test cases", len(picked)) as advance:
            return evaluate(build_model(best).to(device), X, labels[picked], device,
                            advance=advance)

    return checkpoint.record_test(out, TASK, log, score, sample)


def _check_labels(train, ckpt):
    if train.y is None:
        raise DataError(f"the training data {train.name} has no class labels")
    if len(train.classes) < 2:
        raise DataError(f"the training data {train.name} has one class only; a classifier needs two")
    if ckpt and (tuple(ckpt["vocab"]) != train.classes
                 or ckpt["config"]["channels"] != train.channels):
        raise DataError(f"--resume: the training data has classes {list(train.classes)} and "
                        f"{train.channels} channels, the checkpoint {ckpt['vocab']} and "
                        f"{ckpt['config']['channels']}; resume on the data it was trained on")


@distributed.holding
def train_series(out, data=None, test=None, data_dir=None, max_minutes=None, device="auto",
                 resume=None, threads=None, echo=print, preset=None, missing="error",
                 since=None, **settings):
    """Train on ``data`` (default Japanese Vowels); write best.pt, last.pt, train_log.jsonl.

    ``settings`` are fields of ``SeriesConfig`` and ``SeriesTrainConfig`` (their defaults
    apply, then the ``preset`` file, then these). Returns the metrics of the best epoch, why
    training stopped, the seconds it took, with a test split the test accuracy of best.pt
    and, when the preset has an [expect] band, its verdict (``quality``, ``expect.py``).
    ``max_minutes`` bounds the whole call, the test scoring included, from ``since`` when
    given (``budget.py``).
    ``threads``: torch's CPU threads (default on the CPU: the free cores). Resume follows
    ``train/config.py``: it goes on with the epoch after the checkpoint's. Under torchrun
    every process calls this; rank 0 writes (``distributed``).
    """
    out, budget = Path(out), Budget(max_minutes, since)
    model_settings, train_settings = gather(SeriesConfig, SeriesTrainConfig, preset, settings,
                                            fixed=("channels", "num_classes"))
    bands = load_bands(preset, ("val_acc",))
    device, world = pick_device(device), distributed.from_env()
    threads = set_threads(threads, device)
    resumed_path = checkpoint.resume_path(out, resume)
    ckpt = checkpoint.load(resumed_path, TASK) if resumed_path else None
    if ckpt and world.main:
        checkpoint.seed_best(out, resumed_path)
    tc = (resumed(ckpt, SeriesTrainConfig, model_settings, train_settings, resumed_path) if ckpt
          else SeriesTrainConfig(**train_settings))
    if not ckpt:
        SeriesConfig(**model_settings)  # typed errors before any data is read
    distributed.local_batch(tc.batch_size, world)
    world, device = distributed.join(device)
    amp = Precision(tc.precision, device)
    seed_everything(tc.seed)
    train, test = load_splits(data, test, data_dir, missing)
    _check_labels(train, ckpt)
    train_idx, val_idx = split_stratified(train.y, tc.val_fraction, tc.seed)
    config, norm, classes = _setup(ckpt, train, train_idx, model_settings)
    X = normalise(train.X, norm)
    fit_set = ([X[i] for i in train_idx], train.y[train_idx])
    val_set = ([X[i] for i in val_idx], train.y[val_idx])
    model = SeriesNet(config).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=tc.lr)
    history = checkpoint.restore(ckpt, model, opt) if ckpt else []
    amp.load_state_dict(ckpt and ckpt.get("scaler"))
    run = (amp, distributed.trained_on(device, tc.precision, world, threads.count))
    average = load_average(ckpt)

    def save(record, is_best, scored):
        if world.main:
            payload = _payload(config, tc, classes, norm, model, opt, record["epoch"], record,
                               history, run, average)
            best = None if scored is model else {**payload, "model": scored.state_dict()}
            checkpoint.save_epoch(out, payload, is_best, best)

    log = TrainLog(out, echo, world.main)
    log.say(started(device, threads, world))
    budget.plan(len(distributed.shard(len(val_set[0]), world)),
                len(test.X) if test is not None else 0)
    stopped = fit(distributed.wrap(model, world), opt, fit_set, val_set, tc, save, history,
                  device, budget, log, world, amp, average)
    metrics = {**best_record(history), "stopped": stopped,
               "train_s": budget.elapsed(), "params": sum(p.numel() for p in model.parameters())}
    if test is not None and world.main:
        metrics.update(_score_test(out, test, classes, device, log, budget, tc.seed))
    return finish(metrics, log, budget, judge(bands, metrics, history, tc.epochs, max_minutes))
