"""The wall-clock budget of a training call (``--max-minutes``), and what it keeps for scoring.

The budget covers the whole call, from reading the data to the final test score, and from
``since`` when given: the command line passes its own start, so that importing torch (seconds
on a loaded machine) counts too; only starting Python is outside it. Training checks it at
every step boundary (``Budget.spent``) and stops at the first one where the time left would
not cover what still has to run after the last step: the epoch's validation, the final test
scoring and the checkpoint writes (``Budget.reserve``). An epoch can so end part-way; its
record says so (``steps``, ``steps_total``, ``partial``), its checkpoint is saved like any
other, and ``--resume`` goes on with the next epoch.

Scoring costs are measured, not assumed: the seconds per item of the last validation pass
(``Budget.scoring``); until the first one, a training step's seconds per item stand in, an
overestimate (a step is forward, backward and update; scoring is a forward pass). The test
split is scored whole when it fits in the time left; when it does not, a seeded,
class-balanced sample of the size that fits (``test_size``, ``balanced_sample``), never
fewer than ``MIN_TEST`` items, and the log and the result say so. During training at most
``TEST_SHARE`` of the budget is kept back for it.

Under torchrun ``spent`` is a collective, true on every rank once it is true on one, and
every rank calls it at the same steps (each one), so that all ranks stop together.
Not here: the loops that check it (``charlm.py``, ``classifier.py``).
"""

import contextlib
import math
import time

import numpy as np

from rnnedge.runtime.errors import InputError

from . import distributed

TEST_SHARE = 0.25  # of the budget at most, kept back during training for the test scoring
MIN_TEST = 1000  # a sampled test accuracy of 0.85 on 1,000 items is +-0.011 (one std)
SAFETY = 1.25  # on measured costs: the load of a shared machine changes from minute to minute
MARGIN_S = 1.0  # writing the checkpoints and reading best.pt back, whatever the scoring costs


class Budget:
    """A wall-clock budget in minutes (``None`` means unlimited), from ``since`` (a reading of
    ``clock``), else from when it is made."""

    def __init__(self, max_minutes=None, since=None, clock=time.perf_counter):
        if max_minutes is not None and not (math.isfinite(max_minutes) and max_minutes >= 0):
            raise InputError(f"--max-minutes must be a number >= 0, not {max_minutes!r}")
        self.clock, self.minutes = clock, max_minutes
        self.start = clock() if since is None else since
        self.limit = None if max_minutes is None else 60.0 * max_minutes
        self.val_items = self.test_items = 0
        self.prepare_s = 0.0  # per test item, before it is scored (tokenizing a review)
        self.item_s = None  # seconds to score one item: the last validation pass
        self.step_s = None  # seconds to train one item, this epoch so far: the guess before

    def elapsed(self):
        return self.clock() - self.start

    def plan(self, val_items, test_items=0, prepare_s=0.0):
        """What runs after the last step: a validation of ``val_items`` (this rank's share)
        and a final scoring of ``test_items``, each prepared in ``prepare_s`` seconds first."""
        self.val_items, self.test_items, self.prepare_s = val_items, test_items, prepare_s

    def trained(self, items, seconds):
        """This rank trained ``items`` in ``seconds`` in this epoch so far."""
        if items:
            self.step_s = seconds / items

    @contextlib.contextmanager
    def scoring(self, items):
        """Time a scoring pass over ``items`` (this rank's share): its cost per item."""
        start = self.clock()
        yield
        if items:
            self.item_s = (self.clock() - start) / items

    def _item_s(self):
        return self.item_s if self.item_s is not None else (self.step_s or 0.0)

    def reserve(self):
        """Seconds kept for what runs after the last step (``plan``)."""
        per_item = self._item_s()
        test = self.test_items * (per_item + self.prepare_s)
        if self.limit is not None:
            test = min(test, TEST_SHARE * self.limit)
        return MARGIN_S + SAFETY * (self.val_items * per_item + test)

    def spent(self):
        """True (on every rank) once the time left does not cover ``reserve``: no more steps."""
        if self.limit is None:
            return False
        return distributed.any_rank(self.elapsed() + self.reserve() >= self.limit)

    def test_size(self):
        """How many of the ``test_items`` to score in the time left: all when they fit, else
        as many as fit and at least ``MIN_TEST`` (all, when there are fewer)."""
        per_item = SAFETY * self._item_s() + self.prepare_s
        if self.limit is None or per_item == 0:  # no pass timed: a resumed run that had ended
            return self.test_items
        fit = int((self.limit - self.elapsed() - MARGIN_S) / per_item)
        return min(self.test_items, max(fit, MIN_TEST))

    def stop_line(self, epoch, done, total):
        """The log line of a stop by the budget after step ``done`` of ``total`` of ``epoch``."""
        where = (f"in epoch {epoch} at step {done}/{total}" if done < total
                 else f"after epoch {epoch}")
        after = "validation and the test scoring" if self.test_items else "validation"
        return (f"time budget of {self.minutes:g} min spent {where} ({self.reserve():.0f} s "
                f"kept for {after})")

    def end(self):
        """(record, line) of the end of the call: how long it took against the budget."""
        elapsed = self.elapsed()
        record = {"event": "end", "elapsed_s": elapsed, "budget_s": self.limit}
        if self.limit is None:
            return record, None
        over = elapsed - self.limit
        if over > 0:
            return record, (f"finished in {elapsed:.0f} s, {over:.0f} s past the time budget of "
                            f"{self.minutes:g} min")
        return record, (f"finished in {elapsed:.0f} s, within the time budget of "
                        f"{self.minutes:g} min")


def steps_record(done, total):
    """The fields of an epoch's record that say how much of it ran."""
    return {"steps": done, "steps_total": total, "partial": done < total}


def balanced_sample(labels, n, seed):
    """Indices (ascending) of ``n`` items taken class by class in turn, each class in a seeded
    order: an equal share of every class, as far as the smaller classes allow."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    rank = np.empty(len(labels), dtype=np.int64)  # an item's place in its class's order
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        rank[members] = np.arange(len(members))
    return np.sort(np.lexsort((labels, rank))[:n])  # by place, then class: round-robin
