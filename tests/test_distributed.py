"""Training on two real processes (gloo on localhost) against one: same weights, one writer.

Each multi-process run forks two processes that call the training function with the
variables torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT); one test
starts ``rnnedge train`` under torchrun itself. The data are tiny synthetic sets written
here, so each run takes seconds. Dropout is off, so that
a 2-process step on two halves of a batch must equal the 1-process step on the whole
batch up to float32 summation order (``DDP_FP32``).
"""

import importlib
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from rnnedge.runtime.errors import InputError
from rnnedge.runtime.tolerances import assert_close
from rnnedge.runtime.tolerances import DDP_FP32

TIMEOUT = 120  # a run here takes seconds; a hang fails the test instead of the suite
COMMON = dict(threads=1, dropout=0.0, epochs=2, seed=3, echo=None)
TASKS = {
    "charlm": dict(batch_size=8, num_steps=20, embed_dim=8, hidden_size=16, num_layers=2, lr=0.01),
    "sentiment": dict(batch_size=16, val_size=40, embed_dim=8, hidden_size=16, max_len=30,
                      min_count=1, lr=0.01),
    "series": dict(batch_size=8, hidden_size=16, lr=0.01, patience=5),
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Each process computes on one thread, as the 2-process run does; forked ranks inherit it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """{task: {"text" or "data": path}} of tiny synthetic training sets."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    words = "the a film plot cast scene great superb loved awful dull hated".split()
    text = root / "text.txt"
    text.write_text(" ".join(rng.choice(words, size=800)) + "\n")
    reviews = root / "reviews.jsonl"
    with reviews.open("w") as fh:
        for i in range(200):
            mood = words[6:9] if i % 2 else words[9:]
            line = " ".join(rng.choice(words[:6] + mood, size=rng.integers(4, 25)))
            fh.write(json.dumps({"text": line, "label": i % 2}) + "\n")
    cases = root / "cases.npz"
    y = np.arange(80) % 3
    X = rng.standard_normal((80, 12, 2)).astype(np.float32) + y[:, None, None]
    np.savez(cases, X=X, lengths=rng.integers(3, 13, size=80), y=y)
    return {"charlm": {"text": text}, "sentiment": {"data": reviews}, "series": {"data": cases}}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(task, out, data, **extra):
    """One process's call of the task's training function with the test's settings."""
    module = importlib.import_module(f"rnnedge.train.{task}")
    fn = getattr(module, f"train_{task}")
    return fn(out, **data[task], **{**COMMON, **TASKS[task], **extra})


def rank_main(target, rank, env, report):
    """A forked rank: torchrun's variables, then ``target(rank)``; its error text to ``report``."""
    os.environ.update(env)
    try:
        target(rank)
    except BaseException as exc:  # the test reads what each rank died of
        report.write_text(f"{type(exc).__name__}: {exc}")
        os._exit(1)
    os._exit(0)


def launch(target, tmp_path, world=2, env_extra=None, timeout=TIMEOUT):
    """``target(rank)`` in ``world`` forked processes of one run; [(exitcode, error)] by rank.

    Forked, so that each rank starts in well under a second (an import of torch takes
    seconds on a loaded machine); the parent never joined a process group."""
    ctx, port = multiprocessing.get_context("fork"), free_port()
    procs, reports = [], []
    for rank in range(world):
        env = {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
               "LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": str(port), **((env_extra or {}).get(rank, {}))}
        reports.append(tmp_path / f"rank{rank}.{port}.err")
        procs.append(ctx.Process(target=rank_main, args=(target, rank, env, reports[-1])))
        procs[-1].start()
    deadline = time.monotonic() + timeout
    for p in procs:
        p.join(max(deadline - time.monotonic(), 0.1))
    hung = [p for p in procs if p.is_alive()]
    for p in hung:
        p.kill()
    assert not hung, f"{len(hung)} rank(s) still running after {timeout} s"
    return [(p.exitcode, r.read_text() if r.exists() else "") for p, r in zip(procs, reports)]


def run_two(task, outs, data, tmp_path, **extra):
    """Ranks 0 and 1, each with its own ``out`` (rank 1's must stay unwritten)."""
    results = launch(lambda rank: train(task, outs[rank], data, **extra), tmp_path)
    for rank, (code, err) in enumerate(results):
        assert code == 0, f"rank {rank}: {err}"


def weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_same_run(a, b):
    """Checkpoints of the same epoch with the same weights (``DDP_FP32``) and validation."""
    assert a["epoch"] == b["epoch"] and len(a["history"]) == len(b["history"])
    assert a["model"].keys() == b["model"].keys()
    worst = 0.0
    for name, tensor in a["model"].items():
        diff = assert_close(name, b["model"][name].numpy(), tensor.numpy(), DDP_FP32)
        worst = max(worst, diff.max_abs)
    for key in ("val_nats", "val_acc", "val_loss"):
        if key in a["metrics"]:
            assert b["metrics"][key] == pytest.approx(a["metrics"][key], abs=1e-5), key
    print(f"max |2-process - 1-process| weight difference: {worst:.2e}")
    return worst


@pytest.mark.parametrize("task", sorted(TASKS))
def test_two_processes_on_half_batches_reach_the_weights_of_one(task, data, tmp_path):
    train(task, tmp_path / "one", data)
    run_two(task, [tmp_path / "two", tmp_path / "rank1"], data, tmp_path)
    one, two = weights(tmp_path / "one" / "last.pt"), weights(tmp_path / "two" / "last.pt")
    assert_same_run(one, two)
    assert not (tmp_path / "rank1").exists()  # rank 1 wrote nothing, made no folder
    log = (tmp_path / "two" / "train_log.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in log if "epoch" in line][:2] == [1, 2]
    assert two["trained_on"] == {"device": "cpu", "precision": "fp32", "world_size": 2,
                                 "threads": 1}
    assert one["trained_on"]["world_size"] == 1


def test_a_run_resumes_across_world_sizes(data, tmp_path):
    """2 processes for epoch 1, then 1 for epoch 2 (and the other way round), equal the
    2-epoch run of one process."""
    train("series", tmp_path / "whole", data)
    run_two("series", [tmp_path / "a", tmp_path / "a1"], data, tmp_path, epochs=1)
    train("series", tmp_path / "a", data, resume=tmp_path / "a")
    train("series", tmp_path / "b", data, epochs=1)
    run_two("series", [tmp_path / "b", tmp_path / "b1"], data, tmp_path, resume=tmp_path / "b")
    whole = weights(tmp_path / "whole" / "last.pt")
    for run in ("a", "b"):
        resumed = weights(tmp_path / run / "last.pt")
        assert resumed["epoch"] == 2
        assert_same_run(whole, resumed)
    assert weights(tmp_path / "b" / "last.pt")["trained_on"]["world_size"] == 2


def test_a_killed_rank_stops_the_other_with_a_clear_error(data, tmp_path):
    """Rank 1 is SIGKILLed at its 3rd step; rank 0 stops at once with a LostPeerError."""
    start = time.perf_counter()
    (code0, err0), (code1, _) = launch(
        lambda rank: train("series", tmp_path / f"r{rank}", data, epochs=50), tmp_path,
        env_extra={1: {"RNNEDGE_FAULT": "kill:step@3", "RNNEDGE_DIST_TIMEOUT": "30"}})
    assert code1 == -9
    assert code0 == 1 and err0.startswith("LostPeerError: rank 0 of 2: lost the other training "
                                          "processes"), err0
    assert time.perf_counter() - start < 30
    assert not (tmp_path / "r0" / "last.pt").exists()  # killed in epoch 1: nothing committed


def test_a_budget_spent_on_one_rank_stops_every_rank_at_the_same_step(data, tmp_path):
    """Rank 0's budget is spent at once, rank 1's never: both stop after the first step (a rank
    that went on alone would wait for the other in the next all-reduce until the timeout)."""
    minutes = {0: 1e-9, 1: 1e3}
    results = launch(lambda rank: train("sentiment", tmp_path / f"r{rank}", data, epochs=5,
                                        max_minutes=minutes[rank]), tmp_path,
                     env_extra={r: {"RNNEDGE_DIST_TIMEOUT": "20"} for r in range(2)})
    assert results == [(0, ""), (0, "")]
    lines = (tmp_path / "r0" / "train_log.jsonl").read_text().splitlines()
    log = [json.loads(line) for line in lines]
    assert [r.get("reason") for r in log if r.get("event") == "stop"] == ["budget"]
    assert [r["epoch"] for r in log if "val_acc" in r] == [1]


@pytest.mark.slow  # three interpreters start torch: about 30 s on 2 shared cores
def test_torchrun_starts_the_command_line_the_standard_way(data, tmp_path):
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in {**COMMON, **TASKS["series"]}.items()
             if k != "echo"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", str(free_port()), "-m", "rnnedge.cli", "train", "series",
           "--out", str(tmp_path / "run"), "--data", str(data["series"]["data"]), *flags,
           "--epochs", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    ckpt = weights(tmp_path / "run" / "last.pt")
    assert ckpt["epoch"] == 1 and ckpt["trained_on"]["world_size"] == 2
    assert done.stdout.count("best.pt: ") == 1  # the closing line from rank 0 alone


def test_a_batch_that_does_not_divide_among_ranks_is_refused(data, tmp_path, monkeypatch):
    from rnnedge.train.series import train_series

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(InputError, match="batch_size 9 does not divide among 2 training processes"):
        train_series(tmp_path / "run", **data["series"], batch_size=9, echo=None)
    assert not (tmp_path / "run").exists()
