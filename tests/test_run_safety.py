"""No data loss: a run's files stay in step through a kill at any point, one process
writes a run, export never overwrites a checkpoint or leaves a temp file, divergence saves nothing.

The trainings are tiny (a 16-unit LSTM, 3 epochs on the first 12,000 characters of Hamlet) and
the ones that get killed run in forked children, which ``rundir.fault`` (RNNEDGE_FAULT) stops at
a named step of a commit, or the test kills at a random time.
"""

import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time

import onnx
import pytest
import torch

from rnnedge.cli import app, run_app
from rnnedge.data.hamlet import load_text
from rnnedge.export.exporter import export
from rnnedge.runtime.errors import InputError
from rnnedge.train import charlm, checkpoint, rundir
from rnnedge.train.charlm import train_charlm

FORK = multiprocessing.get_context("fork")
EPOCHS = 3
TINY = dict(embed_dim=8, hidden_size=16, num_layers=1, dropout=0.0, batch_size=8, num_steps=40,
            lr=0.01, threads=1, echo=None)
FLAGS = ["--embed-dim", "8", "--hidden-size", "16", "--num-layers", "1", "--dropout", "0",
         "--batch-size", "8", "--num-steps", "40", "--threads", "1"]
# Steps of epoch 2's commit, and the epoch a kill there leaves committed.
POINTS = {"log@2": 1, "write:last.pt.next@2": 1, "staged:last.pt@2": 1,
          "write:best.pt.next@2": 1, "staged:best.pt@2": 1,
          "write:run.json@3": 1,  # adopting the new directory wrote run.json once, epoch 1 twice
          "commit@2": 2, "install:last.pt@2": 2, "install:best.pt@2": 2}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def text(tmp_path_factory, data_dir):
    path = tmp_path_factory.mktemp("text") / "hamlet_start.txt"
    path.write_text(load_text(None, data_dir)[:12000])
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory, text):
    """(run directory, seconds) of an uninterrupted run; each of its epochs is the best so far."""
    out = tmp_path_factory.mktemp("reference") / "run"
    start = time.perf_counter()
    train_charlm(out, text=text, epochs=EPOCHS, **TINY)
    history = torch.load(out / "last.pt", weights_only=True)["history"]
    val = [h["val_nats"] for h in history]
    assert val == sorted(val, reverse=True)
    return out, time.perf_counter() - start


def in_child(target, fault=None):
    """Start ``target()`` in a forked child (torch already imported), RNNEDGE_FAULT set there."""

    def main():
        if fault:
            os.environ["RNNEDGE_FAULT"] = fault
        torch.set_num_threads(1)
        target()

    child = FORK.Process(target=main)
    child.start()
    return child


def wait_stopped(pid, timeout=120):
    """Wait until process ``pid`` is stopped (SIGSTOP by a ``stop:`` fault)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as fh:
            if fh.read().rsplit(")", 1)[1].split()[0] == "T":
                return
        time.sleep(0.02)
    raise AssertionError(f"process {pid} did not reach its fault point")


def cli(capsys, *argv):
    """(exit code, stderr) of the rnnedge command line, in this process."""
    with pytest.raises(SystemExit) as stopped:
        run_app(app, [str(a) for a in argv])
    return stopped.value.code, capsys.readouterr().err


def snapshot(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def temps(directory, name):
    return sorted(directory.glob(f".{name}.*.tmp"))


def assert_complete(out):
    """Every file but temp files is whole; readers get what the manifest names."""
    for path in out.iterdir():
        if path.name.endswith((".pt", ".pt.next")):
            torch.load(path, weights_only=True)
    manifest = rundir.read_manifest(out)
    for name, entry in manifest["files"].items():
        ckpt, sha = checkpoint.read(out / name)
        assert (ckpt["epoch"], sha) == (entry["epoch"], entry["sha256"]), name
    return manifest


def assert_in_step(out):
    """After a start: no temp or staged file, files as the manifest says, one log line an epoch."""
    manifest = rundir.read_manifest(out)
    assert not [p.name for p in out.iterdir() if p.name.endswith((".tmp", ".next"))]
    for name, entry in manifest["files"].items():
        assert rundir.file_sha256(out / name) == entry["sha256"], name
        assert torch.load(out / name, weights_only=True)["epoch"] == entry["epoch"], name
    log_file = out / "train_log.jsonl"  # none yet when the kill came before the first write
    log = [json.loads(line) for line in log_file.read_text().splitlines()] if log_file.exists() else []
    assert len(log) == manifest["log_lines"]
    last = manifest["files"].get("last.pt", {"epoch": 0})["epoch"]
    assert [r["epoch"] for r in log if "val_nats" in r] == list(range(1, last + 1))
    if last:
        history = torch.load(out / "last.pt", weights_only=True)["history"]
        best = min(history, key=lambda h: h["val_nats"])["epoch"]
        assert manifest["files"]["best.pt"]["epoch"] == best
    return last


def assert_resumes_to_reference(out, text, reference):
    """--resume (or a fresh start, if nothing was committed) ends on the reference's weights."""
    resume = out if (out / "last.pt").exists() else None
    train_charlm(out, text=text, epochs=EPOCHS, resume=resume, **TINY)
    assert assert_in_step(out) == EPOCHS
    for name in ("last.pt", "best.pt"):
        want = torch.load(reference[0] / name, weights_only=True)["model"]
        got = torch.load(out / name, weights_only=True)["model"]
        assert all(torch.equal(got[k], want[k]) for k in want), name


@pytest.mark.parametrize("point", POINTS)
def test_a_kill_at_any_step_of_a_commit_leaves_the_old_or_the_new_run(tmp_path, text, reference,
                                                                       point):
    out = tmp_path / "run"
    child = in_child(lambda: train_charlm(out, text=text, epochs=EPOCHS, **TINY), "kill:" + point)
    child.join()
    assert child.exitcode == -signal.SIGKILL
    manifest = assert_complete(out)
    assert manifest["files"]["last.pt"]["epoch"] == POINTS[point]
    with rundir.hold(out):  # the next start
        pass
    assert assert_in_step(out) == POINTS[point]
    assert_resumes_to_reference(out, text, reference)


def test_a_kill_at_random_times_leaves_the_old_or_the_new_run(tmp_path, text, reference):
    rng = random.Random(11)
    for i in range(3):
        out = tmp_path / f"run{i}"
        child = in_child(lambda: train_charlm(out, text=text, epochs=EPOCHS, **TINY))
        time.sleep(rng.uniform(0.05, reference[1]))
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        if (out / rundir.MANIFEST).exists():
            assert_complete(out)
        with rundir.hold(out):
            pass
        assert_in_step(out)
        assert_resumes_to_reference(out, text, reference)


def test_export_ships_what_the_manifest_calls_best_before_recovery(tmp_path, text):
    out = tmp_path / "run"
    child = in_child(lambda: train_charlm(out, text=text, epochs=EPOCHS, **TINY), "kill:commit@2")
    child.join()
    best = rundir.read_manifest(out)["files"]["best.pt"]
    assert best["epoch"] == 2 and rundir.file_sha256(out / "best.pt") != best["sha256"]
    path, _ = export(out / "best.pt", tmp_path / "m.onnx")
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert (props["rnnedge.epoch"], props["rnnedge.checkpoint_sha256"]) == ("2", best["sha256"])


def test_a_second_training_fails_at_once_and_a_killed_holder_frees_the_run(tmp_path, text,
                                                                          capsys):
    out = tmp_path / "run"
    holder = in_child(lambda: train_charlm(out, text=text, epochs=EPOCHS, **TINY), "stop:locked")
    wait_stopped(holder.pid)
    start = time.perf_counter()
    code, err = cli(capsys, "train", "charlm", "--out", out, "--text", text, *FLAGS)
    assert time.perf_counter() - start < 10
    assert code == 2 and err.count("\n") == 1 and f"PID {holder.pid}" in err
    with pytest.raises(InputError, match=f"{out} is in use: PID {holder.pid}"):
        train_charlm(out, text=text, **TINY)
    os.kill(holder.pid, signal.SIGKILL)
    holder.join()
    with rundir.hold(out) as run:
        assert run.entry("last.pt") is None


def test_export_refuses_an_out_that_is_the_checkpoint_a_run_file_or_a_directory(tmp_path, reference,
                                                                              capsys):
    run = reference[0]
    loose = tmp_path / "loose.pt"
    loose.write_bytes((run / "best.pt").read_bytes())
    link = tmp_path / "link.onnx"
    link.symlink_to(run / "best.pt")
    before, loose_before = snapshot(run), loose.read_bytes()
    cases = [(run / "best.pt", run / "best.pt"), (run / "best.pt", link), (loose, loose)]
    cases += [(run / "best.pt", run / name) for name in ("last.pt", "train_log.jsonl", "run.json",
                                                          "run.lock")]
    cases += [(run / "best.pt", run), (run / "best.pt", tmp_path)]
    for ckpt, out in cases:
        code, err = cli(capsys, "export", ckpt, "--out", out)
        assert code == 2 and err.count("\n") == 1 and f"--out {out} is" in err, (out, err)
    assert snapshot(run) == before and loose.read_bytes() == loose_before
    assert not list(tmp_path.glob(".*.tmp"))


def test_sigterm_during_export_cleans_up_and_a_killed_exports_temp_is_removed(tmp_path, reference):
    best, target, other = reference[0] / "best.pt", tmp_path / "m.onnx", tmp_path / "k.onnx"
    target.write_bytes(b"the previous model")

    def start(out, fault):
        return subprocess.Popen([sys.executable, "-m", "rnnedge.cli", "export", best, "--out", out],
                                env={**os.environ, "RNNEDGE_FAULT": fault},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    terminated, killed = start(target, "stop:write:m.onnx"), start(other, "kill:write:k.onnx")
    wait_stopped(terminated.pid)
    assert len(temps(tmp_path, "m.onnx")) == 1  # written, about to be renamed over m.onnx
    os.kill(terminated.pid, signal.SIGTERM)
    os.kill(terminated.pid, signal.SIGCONT)
    assert terminated.wait(60) == 128 + signal.SIGTERM
    assert not temps(tmp_path, "m.onnx") and target.read_bytes() == b"the previous model"
    assert killed.wait(120) == -signal.SIGKILL
    assert len(temps(tmp_path, "k.onnx")) == 1 and not other.exists()
    export(best, other)
    assert not temps(tmp_path, "k.onnx") and onnx.load(str(other)).graph.node


def test_a_diverging_loss_is_a_typed_error_and_saves_nothing(tmp_path, text, capsys, monkeypatch):
    for lr in ("1e30", "nan", "0", "-1"):  # refused before anything is read or written
        code, err = cli(capsys, "train", "charlm", "--out", tmp_path / f"lr{lr}", "--text", text,
                        "--lr", lr, *FLAGS)
        assert code == 2 and err.count("\n") == 1 and "lr must be a number in (0, 10]" in err
        assert not (tmp_path / f"lr{lr}").exists()
    out = tmp_path / "run"
    train_charlm(out, text=text, epochs=1, **TINY)
    before = snapshot(out)
    real = charlm.train_epoch
    monkeypatch.setattr(charlm, "train_epoch", lambda *args: (float("nan"), *real(*args)[1:]))
    with pytest.raises(InputError, match="diverged in epoch 2: train_nats is not finite"):
        train_charlm(out, text=text, epochs=2, resume=out, **TINY)
    assert snapshot(out) == before
    fresh = tmp_path / "fresh"  # the same through the command line: one line, exit 2
    code, err = cli(capsys, "train", "charlm", "--out", fresh, "--text", text, "--epochs", "1", *FLAGS)
    errors = [line for line in err.splitlines() if line.startswith("rnnedge: error:")]
    assert code == 2 and len(errors) == 1 and "diverged in epoch 1" in errors[0]  # after progress lines
    assert "Traceback" not in err
    assert not fresh.exists()  # nothing was committed, so the directory it made is gone


def test_export_refuses_nonfinite_weights_naming_the_tensor(tmp_path, reference, capsys):
    ckpt = torch.load(reference[0] / "best.pt", weights_only=True)
    ckpt["model"]["rnn.weight_hh_l0"][0, 0] = float("nan")
    checkpoint.save(tmp_path / "nan.pt", ckpt)
    code, err = cli(capsys, "export", tmp_path / "nan.pt", "--out", tmp_path / "nan.onnx")
    assert code == 2 and err.count("\n") == 1 and "tensor rnn.weight_hh_l0 holds NaN" in err
    assert not (tmp_path / "nan.onnx").exists()


def test_a_second_writer_of_one_target_is_refused_and_the_first_result_kept(tmp_path, reference):
    """Two exports into one --out: the second, started while the first holds the target, is
    refused in one line (exit 2) instead of both saying "wrote" and one result being lost."""
    best, target = reference[0] / "best.pt", tmp_path / "m.onnx"
    first = subprocess.Popen([sys.executable, "-m", "rnnedge.cli", "export", best, "--out", target],
                             env={**os.environ, "RNNEDGE_FAULT": "stop:write:m.onnx"},
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_stopped(first.pid)
    second = subprocess.run([sys.executable, "-m", "rnnedge.cli", "export", best, "--out", target],
                            capture_output=True, text=True)
    os.kill(first.pid, signal.SIGCONT)
    assert first.wait(60) == 0, first.stderr.read()
    assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
    assert "m.onnx is being written by another rnnedge process" in second.stderr
    assert onnx.load(str(target)).graph.node and not temps(tmp_path, "m.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no lock file left
