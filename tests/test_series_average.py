"""Weight averaging (SWA) and noise augmentation of the series trainer, data-free.

best.pt of an averaged run must hold exactly the mean of the weights after each epoch from
``average_from`` on (recomputed here from per-epoch runs of the same seed), early stopping
must not cut such a run short, and a resumed run must go on averaging where it stopped.
"""

import json

import pytest
import torch

from rnnedge.runtime.errors import InputError
from rnnedge.train import checkpoint
from rnnedge.train.series import train_series
from test_series import toy_rows, write_ts

SETTINGS = dict(hidden_size=8, threads=1, device="cpu", echo=None, seed=3, dropout=0.0)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("avg")
    return write_ts(root / "toy.ts", toy_rows(40, 2), dims=2)


def weights_after(tmp_path, toy, epochs, name):
    train_series(tmp_path / name, data=toy, epochs=epochs, patience=50, **SETTINGS)
    return checkpoint.load(tmp_path / name / "last.pt", "series")["model"]


def test_best_holds_the_mean_of_the_epochs_averaged(tmp_path, toy):
    metrics = train_series(tmp_path / "avg", data=toy, epochs=5, average_from=3, patience=1,
                           **SETTINGS)
    assert metrics["epoch"] == 5 and metrics["averaged_epochs"] == 3 and metrics["stopped"] == "epochs"
    best = checkpoint.load(tmp_path / "avg" / "best.pt", "series")
    per_epoch = [weights_after(tmp_path, toy, e, f"e{e}") for e in (3, 4, 5)]
    for name, value in best["model"].items():
        mean = sum(w[name] for w in per_epoch) / 3
        torch.testing.assert_close(value, mean, atol=1e-6, rtol=1e-5)
    last = checkpoint.load(tmp_path / "avg" / "last.pt", "series")["model"]
    assert all(torch.equal(last[k], per_epoch[-1][k]) for k in last)  # it trains on, unaveraged


def test_a_resumed_run_goes_on_averaging(tmp_path, toy):
    train_series(tmp_path / "whole", data=toy, epochs=5, average_from=2, **SETTINGS)
    train_series(tmp_path / "split", data=toy, epochs=3, average_from=2, **SETTINGS)
    train_series(tmp_path / "split", data=toy, resume=tmp_path / "split", epochs=5,
                 average_from=2, **SETTINGS)
    whole = checkpoint.load(tmp_path / "whole" / "best.pt", "series")["model"]
    split = checkpoint.load(tmp_path / "split" / "best.pt", "series")["model"]
    for name in whole:
        torch.testing.assert_close(split[name], whole[name], atol=1e-6, rtol=1e-5)
    log = [json.loads(l) for l in (tmp_path / "split" / "train_log.jsonl").read_text().splitlines()]
    assert [r.get("averaged_epochs") for r in log if "val_acc" in r] == [None, 1, 2, 3, 4]


def test_noise_changes_the_run_and_is_seeded(tmp_path, toy):
    a = train_series(tmp_path / "a", data=toy, epochs=2, noise=0.3, **SETTINGS)
    b = train_series(tmp_path / "b", data=toy, epochs=2, noise=0.3, **SETTINGS)
    c = train_series(tmp_path / "c", data=toy, epochs=2, **SETTINGS)
    assert a["train_loss"] == b["train_loss"] != c["train_loss"]


@pytest.mark.parametrize("bad, message", [
    (dict(noise=-0.1), "noise must be a number >= 0"),
    (dict(average_from=7, epochs=5), r"average_from must be 0 \(off\) or an epoch from 1 to epochs \(5\)"),
])
def test_bad_settings_are_refused(tmp_path, toy, bad, message):
    with pytest.raises(InputError, match=message):
        train_series(tmp_path / "r", data=toy, **{**SETTINGS, **bad})
    assert not (tmp_path / "r" / "best.pt").exists()
