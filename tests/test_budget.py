"""--max-minutes bounds the whole training call: steps stop early enough for validation and the
test scoring, a cut epoch is saved and resumed from, and the test split is sampled to fit.

The policy is tested on a fake clock (no timing in it); the runs check records, not seconds,
but for a generous bound (``SLACK_S``) on a whole call and a whole command.
"""

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from rnnedge.runtime.errors import InputError
from rnnedge.train import sentiment
from rnnedge.train.budget import MARGIN_S, MIN_TEST, SAFETY, TEST_SHARE, Budget, balanced_sample
from rnnedge.train.charlm import train_charlm
from rnnedge.train.sentiment import train_sentiment
from test_sentiment_train import TINY, synthetic

SLACK_S = 20  # a loaded 2-core machine: one step, a validation and two checkpoint writes


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def budget_at(minutes, **plan):
    clock = Clock()
    budget = Budget(minutes, clock=clock)
    budget.plan(**plan)
    return budget, clock


def log_of(out):
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def test_the_reserve_uses_the_training_throughput_until_a_validation_is_timed():
    budget, clock = budget_at(1.0, val_items=100)
    assert budget.reserve() == MARGIN_S
    budget.trained(items=50, seconds=1.0)  # 0.02 s an item: a step stands in for a pass
    assert budget.reserve() == pytest.approx(MARGIN_S + SAFETY * 100 * 0.02)
    with budget.scoring(items=100):
        clock.now += 0.5  # a pass is cheaper than a step: the measurement replaces the guess
    assert budget.reserve() == pytest.approx(MARGIN_S + SAFETY * 100 * 0.005)


def test_steps_stop_when_the_time_left_no_longer_covers_the_reserve():
    budget, clock = budget_at(1.0, val_items=1000)
    budget.trained(items=100, seconds=1.0)  # reserve: 1 + 1.25 * 1000 * 0.01 = 13.5 s
    clock.now += 60 - 13.5 - 0.1
    assert not budget.spent()
    clock.now += 0.2
    assert budget.spent()
    assert not Budget(None).spent()


def test_the_test_scoring_keeps_back_at_most_a_share_of_the_budget():
    budget, clock = budget_at(2.0, val_items=0, test_items=25000, prepare_s=0.001)
    with budget.scoring(items=100):
        clock.now += 1.0  # 0.01 s an item: 25,000 would take 275 s of a 120 s budget
    assert budget.reserve() == pytest.approx(MARGIN_S + SAFETY * TEST_SHARE * 120)


def test_the_test_split_is_scored_whole_when_it_fits_else_a_sample_that_fits():
    budget, clock = budget_at(2.0, val_items=0, test_items=25000)
    with budget.scoring(items=100):
        clock.now += 0.01  # 1e-4 s an item, 1.25e-4 with the safety factor
    assert budget.test_size() == 25000  # 3.1 s of 120
    clock.now += 120 - MARGIN_S - 2.0 - 0.01  # 2 s left besides the margin: 16,000 items
    assert abs(budget.test_size() - 16000) <= 1
    clock.now += 10  # past the budget: the smallest sample that means something
    assert budget.test_size() == MIN_TEST
    assert Budget(None).test_size() == 0


def test_a_budget_must_be_a_number_of_minutes():
    for bad in (-1, float("nan"), float("inf")):
        with pytest.raises(InputError, match="--max-minutes must be a number >= 0"):
            Budget(bad)


def test_the_sample_is_seeded_class_balanced_and_distinct():
    labels = np.array([0] * 700 + [1] * 300 + [2] * 50)
    picked = balanced_sample(labels, 400, seed=0)
    assert len(set(picked)) == 400 and list(picked) == sorted(picked)
    counts = np.bincount(labels[picked])
    assert counts.tolist() == [175, 175, 50]  # the small class whole, the others equal
    assert (balanced_sample(labels, 400, seed=0) == picked).all()
    assert not (balanced_sample(labels, 400, seed=1) == picked).all()


@pytest.fixture(scope="module")
def cut(tmp_path_factory, data_dir):
    """A char model under a 3-second budget, in an epoch far longer than that, then resumed."""
    out = tmp_path_factory.mktemp("cut")
    settings = dict(data_dir=data_dir, echo=None, threads=1, embed_dim=16, hidden_size=128,
                    num_layers=2, batch_size=8, num_steps=25, epochs=3)
    best = train_charlm(out, max_minutes=0.05, **settings)
    first = log_of(out)
    resumed = train_charlm(out, resume=out, max_minutes=0.05, **settings)
    return out, best, first, resumed


def test_a_budget_stops_inside_the_first_epoch_and_the_call_within_the_budget(cut):
    out, best, log, _ = cut
    epoch = next(r for r in log if "val_bpc" in r)
    assert epoch["epoch"] == 1 and epoch["partial"] and 0 < epoch["steps"] < epoch["steps_total"]
    stop = next(r for r in log if r.get("event") == "stop")
    assert (stop["reason"], stop["epoch"], stop["steps"]) == ("budget", 1, epoch["steps"])
    end = log[-1]
    assert end["event"] == "end" and end["budget_s"] == 3.0
    assert end["elapsed_s"] <= 3.0 + SLACK_S
    assert best["stopped"] == "budget" and best["elapsed_s"] == end["elapsed_s"]


def test_the_checkpoint_of_a_cut_epoch_says_so_and_exports(cut, tmp_path):
    from rnnedge.export.exporter import export

    out = cut[0]
    best = torch.load(out / "best.pt", weights_only=True)  # of epoch 1 or 2, both cut short
    assert best["metrics"]["partial"] and best["metrics"]["steps"] < best["metrics"]["steps_total"]
    path, diffs = export(out / "best.pt", tmp_path / "model.onnx")
    assert path.is_file() and diffs and all(d.ok for d in diffs)


def test_resume_after_a_cut_epoch_goes_on_with_the_next_epoch(cut):
    out, _, _, resumed = cut
    last = torch.load(out / "last.pt", weights_only=True)
    assert [h["epoch"] for h in last["history"]] == [1, 2]
    assert last["history"][0]["partial"] and last["epoch"] == 2
    assert resumed["stopped"] == "budget"


@pytest.fixture
def imdb_like(monkeypatch):
    """IMDb replaced by 200 synthetic training reviews and 2,400 test reviews."""
    splits = {"train": synthetic(200, 0), "test": synthetic(2400, 1)}
    monkeypatch.setattr(sentiment, "load_imdb", lambda split, data_dir=None: splits[split])
    return splits


def test_a_test_split_that_does_not_fit_is_scored_on_a_balanced_sample(tmp_path, imdb_like, capsys):
    metrics = train_sentiment(tmp_path, epochs=3, max_minutes=0, **TINY)
    assert (metrics["test_n"], metrics["test_of"], metrics["test_seed"]) == (MIN_TEST, 2400, 0)
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert best["metrics"]["test_n"] == MIN_TEST
    assert best["metrics"]["test_acc"] == metrics["test_acc"]
    log = log_of(tmp_path)
    test = next(r for r in log if r.get("event") == "test")
    assert test["test_n"] == MIN_TEST and test["test_of"] == 2400
    assert log[-1]["event"] == "end" and log[-1]["elapsed_s"] > log[-1]["budget_s"] == 0
    err = capsys.readouterr().err
    assert f"scoring best.pt on {MIN_TEST:,} test reviews: {MIN_TEST}/{MIN_TEST}" in err


def test_a_test_split_that_fits_is_scored_whole(tmp_path, imdb_like):
    metrics = train_sentiment(tmp_path, epochs=1, max_minutes=30, **TINY)
    assert "test_n" not in metrics and 0 <= metrics["test_acc"] <= 1



def test_the_command_counts_its_own_start_and_ends_within_the_budget(tmp_path, data_dir):
    """Importing torch is inside the budget (``since``); a slack covers starting Python."""
    flags = ["--embed-dim", "16", "--hidden-size", "128", "--batch-size", "8", "--num-steps", "25",
             "--threads", "1", "--max-minutes", "0.05", "--data-dir", str(data_dir)]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "rnnedge.cli", "train", "charlm", "--out",
                           str(tmp_path / "run"), *flags], capture_output=True, text=True)
    wall = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    assert "time budget of 0.05 min spent in epoch 1 at step " in done.stdout
    end = log_of(tmp_path / "run")[-1]
    assert end["budget_s"] == 3.0 and end["elapsed_s"] <= 3.0 + SLACK_S
    assert wall <= 3.0 + SLACK_S
