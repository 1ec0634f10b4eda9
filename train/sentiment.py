"""The IMDb sentiment classifier's kind of the classifier loop (``classifier.py``), and scoring.

Reviews are token ids of the training split's vocabulary (``runtime/tokenizer.py``), kept in
the checkpoint as ``vocab``; one logit per review (``classifier.Binary``); best.pt is the
epoch of the highest validation accuracy. Training: BCE with logits, Adam, gradient clipping
by global norm, batches of similar length (less padding to compute), early stopping on
validation accuracy; the rest is the loop's (``classifier.py``). Not here: the model and its
rebuild from a checkpoint (``sentiment_model.py``), the configs (``config.py``).
"""

import time
from dataclasses import replace

import numpy as np
import torch

from rnnedge.data.imdb import load_imdb, load_labeled_file, split_train_val
from rnnedge.runtime.errors import DataError
from rnnedge.runtime.tokenizer import Tokenizer, pad_batch

from . import classifier, distributed
from .common import to_device
from .config import SentimentConfig, SentimentTrainConfig
from .sentiment_model import SentimentModel, build_model

TASK = "sentiment"


class Reviews(classifier.Kind):
    """IMDb (``data`` None) or a labeled CSV/JSONL file, which has no test split."""

    task, unit = TASK, "reviews"
    config, train_config = SentimentConfig, SentimentTrainConfig
    model, build = SentimentModel, staticmethod(build_model)
    objective = classifier.Binary()

    def __init__(self, data=None, data_dir=None):
        self.data, self.data_dir = data, data_dir
        self.tokenizer = self.test = None

    def prepare(self, ckpt, fresh, tc):
        """The vocabulary is built on the training split, unless resumed (the checkpoint's)."""
        records, self.test = _load_records(self.data, self.data_dir)
        records, val_records = split_train_val(records, tc.val_size, tc.seed)
        config, self.tokenizer = _setup(ckpt, records, fresh)
        train = _encode(self.tokenizer, records, "training")
        t0 = time.perf_counter()
        val = _encode(self.tokenizer, val_records, "validation")
        encode_s = (time.perf_counter() - t0) / len(val_records)  # per review, as the test's
        return classifier.Prepared(config, train, val, len(self.test or ()), encode_s)

    def inputs(self, rows, batch, device):
        ids, lengths = pad_batch([rows[i] for i in batch])  # (B, T), (B,)
        return to_device(ids, device), to_device(lengths, device)

    def state(self):
        return {"vocab": self.tokenizer.to_dict()}

    def test_labels(self):
        return np.array([r.label for r in self.test], dtype=np.int64)

    def test_items(self, best, picked):
        tokenizer = Tokenizer.from_dict(best["vocab"])
        return _encode(tokenizer, [self.test[i] for i in picked], "test")[0]


def predict_proba(model, tokenizer, texts, batch_size=256):
    """P(positive) for each text, float32 (N,); an empty review is an ``InputError``."""
    rows = tokenizer.encode_rows(texts)
    device = next(model.parameters()).device
    logits = classifier.logits_of(Reviews(), model, rows, device, batch_size)
    return torch.sigmoid(torch.from_numpy(logits)).numpy()


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


def _setup(ckpt, records, config):
    """(config, tokenizer): from the checkpoint, or ``config`` with a vocabulary of ``records``."""
    if ckpt:
        return SentimentConfig(**ckpt["config"]), Tokenizer.from_dict(ckpt["vocab"])
    tokenizer = Tokenizer.build([r.text for r in records], min_count=config.min_count,
                                max_size=config.max_vocab, max_len=config.max_len, keep=config.keep)
    return replace(config, vocab_size=tokenizer.vocab_size), tokenizer


@distributed.holding
def train_sentiment(out, data=None, data_dir=None, max_minutes=None, device="auto", resume=None,
                    threads=None, echo=print, preset=None, since=None, **settings):
    """Train on IMDb (or the labeled file ``data``); write best.pt, last.pt, train_log.jsonl.

    ``settings`` are fields of ``SentimentConfig`` and ``SentimentTrainConfig`` (their defaults
    apply, then the ``preset`` file, then these). Returns the metrics of the best epoch, why
    training stopped, the seconds it took, for IMDb the test accuracy of best.pt and, when
    the preset has an [expect] band, its verdict (``quality``, ``expect.py``). ``max_minutes``
    bounds the whole call, the test scoring included, from ``since`` when given
    (``budget.py``): an epoch can end part-way, and the test split is sampled when it cannot
    be scored whole in the time left.
    ``threads``: torch's CPU threads (default on the CPU: the free cores). Resume follows the
    rule of ``train/config.py``: it goes on with the epoch after the checkpoint's. Under
    torchrun every process calls this; rank 0 writes (``distributed``).
    """
    return classifier.train(Reviews(data, data_dir), out, settings, max_minutes=max_minutes,
                            device=device, resume=resume, threads=threads, echo=echo,
                            preset=preset, since=since)
