"""The series classifier's kind of the classifier loop (``classifier.py``): real-valued frames.

Data: Japanese Vowels by default, or any ``.ts``/``.npz``/``.csv`` file (``data/series.py``).
A stratified, seeded validation split is carved out of the training data for early
stopping; the per-channel mean and standard deviation are fitted on what is left (never
on validation or test frames) and stored in the checkpoint as ``norm``, the class names as
``vocab``; the test split only gives the final number, from best.pt. One logit per class
(cross-entropy); epochs are ranked by validation accuracy, ties (frequent on a small
split) going to the lower validation loss. Two additions to the loop: Gaussian noise on the
normalised training frames (``noise``) and the running mean of the late epochs' weights as
best.pt (``average_from``, ``averaging.py``). Not here: the model (``series_model.py``),
the configs (``config.py``).
"""

from dataclasses import replace

import numpy as np
import torch

from rnnedge.data.series import load_series, load_vowels, relabel, split_stratified
from rnnedge.runtime.errors import DataError
from rnnedge.runtime.series import pad_cases

from . import classifier, distributed
from .averaging import load_average
from .common import to_device
from .config import SeriesConfig, SeriesTrainConfig
from .series_model import SeriesNet, build_model

TASK = "series"
STD_FLOOR = 1e-6  # a constant channel is divided by 1, not by zero


class Frames(classifier.Kind):
    """Cases of ``data`` (default Japanese Vowels) and of ``test``; ``missing`` is
    ``data.series``'s policy for missing values in the user's files."""

    task, unit = TASK, "cases"
    config, train_config = SeriesConfig, SeriesTrainConfig
    model, build = SeriesNet, staticmethod(build_model)
    ranked_by = "validation"

    def __init__(self, data=None, test=None, data_dir=None, missing="error"):
        self.data, self.test_path, self.data_dir, self.missing = data, test, data_dir, missing
        self.test = self.norm = self.classes = None

    def prepare(self, ckpt, fresh, tc):
        """Classes and normalisation are the training split's, unless resumed (the checkpoint's)."""
        train, self.test = load_splits(self.data, self.test_path, self.data_dir, self.missing)
        _check_labels(train, ckpt)
        if self.test is not None:  # now, not after training: its score is the run's last step
            _check_test(self.test, train, self.test_path or self.test.name)
        train_idx, val_idx = split_stratified(train.y, tc.val_fraction, tc.seed,
                                              f"the training data {self.data or train.name}")
        if ckpt:
            config, self.norm, self.classes = (SeriesConfig(**ckpt["config"]), ckpt["norm"],
                                               tuple(ckpt["vocab"]))
        else:
            config = replace(fresh, channels=train.channels, num_classes=len(train.classes))
            self.norm, self.classes = fit_norm([train.X[i] for i in train_idx]), train.classes
        self.average = load_average(ckpt)
        X = normalise(train.X, self.norm)
        return classifier.Prepared(config, ([X[i] for i in train_idx], train.y[train_idx]),
                                   ([X[i] for i in val_idx], train.y[val_idx]),
                                   0 if self.test is None else len(self.test.X))

    def rank(self, record):
        """Validation accuracy first; a small validation split ties often, so loss breaks ties."""
        return record["val_acc"], -record["val_loss"]

    def average_from(self, tc):
        return tc.average_from

    def inputs(self, X, batch, device):
        return pad(X, batch, device)

    def augment(self, inputs, tc):
        frames, lengths = inputs
        if tc.noise:  # on the normalised frames; padding is masked anyway
            frames = frames + tc.noise * torch.randn_like(frames)
        return frames, lengths

    def state(self):
        return {"vocab": list(self.classes), "norm": self.norm, "average": self.average.state()}

    def test_labels(self):
        return relabel(self.test, self.classes, f"the test data {self.test.name}")

    def test_items(self, best, picked):
        return normalise([self.test.X[i] for i in picked], best["norm"])


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


def load_splits(data, test, data_dir, missing="error"):
    """(training Series, test Series or None): Japanese Vowels when ``data`` is None;
    ``missing`` is ``data.series``'s policy for missing values in the user's files."""
    if data is None:
        return load_vowels("train", data_dir), load_vowels("test", data_dir) if test is None \
            else load_series(test, missing)
    return load_series(data, missing), None if test is None else load_series(test, missing)


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


def _check_test(test, train, where):
    """The test cases can be scored by a model of ``train``: labelled, with its channels and
    its classes (``train``'s equal a resumed checkpoint's, ``_check_labels``)."""
    if test.channels != train.channels:
        raise DataError(f"the test data {where} has {test.channels} channels, the training data "
                        f"{train.channels}; give test cases with the training data's channels")
    relabel(test, train.classes, f"the test data {where}")


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
    given (``budget.py``). From epoch ``average_from`` on (when set) best.pt holds the mean
    weights of the epochs since, and there is no early stopping.
    ``threads``: torch's CPU threads (default on the CPU: the free cores). Resume follows
    ``train/config.py``: it goes on with the epoch after the checkpoint's. Under torchrun
    every process calls this; rank 0 writes (``distributed``).
    """
    return classifier.train(Frames(data, test, data_dir, missing), out, settings,
                            max_minutes=max_minutes, device=device, resume=resume,
                            threads=threads, echo=echo, preset=preset, since=since)
