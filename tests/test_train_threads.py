"""torch's CPU threads in training: the free cores by default, the given count otherwise; the
first line a run says and its checkpoints tell which."""

import os

import numpy as np
import pytest
import torch

from rnnedge.runtime.errors import InputError
from rnnedge.train.common import MAX_THREADS, Threads, free_cores, set_threads
from rnnedge.train.distributed import local_size
from rnnedge.train.series import train_series


@pytest.fixture(autouse=True)
def keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def machine(monkeypatch, cores, load):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
    monkeypatch.setattr(os, "getloadavg", lambda: (load, 0.0, 0.0))


@pytest.mark.parametrize("cores, load, processes, threads", [
    (2, 0.2, 1, 2),   # idle: every core
    (2, 1.3, 1, 1),   # one core busy elsewhere
    (2, 5.0, 1, 1),   # overloaded: still one
    (64, 3.0, 1, MAX_THREADS),  # a large machine: capped
    (16, 2.0, 2, 7),  # two processes of one run share the free cores
    (2, 0.0, 4, 1),   # more processes than cores: one each
])
def test_the_default_is_the_free_cores(monkeypatch, cores, load, processes, threads):
    machine(monkeypatch, cores, load)
    assert free_cores(processes) == Threads(threads, "free", cores, load)


def test_set_threads_takes_the_given_count_or_the_free_cores(monkeypatch):
    machine(monkeypatch, 2, 1.3)
    chosen = set_threads(None, torch.device("cpu"))
    assert (chosen.count, str(chosen)) == (1, "1 thread (2 cores, load 1.3)")
    assert torch.get_num_threads() == 1
    given = set_threads(2, torch.device("cpu"))
    assert (str(given), torch.get_num_threads()) == ("2 threads (--threads)", 2)
    with pytest.raises(InputError, match="--threads must be >= 1, not 0"):
        set_threads(0, torch.device("cpu"))


def test_a_run_says_first_where_it_trains_and_records_its_threads(monkeypatch, tmp_path):
    machine(monkeypatch, 2, 1.3)
    rng = np.random.default_rng(0)
    y = np.arange(40) % 2
    X = rng.standard_normal((40, 6, 2)).astype(np.float32) + y[:, None, None]  # (N, T, C)
    np.savez(tmp_path / "cases.npz", X=X, lengths=np.full(40, 6), y=y)
    said = []
    train_series(tmp_path / "run", data=tmp_path / "cases.npz", hidden_size=4, epochs=1,
                 device="cpu", echo=said.append)
    assert said[0] == "training on cpu, 1 thread (2 cores, load 1.3)"
    ckpt = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert ckpt["trained_on"] == {"device": "cpu", "precision": "fp32", "world_size": 1,
                                  "threads": 1}


def test_processes_on_one_machine_come_from_torchrun(monkeypatch):
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "x")
    with pytest.raises(InputError, match="LOCAL_WORLD_SIZE must be an integer"):
        local_size()
